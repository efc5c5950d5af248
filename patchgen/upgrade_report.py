"""`python -m patchgen.upgrade_report`: what an upstream upgrade did to each patch.

Reads every lock file under `generated/` (see `patchgen.fingerprints`) and compares each recorded
patch subject with the installed upstream:

    UNCHANGED  upstream is the same (formatting and comments aside): safe to regenerate
    CHANGED    upstream changed: the unified diff shows what the patch must now absorb
    REMOVED    upstream no longer has it: renamed or deleted, with the closest new name
    INVALID    the recorded fingerprint is not the hash of the recorded source: the lock was edited
    NEW        upstream classes or functions that appeared since and that the config does not mention

Exit status: 0 when no patched subject needs review, 1 when one does, 2 on bad input.
`--accept` records the installed upstream in the lock files after review; then regenerate.
The recorded text lives in the lock files, so the old `transformers` need not be installed.
"""

from __future__ import annotations

import ast
import difflib
import enum
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

from patchgen.cli_errors import one_line_errors
from patchgen.errors import PatchgenError
from patchgen.fingerprints import (
    LOCK_SUFFIX,
    Fingerprint,
    Lock,
    build_lock,
    fingerprint_of,
    lock_path,
    normalise,
    read_lock,
    subject_source,
)
from patchgen.layout import enter_project, is_path_spec, load_layout
from patchgen.outputs import write_atomic
from patchgen.patch_spec import PatchConfig
from patchgen.source_text import Snippet
from patchgen.upstream import UpstreamModule, read_upstream


EXIT_REVIEW, EXIT_BAD_INPUT = 1, 2


class Status(enum.Enum):
    UNCHANGED = "unchanged upstream (safe to regenerate)"
    CHANGED = "changed upstream: the patch must absorb this"
    REMOVED = "removed or renamed upstream"
    INVALID = "recorded fingerprint is not the hash of the recorded source: the lock file was edited"


@dataclass(frozen=True)
class TargetReport:
    recorded: Fingerprint
    status: Status
    diff: str = ""
    closest: str | None = None


@dataclass
class LockReport:
    path: Path
    lock: Lock | None = None
    error: str | None = None
    installed_version: str = ""
    targets: list[TargetReport] = field(default_factory=list)
    new_names: list[str] = field(default_factory=list)

    @property
    def needs_review(self) -> bool:
        return self.error is not None or any(t.status is not Status.UNCHANGED for t in self.targets)

    @property
    def has_news(self) -> bool:
        """Something to tell: a subject to review, another upstream version, or new upstream names."""
        version_moved = self.lock is not None and self.lock.upstream_version != self.installed_version
        return self.needs_review or version_moved or bool(self.new_names)


# -- comparing ------------------------------------------------------------------------------------


def compare(path: Path, lock: Lock, upstream: UpstreamModule, mentioned: frozenset[str] = frozenset()) -> LockReport:
    report = LockReport(path, lock, installed_version=upstream.version)
    for recorded in lock.patches:
        report.targets.append(_compare_one(recorded, lock, upstream))
    known = set(lock.upstream_names) | mentioned
    report.new_names = sorted(name for name in upstream.definitions if name not in known)
    return report


def _compare_one(recorded: Fingerprint, lock: Lock, upstream: UpstreamModule) -> TargetReport:
    if not recorded.is_intact():
        return TargetReport(recorded, Status.INVALID)
    installed = subject_source(upstream, recorded.subject)
    if installed is None or _inherited(installed) and not _inherited(recorded.source):
        return TargetReport(recorded, Status.REMOVED, closest=closest_name(recorded, lock, upstream))
    if fingerprint_of(installed) == recorded.sha256:
        return TargetReport(recorded, Status.UNCHANGED)
    diff = "".join(
        difflib.unified_diff(
            recorded.source.splitlines(keepends=True),
            installed.splitlines(keepends=True),
            fromfile=f"recorded/{recorded.subject} ({lock.upstream_version})",
            tofile=f"installed/{recorded.subject} ({upstream.version})",
        )
    )
    return TargetReport(recorded, Status.CHANGED, diff=diff)


def _inherited(source: str) -> bool:
    return source.startswith("# no ") and "of its own upstream" in source.splitlines()[0]


