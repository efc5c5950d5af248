"""`python -m patchgen.check_patchgen`: fail when committed generated files drift from their configs.

Regenerates every config in memory (each as if alone, see `patchgen.commands.config_runs`), compares each
`.py`, `.diff` and `.lock.json` with the committed file, and reports drift as a unified diff,
missing outputs, generated files no config produces, temp files a killed run left, lock files that
cannot be read, and configs that fail to import or generate. When upstream moved under the
recorded fingerprints it prints the upgrade report (`patchgen.commands.upgrade_report`); when all else is
clean it imports every generated module in one subprocess, started at the beginning so that it
runs while the configs generate (`--no-import` skips it). Results whose recorded inputs did not
change come from `patchgen.verify.cache` (`--no-cache` bypasses it). Exit 0 only when everything matches;
`--fix` writes the fresh outputs and removes orphans and leftover temp files.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import click

from patchgen.commands.cli_errors import one_line_errors, run_command
from patchgen.commands.config_runs import ConfigRun, run_configs
from patchgen.commands.upgrade_report import build_report, render
from patchgen.dsl.layout import enter_project, load_layout
from patchgen.load.discovery import discover_configs
from patchgen.render.outputs import is_leftover_temp, read_committed, unified_diff, write_all
from patchgen.upgrade.fingerprints import LOCK_SUFFIX, lock_path
from patchgen.upgrade.upstream_dependencies import FILES_READ, read_installed
from patchgen.verify.cache import Cache, CacheEntryError
from patchgen.verify.import_check import ImportCheck


EXIT_FINDINGS = 1
LABELS = {
    "drift": "DRIFT   {path}: committed file differs from a fresh regeneration",
    "missing": "MISSING {path}: a config produces it but it is not committed",
    "orphan": "ORPHAN  {path}: no config produces this file",
    "leftover": "TEMP    {path}: a temp file an interrupted run left behind; delete it (or run with --fix)",
    "lock": "LOCK    {path}: {detail}",
    "upgrade": "UPGRADE {path}: upstream moved since these fingerprints were recorded",
    "error": "ERROR   {detail}",
}


@dataclass(frozen=True)
class Finding:
    kind: str  # drift | missing | orphan | leftover | lock | upgrade | error
    path: str
    detail: str = ""

    def headline(self) -> str:
        return LABELS[self.kind].format(path=self.path, detail=self.detail)


def check(
    root: Path, config_name: str = "config", *, verify_import: bool = False, use_cache: bool = True
) -> tuple[list[Finding], dict[Path, str]]:
    """All findings, and the fresh text of every output keyed by its path.

    `verify_import` also imports every generated module in one subprocess when all else is clean.
    """
    specs = discover_configs(root)
    cache = Cache(root) if use_cache else None
    with cache.recording() if cache is not None else nullcontext():
        return _check(root, specs, config_name, verify_import, cache)


def _check(
    root: Path, specs: list[str], config_name: str, verify_import: bool, cache: Cache | None
) -> tuple[list[Finding], dict[Path, str]]:
    importing = None
    if verify_import:  # started first: torch imports in the child while this process generates
        blocked = {spec.split(".", 1)[0] for spec in specs}
        importing = ImportCheck(committed_modules(root), root, blocked, cache)
    try:
        runs = run_configs(root, specs, config_name, cache=cache)
        findings, expected = compare_outputs(root, runs, cache)
        if importing is not None and not findings:
            modules = {p: t for p, t in expected.items() if p.suffix == ".py" and p.name != "__init__.py"}
            findings += [Finding("error", str(f.path), str(f)) for f in importing.failures(modules)]
    finally:
        if importing is not None:
            importing.cancel()
    return findings, expected


def compare_outputs(
    root: Path, runs: list[ConfigRun], cache: Cache | None = None
) -> tuple[list[Finding], dict[Path, str]]:
    """Findings of every kind but the import check, and the fresh text of every output."""
    findings = [Finding("error", r.module_name, r.generation.error) for r in runs if r.generation.error]
    expected: dict[Path, str] = {}
    for run in runs:
        for output in run.generation.outputs:
            expected[output.path] = output.text
    unreadable_locks = {
        lock_path(r.generation.module_output.path): r.generation.lock_error
        for r in runs
        if r.generation.lock_error and r.generation.module_output
    }
    for path, text in sorted(expected.items()):
        if path in unreadable_locks:
            findings.append(Finding("lock", str(path), unreadable_locks[path]))
        elif not (root / path).exists():
            findings.append(Finding("missing", str(path)))
        elif (committed := read_committed(root / path)) != text:
            diff = unified_diff(committed, text, f"committed/{path}", f"regenerated/{path}")
            findings.append(Finding("drift", str(path), diff))
    findings += stray_files(root, expected, complete=not any(r.generation.error for r in runs))
    for finding in upgrade_findings(root, runs, cache):
        if not (finding.kind == "lock" and Path(finding.path) in unreadable_locks):  # not twice
            findings.append(finding)
    return findings, expected


def upgrade_findings(root: Path, runs: list[ConfigRun], cache: Cache | None = None) -> list[Finding]:
    """The upgrade report of every lock file as findings: upstream moved, or a lock is unreadable.

    Statuses only (hashes compared, no hunk classified: `build_report(with_hunks=False)`), so a moved
    upstream costs seconds here; the hunks are the full report's job (`patchgen upgrade-report`).
    Cached (`patchgen.verify.cache`) on the lock files, every upstream file read and what the configs mention.
    """
    mentioned = {r.summary.module_name: frozenset(r.summary.mentions) for r in runs if r.summary}
    locks = sorted(str(p) for p in (root / load_layout(root).output_root).rglob(f"*{LOCK_SUFFIX}"))
    key = [locks, sorted((name, sorted(names)) for name, names in mentioned.items())]
    stored = cache.load("upgrade", key, _findings_from_json) if cache is not None else None
    if stored is not None:
        return stored
    findings, upstream_files = [], set()
    for report in build_report(root, mentioned, with_hunks=False):
        if report.lock is None:
            findings.append(Finding("lock", str(report.path), report.error))
            continue
        upstream_files.add(str(read_installed(report.lock.source_module).path))
        if report.has_news:  # another upstream version, or a patched target that changed under it
            findings.append(Finding("upgrade", str(report.path), render(report)))
    if cache is not None:
        inputs = cache.inputs_now([*locks, *upstream_files, *map(str, FILES_READ)])
        cache.store("upgrade", key, inputs, [[f.kind, f.path, f.detail] for f in findings])
    return findings


def _findings_from_json(data: object) -> list[Finding]:
    """Findings as `upgrade_findings` stored them; `CacheEntryError` for anything of another shape."""
    if not isinstance(data, list) or not all(
        isinstance(item, list) and len(item) == 3 and all(isinstance(part, str) for part in item) and item[0] in LABELS
        for item in data
    ):
        raise CacheEntryError("upgrade findings must be [kind, path, detail] lists")
    return [Finding(*item) for item in data]


def stray_files(root: Path, expected: dict[Path, str], *, complete: bool) -> list[Finding]:
    """Temp files a killed run left, and (when every config generated: `complete`) orphaned outputs."""
    findings = []
    for path in sorted((root / load_layout(root).output_root).rglob("*")):
        relative = path.relative_to(root)
        if is_leftover_temp(path):
            findings.append(Finding("leftover", str(relative)))
        elif complete and path.name.endswith((".py", ".diff", LOCK_SUFFIX)) and relative not in expected:
            findings.append(Finding("orphan", str(relative)))
    return findings


def committed_modules(root: Path) -> list[Path]:
    """The generated modules as committed (what the import check imports)."""
    folder = root / load_layout(root).output_root
    return sorted(
        p.relative_to(root) for p in folder.rglob("*.py") if p.name != "__init__.py" and not is_leftover_temp(p)
    )


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--fix", is_flag=True, help="Write regenerated files over drifted or missing ones; delete orphans and temp files."
)
@click.option("-c", "--config-name", default="config", show_default=True, help="Variable holding the PatchConfig.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the summary lines, not the diffs.")
@click.option("--no-import", is_flag=True, help="Skip importing the generated modules in a subprocess.")
@click.option("--no-cache", is_flag=True, help="Import and generate every config; ignore .patchgen-cache/.")
def main(fix: bool, config_name: str, quiet: bool, no_import: bool, no_cache: bool) -> None:
    """Check that every generated file equals a fresh regeneration of its config.

    Run anywhere inside the project (see [tool.patchgen]). Exit status: 0 when all match, 1 on
    drift, missing, orphaned or leftover temp files, an unreadable lock file, a config that fails to
    import or generate, an upstream that moved under the recorded fingerprints (the upgrade report is
    printed), or a generated module that does not import; 2 outside a project; 130 when interrupted.
    """
    with one_line_errors():
        root = enter_project().root
        findings, expected = check(root, config_name, verify_import=not no_import, use_cache=not no_cache)
        _print(findings, quiet)
        if fix:
            findings = _fix(root, findings, expected)
    configs = len(discover_configs(root))
    if findings:
        click.echo(f"check-patchgen: FAILED ({len(findings)} problem(s) across {configs} config(s))")
        sys.exit(EXIT_FINDINGS)
    click.echo(f"check-patchgen: OK ({configs} config(s), {len(expected)} file(s) up to date)")


def _print(findings: list[Finding], quiet: bool) -> None:
    for finding in findings:
        click.echo(finding.headline())
        if finding.kind == "drift" and not quiet:
            click.echo(finding.detail, nl=False)
        elif finding.kind == "upgrade":
            click.echo(finding.detail if not quiet else _without_diffs(finding.detail), nl=False)


def _fix(root: Path, findings: list[Finding], expected: dict[Path, str]) -> list[Finding]:
    """Write fresh files over drifted and missing ones, delete orphans and temp files; what is left."""
    if any(f.kind in ("error", "lock") for f in findings):
        click.echo("not fixing: a config failed or a lock file is unreadable; fix that first", err=True)
        return findings
    rewrite = [f for f in findings if f.kind in ("drift", "missing")]
    write_all({root / f.path: expected[Path(f.path)] for f in rewrite})
    for finding in rewrite:
        click.echo(f"fixed   {finding.path}")
    for finding in findings:
        if finding.kind in ("orphan", "leftover"):
            (root / finding.path).unlink()
            click.echo(f"removed {finding.path}")
    return []  # an upstream move that needs no review is settled by the rewritten lock files


def _without_diffs(report: str) -> str:
    return "".join(line for line in report.splitlines(keepends=True) if not line.startswith("      "))


if __name__ == "__main__":
    run_command(main)
