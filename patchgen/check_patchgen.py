"""`python -m patchgen.check_patchgen`: fail when committed generated files drift from their configs.

Regenerates every config in memory (one ruff run), compares each `.py`, `.diff` and `.lock.json`
with the committed file, and reports drift as a unified diff, missing outputs, generated files no
config produces, and configs that fail to import or generate. When upstream moved under the
recorded fingerprints it prints the upgrade report (`patchgen.upgrade_report`); when all else is
clean it imports every generated module in one subprocess (`--no-import` skips that). Exit 0 only
when everything matches; `--fix` writes the fresh outputs and removes orphans.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import click

from patchgen.codegen import generate
from patchgen.discovery import discover_configs, load_config
from patchgen.errors import PatchgenError
from patchgen.fingerprints import LOCK_SUFFIX
from patchgen.import_check import import_generated
from patchgen.layout import load_layout, project_layout_or_exit
from patchgen.light_imports import run_light
from patchgen.outputs import unified_diff, write_atomic
from patchgen.upgrade_report import build_report, mentions, render


@dataclass(frozen=True)
class Finding:
    kind: str  # drift | missing | orphan | error
    path: str
    detail: str = ""


def check(
    root: Path, config_name: str = "config", *, verify_import: bool = False
) -> tuple[list[Finding], dict[Path, str]]:
    """All findings, and the fresh text of every output keyed by its path.

    `verify_import` also imports every generated module in one subprocess when all else is clean.
    """
    layout = load_layout(root)
    findings: list[Finding] = []
    loaded = []
    for spec in discover_configs(root):
        try:
            loaded.append(load_config(spec, config_name, root))
        except PatchgenError as exc:
            findings.append(Finding("error", spec, str(exc)))
    expected: dict[Path, str] = {}
    for result in generate(loaded, with_diff=True, layout=layout):
        if result.error:
            findings.append(Finding("error", result.config_module, result.error))
            continue
        for output in result.outputs:
            expected[output.path] = output.text
    for path, text in sorted(expected.items()):
        committed = root / path
        if not committed.exists():
            findings.append(Finding("missing", str(path)))
        else:
            current = committed.read_text(encoding="utf-8")
            if current != text:
                diff = unified_diff(current, text, f"committed/{path}", f"regenerated/{path}")
                findings.append(Finding("drift", str(path), diff))
    failed_models = {f.path for f in findings if f.kind == "error"}
    for path in sorted((root / layout.output_root).rglob("*")):
        relative = path.relative_to(root)
        if path.name.endswith((".py", ".diff", LOCK_SUFFIX)) and relative not in expected and not failed_models:
            findings.append(Finding("orphan", str(relative)))
    for report in build_report(root, {item.module_name: mentions(item.config) for item in loaded}):
        if report.has_news:  # another upstream version, or a patched target that changed under it
            findings.append(Finding("upgrade", str(report.path), render(report)))
    if verify_import and not findings:
        modules = [path for path in expected if path.suffix == ".py" and path.name != "__init__.py"]
        blocked = {item.module_name.split(".", 1)[0] for item in loaded}
        findings += [Finding("error", str(f.path), str(f)) for f in import_generated(modules, root, blocked)]
    return findings, expected


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--fix", is_flag=True, help="Write regenerated files over drifted or missing ones; delete orphans.")
@click.option("-c", "--config-name", default="config", show_default=True, help="Variable holding the PatchConfig.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the summary lines, not the diffs.")
@click.option("--no-import", is_flag=True, help="Skip importing the generated modules in a subprocess (about 5 s).")
def main(fix: bool, config_name: str, quiet: bool, no_import: bool) -> None:
    """Check that every generated file equals a fresh regeneration of its config.

    Run anywhere inside the project (see [tool.patchgen]). Exit status: 0 when all match, 1 on
    drift, missing or orphaned files, a config that fails to import or generate, an upstream that
    moved under the recorded fingerprints (the upgrade report is printed), or a generated module that
    does not import; 2 outside a project.
    """
    root = project_layout_or_exit().root
    # configs load against stubbed torch/transformers when that gives the same answer (patchgen.light_imports)
    (findings, expected), _ = run_light(
        lambda: check(root, config_name, verify_import=not no_import),
        succeeded=lambda outcome: not any(f.kind == "error" for f in outcome[0]),
    )
    for finding in findings:
        if finding.kind == "drift":
            click.echo(f"DRIFT   {finding.path}: committed file differs from a fresh regeneration")
            if not quiet:
                click.echo(finding.detail, nl=False)
        elif finding.kind == "missing":
            click.echo(f"MISSING {finding.path}: a config produces it but it is not committed")
        elif finding.kind == "orphan":
            click.echo(f"ORPHAN  {finding.path}: no config produces this file")
        elif finding.kind == "upgrade":
            click.echo(f"UPGRADE {finding.path}: upstream moved since these fingerprints were recorded")
            click.echo(finding.detail if not quiet else _without_diffs(finding.detail), nl=False)
        else:
            click.echo(f"ERROR   {finding.detail}")
    errors = [f for f in findings if f.kind == "error"]
    if fix and not errors:
        for finding in findings:
            path = root / finding.path
            if finding.kind in ("drift", "missing"):
                write_atomic(path, expected[Path(finding.path)])
                click.echo(f"fixed   {finding.path}")
            elif finding.kind == "orphan":
                path.unlink()
                click.echo(f"removed {finding.path}")
        findings = errors
    elif fix:
        click.echo("not fixing: a config failed; fix it first", err=True)
    configs = len(discover_configs(root))
    if findings:
        click.echo(f"check-patchgen: FAILED ({len(findings)} problem(s) across {configs} config(s))")
        sys.exit(1)
    click.echo(f"check-patchgen: OK ({configs} config(s), {len(expected)} file(s) up to date)")


def _without_diffs(report: str) -> str:
    return "".join(line for line in report.splitlines(keepends=True) if not line.startswith("      "))


if __name__ == "__main__":
    main()
