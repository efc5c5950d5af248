"""`python -m patchgen.check_patchgen`: fail when committed generated files drift from their configs.

Regenerates every config in memory (one ruff run), compares each `.py` and `.diff` with the
committed file, and reports drift as a unified diff, missing outputs, generated files no config
produces, and configs that fail to import or generate. Exit 0 only when everything matches;
`--fix` writes the fresh outputs and removes orphans.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import click

from patchgen.codegen import generate
from patchgen.discovery import discover_configs, load_config
from patchgen.errors import PatchgenError
from patchgen.outputs import unified_diff, write_atomic


GENERATED_DIR = Path("generated")


@dataclass(frozen=True)
class Finding:
    kind: str  # drift | missing | orphan | error
    path: str
    detail: str = ""


def check(root: Path, config_name: str = "config") -> tuple[list[Finding], dict[Path, str]]:
    """All findings, and the fresh text of every output keyed by its path."""
    findings: list[Finding] = []
    loaded = []
    for spec in discover_configs(root):
        try:
            loaded.append(load_config(spec, config_name, root))
        except PatchgenError as exc:
            findings.append(Finding("error", spec, str(exc)))
    expected: dict[Path, str] = {}
    for result in generate(loaded, with_diff=True):
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
    for path in sorted((root / GENERATED_DIR).rglob("*")):
        relative = path.relative_to(root)
        if path.suffix in (".py", ".diff") and relative not in expected and not failed_models:
            findings.append(Finding("orphan", str(relative)))
    return findings, expected


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--fix", is_flag=True, help="Write regenerated files over drifted or missing ones; delete orphans.")
@click.option("-c", "--config-name", default="config", show_default=True, help="Variable holding the PatchConfig.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the summary lines, not the diffs.")
def main(fix: bool, config_name: str, quiet: bool) -> None:
    """Check that every generated file equals a fresh regeneration of its config.

    Run from the project root. Exit status: 0 when all match, 1 on drift, missing or orphaned
    files, or a config that fails to import or generate.
    """
    root = Path.cwd()
    findings, expected = check(root, config_name)
    for finding in findings:
        if finding.kind == "drift":
            click.echo(f"DRIFT   {finding.path}: committed file differs from a fresh regeneration")
            if not quiet:
                click.echo(finding.detail, nl=False)
        elif finding.kind == "missing":
            click.echo(f"MISSING {finding.path}: a config produces it but it is not committed")
        elif finding.kind == "orphan":
            click.echo(f"ORPHAN  {finding.path}: no config produces this file")
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


if __name__ == "__main__":
    main()