def closest_name(recorded: Fingerprint, lock: Lock, upstream: UpstreamModule) -> str | None:
    """The installed name most like the vanished subject: new names first, by text and by name."""
    owner, _, member = recorded.subject.partition(".")
    if not member:
        kind = type(Snippet.parse(recorded.source).definition)
        candidates = {n: d for n, d in upstream.definitions.items() if isinstance(d, kind)}
        return _best(
            owner, recorded.source, candidates, lambda n: subject_source(upstream, n), set(lock.upstream_names)
        )
    classes = {n: d for n, d in upstream.definitions.items() if isinstance(d, ast.ClassDef)}
    if owner in classes:
        methods = {n.name: n for n in classes[owner].body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        best = _best(member, recorded.source, methods, lambda n: subject_source(upstream, f"{owner}.{n}"), set())
        return f"{owner}.{best}" if best else None
    # The class itself went: the class that now holds the most similar method of that name.
    scored = []
    for name, cls in classes.items():
        method = next((n for n in cls.body if getattr(n, "name", None) == member), None)
        if method is not None and name not in lock.upstream_names:
            scored.append((_similarity(recorded.source, subject_source(upstream, f"{name}.{member}") or ""), name))
    if scored:
        score, name = max(scored)
        if score >= 0.6:
            return f"{name}.{member}"
    close = difflib.get_close_matches(owner, list(classes), n=1, cutoff=0.6)
    return f"{close[0]}.{member}" if close else None


def _best(old: str, old_source: str, candidates: dict, source_of, old_names: set[str]) -> str | None:
    """The candidate most like `old` by text (with the name swapped) or by name; new names win ties."""
    scored = []
    for name in candidates:
        if name == old:
            continue
        text = source_of(name)
        renamed = re.sub(rf"\b{re.escape(old)}\b", name, old_source)
        score = max(_similarity(renamed, text or ""), difflib.SequenceMatcher(None, old, name).ratio())
        scored.append((name not in old_names, score, name))
    good = [s for s in scored if s[1] >= 0.6]
    return max(good)[2] if good else None


def _similarity(a: str, b: str) -> float:
    try:
        a, b = normalise(a), normalise(b)
    except SyntaxError:
        pass
    return difflib.SequenceMatcher(None, a, b).ratio()


def build_report(root: Path, mentioned: dict[str, frozenset[str]] | None = None) -> list[LockReport]:
    """One report per lock file under the project's output root (`generated/`), in path order."""
    reports = []
    for path in sorted((root / load_layout(root).output_root).rglob(f"*{LOCK_SUFFIX}")):
        relative = path.relative_to(root)
        try:
            lock = read_lock(path)
            upstream = read_upstream(lock.source_module)
        except PatchgenError as exc:
            reports.append(LockReport(relative, error=str(exc)))
            continue
        reports.append(compare(relative, lock, upstream, (mentioned or {}).get(lock.config, frozenset())))
    return reports


def mentions(config: PatchConfig) -> frozenset[str]:
    """Upstream names a config already deals with: its targets, their classes and its exclusions."""
    names = {p.target for p in config.patches} | {p.target_class for p in config.patches}
    return frozenset(names | {e.name for e in config.exclusions})


# -- printing -------------------------------------------------------------------------------------


def render(report: LockReport) -> str:
    lines = []
    if report.lock is None:
        return f"{report.path}: ERROR {report.error}\n"
    lock = report.lock
    lines.append(f"{report.path} ({lock.config})")
    version = (
        f"{lock.upstream_version} recorded, {report.installed_version} installed"
        if lock.upstream_version != report.installed_version
        else f"{lock.upstream_version} (unchanged)"
    )
    lines.append(f"  upstream {lock.source_module}: {version}")
    for target in report.targets:
        recorded = target.recorded
        label = recorded.label + (f" ({recorded.subject})" if recorded.subject != recorded.target else "")
        if target.status is Status.REMOVED:
            hint = f"; closest new name: {target.closest}" if target.closest else "; no similar name upstream"
            lines.append(f"  REMOVED   {label}: {target.status.value}{hint}")
        else:
            lines.append(f"  {target.status.name:<9} {label}: {target.status.value}")
        if target.diff:
            lines.extend("      " + line for line in target.diff.splitlines())
    renamed = {t.closest.split(".")[0]: t.recorded.target for t in report.targets if t.closest}
    for name in report.new_names:
        hint = f" (the closest match for the vanished {renamed[name]})" if name in renamed else ""
        lines.append(f"  NEW       {name}: new upstream class or function that the config does not mention{hint}")
    return "\n".join(lines) + "\n"


def summary(reports: list[LockReport]) -> str:
    counts = {status: 0 for status in Status}
    for report in reports:
        for target in report.targets:
            counts[target.status] += 1
    errors = sum(1 for r in reports if r.lock is None)
    new = sum(len(r.new_names) for r in reports)
    parts = [f"{counts[s]} {s.name.lower()}" for s in Status if counts[s]] + [f"{new} new upstream name(s)"]
    if errors:
        parts.append(f"{errors} unreadable lock(s)")
    verdict = (
        "review the diffs, fix the patches, then run `python -m patchgen.upgrade_report --accept` and regenerate"
        if any(r.needs_review for r in reports)
        else "no patched target needs review"
    )
    return f"upgrade-report: {', '.join(parts)}: {verdict}"


# -- accepting ------------------------------------------------------------------------------------


def accept(root: Path, specs: list[str], config_name: str) -> list[tuple[Path, str]]:
    """Fresh lock texts from the installed upstream for the given configs (all when none given).

    Every config is validated by the planner first; one failure raises and nothing is written.
    """
    from patchgen.codegen import target_path
    from patchgen.discovery import discover_configs, load_config
    from patchgen.plan import make_plan

    out = []
    for spec in specs or discover_configs(root):
        loaded = load_config(spec, config_name, root)
        if getattr(loaded.config, "abstract", False):
            continue  # a base config has no file of its own; the configs extending it carry its patches
        upstream = read_upstream(loaded.config.source_module)
        make_plan(loaded.config, loaded.module_name, upstream)
        path = lock_path(target_path(loaded))
        out.append((path, build_lock(loaded.config, loaded.module_name, upstream).text()))
    return out


def _mentions_by_config(reports: list[LockReport], root: Path, config_name: str) -> dict[str, frozenset[str]]:
    """Best effort: a config that fails to import after an upgrade just filters nothing."""
    from patchgen.discovery import load_config

    found = {}
    for report in reports:
        if report.lock is not None and report.new_names:
            try:
                found[report.lock.config] = mentions(load_config(report.lock.config, config_name, root).config)
            except PatchgenError:
                continue
    return found


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("configs", nargs=-1)
@click.option(
    "--accept", "accept_flag", is_flag=True, help="After review: record the installed upstream in the lock files."
)
@click.option("-c", "--config-name", default="config", show_default=True, help="Variable holding the PatchConfig.")
def main(configs: tuple[str, ...], accept_flag: bool, config_name: str) -> None:
    """Report what the installed upstream changed under each patch since its lock file was recorded.

    Run anywhere inside the project (see [tool.patchgen]). CONFIGS (dotted names or paths) limit
    --accept to those configs. Exit status: 0 when no patched target changed, 1 when one did (review
    it), 2 on bad input or outside a project.
    """
    typed_in = Path.cwd()
    with one_line_errors():
        layout = enter_project()
    root = layout.root
    configs = tuple(str(layout.user_path(Path(c), typed_in)) if is_path_spec(c) else c for c in configs)
    if accept_flag:
        try:
            fresh = accept(root, list(configs), config_name)
        except PatchgenError as exc:
            click.echo(f"error: {exc}", err=True)
            click.echo("nothing accepted", err=True)
            sys.exit(EXIT_BAD_INPUT)
        for path, text in fresh:
            full = root / path
            unchanged = full.exists() and full.read_text(encoding="utf-8") == text
            if not unchanged:
                write_atomic(full, text)
            click.echo(f"{'unchanged' if unchanged else 'accepted'} {path}")
        click.echo("upgrade-report: fingerprints refreshed; now run `python -m patchgen.run_codegen --all --diff`")
        return
    reports = build_report(root)
    if not reports:
        click.echo(f"error: no *{LOCK_SUFFIX} under {root / layout.output_root}; generate with --diff first", err=True)
        sys.exit(EXIT_BAD_INPUT)
    wanted = _mentions_by_config(reports, root, config_name)
    if wanted:
        reports = [
            compare(r.path, r.lock, read_upstream(r.lock.source_module), wanted.get(r.lock.config, frozenset()))
            if r.lock is not None
            else r
            for r in reports
        ]
    for report in reports:
        click.echo(render(report), nl=False)
    click.echo(summary(reports))
    if any(r.needs_review for r in reports):
        sys.exit(EXIT_REVIEW)


if __name__ == "__main__":
    main()
