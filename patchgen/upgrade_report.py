"""`python -m patchgen.upgrade_report`: what an upstream upgrade did to each patch, and who must absorb it.

Reads every lock file under `generated/` (see `patchgen.fingerprints`) and compares each recorded
patch subject, and each upstream dependency the patched code uses, with the installed upstream:

    UNCHANGED  upstream is the same (formatting and comments aside): safe to regenerate
    CHANGED    upstream changed, in the subject itself or in a dependency it or its patch uses
    REMOVED    upstream no longer has it: renamed or deleted, with the closest new name
    INVALID    the recorded fingerprint is not the hash of the recorded source: the lock was edited
    NEW        upstream classes or functions that appeared since and that the config does not mention

CHANGED targets are then grouped by the patch that must absorb them (its `file:line` and patch
sets: one shared function patched onto 8 classes is one group). Each hunk of the upstream change is
classified (code, annotation-only, docstring-only, formatting-only; `patchgen.review_hunks`) and
shown three ways: old upstream, new upstream, and the patch's own corresponding lines. Identical
hunks in several targets are shown once. Changed dependencies follow, each once, with their users.

Exit status: 0 when no patched subject needs review, 1 when one does, 2 on bad input.
`--accept` records the installed upstream in the lock files after review (`patchgen.upgrade_accept`):
it refuses a CHANGED target whose patch code is the same as when the lock was recorded, unless
`--reviewed TARGET --reason "..."` says why the patch needs no change; the reason goes into the
lock and this report shows it. The recorded text lives in the lock files, so the old `transformers`
need not be installed.
"""

from __future__ import annotations

import ast
import difflib
import enum
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import click

from patchgen.cli_errors import one_line_errors
from patchgen.errors import PatchgenError
from patchgen.fingerprints import (
    LOCK_SUFFIX,
    DependencyRecord,
    Fingerprint,
    Lock,
    Review,
    fingerprint_of,
    normalise,
    read_lock,
    subject_source,
)
from patchgen.layout import enter_project, is_path_spec, load_layout
from patchgen.outputs import write_atomic
from patchgen.patch_spec import PatchConfig, PatchKind
from patchgen.review_hunks import Hunk, corresponding_lines, hunks
from patchgen.source_text import Snippet
from patchgen.upstream import UpstreamModule, read_upstream
from patchgen.upstream_dependencies import Package, resolve_qualified


EXIT_REVIEW, EXIT_BAD_INPUT = 1, 2
INDENT = "      "  # every line of a hunk starts with it (`check_patchgen -q` drops such lines)


class Status(enum.Enum):
    UNCHANGED = "unchanged upstream (safe to regenerate)"
    CHANGED = "changed upstream: the patch must absorb this"
    REMOVED = "removed or renamed upstream"
    INVALID = "recorded fingerprint is not the hash of the recorded source: the lock file was edited"


@dataclass(frozen=True)
class DependencyReport:
    recorded: DependencyRecord
    status: Status
    installed: str | None = None
    hunks: tuple[Hunk, ...] = ()


@dataclass(frozen=True)
class TargetReport:
    recorded: Fingerprint
    status: Status
    diff: str = ""
    closest: str | None = None
    installed: str | None = None  # the installed subject's text, when it changed
    hunks: tuple[Hunk, ...] = ()
    changed_dependencies: tuple[str, ...] = ()  # qualified names, CHANGED/REMOVED/INVALID in this lock

    @property
    def kinds(self) -> list[str]:
        return sorted({h.kind for h in self.hunks})


@dataclass
class LockReport:
    path: Path
    lock: Lock | None = None
    error: str | None = None
    installed_version: str = ""
    targets: list[TargetReport] = field(default_factory=list)
    dependencies: list[DependencyReport] = field(default_factory=list)
    new_names: list[str] = field(default_factory=list)

    @property
    def needs_review(self) -> bool:
        return self.error is not None or any(t.status is not Status.UNCHANGED for t in self.targets)

    @property
    def has_news(self) -> bool:
        """Something to tell: a subject to review, another upstream version, or new upstream names."""
        version_moved = self.lock is not None and self.lock.upstream_version != self.installed_version
        return self.needs_review or version_moved or bool(self.new_names)

    @property
    def short_name(self) -> str:
        """`qwen3_cpu` for `generated/qwen3/patched_modeling_qwen3_cpu.lock.json`."""
        return self.path.name.removesuffix(LOCK_SUFFIX).removeprefix("patched_modeling_")


# -- comparing ------------------------------------------------------------------------------------


def compare(path: Path, lock: Lock, upstream: UpstreamModule, mentioned: frozenset[str] = frozenset()) -> LockReport:
    report = LockReport(path, lock, installed_version=upstream.version)
    package = Package.of(upstream)
    report.dependencies = [_compare_dependency(record, package) for record in lock.dependencies]
    moved = {d.recorded.name for d in report.dependencies if d.status is not Status.UNCHANGED}
    for recorded in lock.patches:
        target = _compare_one(recorded, lock, upstream)
        changed = tuple(name for name in recorded.dependencies if name in moved)
        if changed and target.status in (Status.UNCHANGED, Status.CHANGED):
            target = replace(target, status=Status.CHANGED, changed_dependencies=changed)
        report.targets.append(target)
    known = set(lock.upstream_names) | mentioned
    report.new_names = sorted(name for name in upstream.definitions if name not in known)
    return report


def _compare_dependency(recorded: DependencyRecord, package: Package) -> DependencyReport:
    if not recorded.is_intact():
        return DependencyReport(recorded, Status.INVALID)
    installed = resolve_qualified(package, recorded.name)
    if installed is None:
        return DependencyReport(recorded, Status.REMOVED)
    if fingerprint_of(installed.source) == recorded.sha256:
        return DependencyReport(recorded, Status.UNCHANGED)
    return DependencyReport(
        recorded, Status.CHANGED, installed.source, tuple(hunks(recorded.source, installed.source))
    )


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
    return TargetReport(
        recorded, Status.CHANGED, diff=diff, installed=installed, hunks=tuple(hunks(recorded.source, installed))
    )


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


# -- the patches' own text, for showing beside each hunk --------------------------------------------


@dataclass(frozen=True)
class PatchText:
    path: str  # `models/common/fused_loss.py`
    first_line: int  # file line of `lines[0]` (the `def`/`class` line)
    lines: tuple[str, ...]


@dataclass
class ConfigLookup:
    """The configs named by the locks, loaded once (best effort: a config broken by the upgrade is reported)."""

    root: Path
    config_name: str
    loaded: dict[str, PatchConfig | str] = field(default_factory=dict)  # config module -> config, or why not

    def config(self, module: str) -> PatchConfig | str:
        from patchgen.discovery import load_config

        if module not in self.loaded:
            try:
                self.loaded[module] = load_config(module, self.config_name, self.root).config
            except PatchgenError as exc:
                self.loaded[module] = f"config {module} does not load ({exc})"
        return self.loaded[module]

    def patch_text(self, config_module: str, target: str) -> PatchText | str:
        """The patch's current text, or a line saying why there is none to show."""
        from patchgen.patch_source import read_patch_source

        config = self.config(config_module)
        if isinstance(config, str):
            return config
        patch = next((p for p in config.patches if p.target == target), None)
        if patch is None:
            return f"{config_module} no longer patches {target}"
        if patch.kind is PatchKind.EXTERNAL_REPLACEMENT:
            return f"{patch.defined_at} imports {patch.replacement_module}.{patch.replacement_name}: no copied source"
        try:
            source = read_patch_source(patch.replacement, f"{config_module}: {patch.label}")
        except PatchgenError as exc:
            return str(exc)
        return PatchText(source.location.path, source.location.line, tuple(source.definition.splitlines()))


# -- grouping by the patch that must absorb the change -----------------------------------------------


@dataclass
class PatchGroup:
    """CHANGED targets whose recorded patch is the same definition (`file:line`)."""

    source: str
    name: str
    patch_sets: list[str] = field(default_factory=list)
    members: list[tuple[LockReport, TargetReport]] = field(default_factory=list)


def group_by_patch(reports: list[LockReport]) -> list[PatchGroup]:
    groups: dict[str, PatchGroup] = {}
    for report in reports:
        for target in report.targets:
            if target.status is not Status.CHANGED:
                continue
            patch = target.recorded.patch
            source = patch.source if patch else f"{report.lock.config} (patch not recorded in this lock)"
            group = groups.setdefault(source, PatchGroup(source, patch.name if patch else target.recorded.target))
            if patch and patch.patch_set and patch.patch_set not in group.patch_sets:
                group.patch_sets.append(patch.patch_set)
            group.members.append((report, target))
    return [groups[key] for key in sorted(groups)]


# -- printing -------------------------------------------------------------------------------------


def render(report: LockReport) -> str:
    """One lock's statuses, a line per patched target (the hunks are in `render_groups`)."""
    if report.lock is None:
        return f"{report.path}: ERROR {report.error}\n"
    lock = report.lock
    lines = [f"{report.path} ({lock.config})"]
    version = (
        f"{lock.upstream_version} recorded, {report.installed_version} installed"
        if lock.upstream_version != report.installed_version
        else f"{lock.upstream_version} (unchanged)"
    )
    lines.append(f"  upstream {lock.source_module}: {version}")
    for target in report.targets:
        lines.append(f"  {target.status.name:<9} {_target_label(target.recorded)}: {_status_detail(target)}")
    for dependency in report.dependencies:
        if dependency.status is Status.UNCHANGED and dependency.recorded.reviewed is not None:
            lines.append(
                f"  UNCHANGED dependency {dependency.recorded.name}: {Status.UNCHANGED.value}"
                f"{_review_note(dependency.recorded.reviewed)}"
            )
    renamed = {t.closest.split(".")[0]: t.recorded.target for t in report.targets if t.closest}
    for name in report.new_names:
        hint = f" (the closest match for the vanished {renamed[name]})" if name in renamed else ""
        lines.append(f"  NEW       {name}: new upstream class or function that the config does not mention{hint}")
    if any(t.status is Status.CHANGED for t in report.targets):
        lines.append("  (each change beside the patch's own lines: `python -m patchgen.upgrade_report`)")
    return "\n".join(lines) + "\n"


def _target_label(recorded: Fingerprint) -> str:
    return recorded.label + (f" ({recorded.subject})" if recorded.subject != recorded.target else "")


def _status_detail(target: TargetReport) -> str:
    recorded = target.recorded
    if target.status is Status.REMOVED:
        hint = f"; closest new name: {target.closest}" if target.closest else "; no similar name upstream"
        return f"{target.status.value}{hint}"
    if target.status is Status.UNCHANGED:
        return target.status.value + (_review_note(recorded.reviewed) if recorded.reviewed else "")
    if target.status is not Status.CHANGED:
        return target.status.value
    parts = []
    if target.hunks:
        parts.append(f"changed upstream ({', '.join(target.kinds)})")
    if target.changed_dependencies:
        parts.append(f"uses changed {_names(target.changed_dependencies)}")
    where = f": absorb it in {recorded.patch.source} {recorded.patch.name}" if recorded.patch else ""
    return "; ".join(parts) + where


def _review_note(review: Review) -> str:
    return f"; accepted at {review.upstream_version} with no patch change, reviewed: {review.reason!r}"


def _names(names: tuple[str, ...] | list[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _members(members: list[tuple[LockReport, object]], name_of) -> str:
    """`LlamaForCausalLM.forward (llama_cpu, llama_gpu), Qwen3ForCausalLM.forward (qwen3_cpu)`."""
    where: dict[str, list[str]] = defaultdict(list)
    for report, item in members:
        where[name_of(item)].append(report.short_name)
    return ", ".join(f"{name} ({', '.join(sorted(locks))})" for name, locks in sorted(where.items()))


def render_groups(reports: list[LockReport], lookup: ConfigLookup) -> str:
    """Every CHANGED target under the patch that must absorb it, each distinct hunk once."""
    groups = group_by_patch(reports)
    if not groups:
        return ""
    targets = sum(len(g.members) for g in groups)
    lines = [f"Patches that must absorb the upstream changes ({len(groups)} patch(es), {targets} CHANGED target(s)):"]
    for group in groups:
        sets = f" (patch set{'s' if len(group.patch_sets) > 1 else ''} {', '.join(group.patch_sets)})"
        lines.append("")
        lines.append(
            f"{group.source} {group.name}{sets if group.patch_sets else ''}: {len(group.members)} CHANGED target(s)"
        )
        lines.append(f"  targets: {_members(group.members, lambda t: t.recorded.subject)}")
        report, first = group.members[0]
        patch = lookup.patch_text(report.lock.config, first.recorded.target)
        variants = _distinct_hunks([(r, t, t.hunks) for r, t in group.members])
        for index, (hunk, owners) in enumerate(variants, start=1):
            owner_report, owner = owners[0]
            scope = (
                f"all {len(group.members)} targets"
                if len(owners) == len(group.members) > 1
                else _members(owners, lambda t: t.recorded.subject)
            )
            lines.append(f"  hunk {index} of {len(variants)}: {hunk.kind}, in {scope}")
            lines += _hunk_lines(hunk, owner_report, owner.recorded.subject, owner.recorded.source, patch)
        dependencies = sorted({name for _, target in group.members for name in target.changed_dependencies})
        if dependencies:
            lines.append(f"  uses changed upstream dependencies (shown below): {', '.join(dependencies)}")
    return "\n".join(lines) + "\n"


def _distinct_hunks(items) -> list[tuple[Hunk, list]]:
    variants: dict[tuple, tuple[Hunk, list]] = {}
    for report, owner, owner_hunks in items:
        for hunk in owner_hunks:
            variants.setdefault(hunk.key, (hunk, []))[1].append((report, owner))
    return list(variants.values())


def _hunk_lines(hunk: Hunk, report: LockReport, what: str, old_text: str, patch: PatchText | str | None) -> list[str]:
    lines = [f"{INDENT}old upstream ({report.lock.upstream_version}), {what}:"]
    lines += [f"{INDENT}  {'-' if i in hunk.old_changed else ' '} {line}".rstrip() for i, line in enumerate(hunk.old)]
    lines.append(f"{INDENT}new upstream ({report.installed_version}):")
    lines += [f"{INDENT}  {'+' if i in hunk.new_changed else ' '} {line}".rstrip() for i, line in enumerate(hunk.new)]
    if patch is None:
        return lines
    if isinstance(patch, str):
        return [*lines, f"{INDENT}patch: {patch}"]
    span = corresponding_lines(old_text, list(patch.lines), hunk)
    if span is None:
        last = patch.first_line + len(patch.lines) - 1
        return [
            *lines,
            f"{INDENT}patch {patch.path}:{patch.first_line}-{last}: no line of it corresponds to this hunk",
        ]
    start, end = span
    lines.append(f"{INDENT}patch {patch.path}:{patch.first_line + start}-{patch.first_line + end - 1}:")
    return lines + [f"{INDENT}    {line}".rstrip() for line in patch.lines[start:end]]


def render_dependencies(reports: list[LockReport]) -> str:
    """Each changed upstream dependency once, with the targets (and their patches) that use it."""
    users: dict[tuple[str, str], list] = defaultdict(list)
    found: dict[tuple[str, str], tuple[LockReport, DependencyReport]] = {}
    for report in reports:
        for dependency in report.dependencies:
            if dependency.status is Status.UNCHANGED:
                continue
            key = (dependency.recorded.name, dependency.recorded.sha256)
            found.setdefault(key, (report, dependency))
            users[key] += [(report, t) for t in report.targets if dependency.recorded.name in t.changed_dependencies]
    if not found:
        return ""
    lines = [f"Upstream dependencies that changed ({len(found)}), used by patched code from outside its module:"]
    for key in sorted(found):
        report, dependency = found[key]
        patches = sorted({t.recorded.patch.source for _, t in users[key] if t.recorded.patch})
        lines.append("")
        detail = (
            dependency.status.value
            if dependency.status is not Status.CHANGED
            else f"changed upstream ({', '.join(sorted({h.kind for h in dependency.hunks}))})"
        )
        lines.append(f"{dependency.status.name:<9} dependency {dependency.recorded.name}: {detail}")
        lines.append(
            f"  used by: {_members(users[key], lambda t: t.recorded.subject)}; patches: {', '.join(patches) or '-'}"
        )
        for index, hunk in enumerate(dependency.hunks, start=1):
            lines.append(f"  hunk {index} of {len(dependency.hunks)}: {hunk.kind}")
            lines += _hunk_lines(hunk, report, dependency.recorded.name, dependency.recorded.source, None)
    return "\n".join(lines) + "\n"


def summary(reports: list[LockReport]) -> str:
    counts = {status: 0 for status in Status}
    for report in reports:
        for target in report.targets:
            counts[target.status] += 1
    errors = sum(1 for r in reports if r.lock is None)
    new = sum(len(r.new_names) for r in reports)
    groups = len(group_by_patch(reports))
    parts = [f"{counts[s]} {s.name.lower()}" for s in Status if counts[s]] + [f"{new} new upstream name(s)"]
    if groups:
        parts.insert(len(parts) - 1, f"{groups} patch(es) to review")
    if errors:
        parts.append(f"{errors} unreadable lock(s)")
    verdict = (
        "review the diffs, fix the patches, then run `python -m patchgen.upgrade_report --accept` and regenerate"
        if any(r.needs_review for r in reports)
        else "no patched target needs review"
    )
    return f"upgrade-report: {', '.join(parts)}: {verdict}"


# -- the command ----------------------------------------------------------------------------------


def _fail(message: str, what: str) -> None:
    click.echo(f"error: {message}", err=True)
    click.echo(what, err=True)
    sys.exit(EXIT_BAD_INPUT)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("configs", nargs=-1)
@click.option(
    "--accept", "accept_flag", is_flag=True, help="After review: record the installed upstream in the lock files."
)
@click.option(
    "--reviewed",
    multiple=True,
    metavar="TARGET",
    help="With --accept: a CHANGED target (or upstream dependency) whose patch needs no change. Repeatable.",
)
@click.option("--reason", default="", help="With --reviewed: why the patch needs no change (stored in the lock).")
@click.option("-c", "--config-name", default="config", show_default=True, help="Variable holding the PatchConfig.")
def main(
    configs: tuple[str, ...], accept_flag: bool, reviewed: tuple[str, ...], reason: str, config_name: str
) -> None:
    """Report what the installed upstream changed under each patch since its lock file was recorded.

    Run anywhere inside the project (see [tool.patchgen]). CONFIGS (dotted names or paths) limit
    --accept to those configs. Exit status: 0 when no patched target changed, 1 when one did (review
    it), 2 on bad input, a refused --accept, or outside a project.
    """
    typed_in = Path.cwd()
    with one_line_errors():
        layout = enter_project()
    root = layout.root
    configs = tuple(str(layout.user_path(Path(c), typed_in)) if is_path_spec(c) else c for c in configs)
    reason = " ".join(reason.split())
    if (reviewed or reason) and not accept_flag:
        _fail("--reviewed and --reason go with --accept", "nothing accepted")
    if reviewed and not reason:
        _fail(f'--reviewed {", ".join(reviewed)} needs --reason "why the patch needs no change"', "nothing accepted")
    if reason and not reviewed:
        _fail("--reason needs --reviewed TARGET (the CHANGED target it explains)", "nothing accepted")
    if accept_flag:
        _accept(root, configs, config_name, reviewed, reason)
        return
    reports = build_report(root)
    if not reports:
        _fail(f"no *{LOCK_SUFFIX} under {layout.output_root}/; generate with --diff first", "nothing reported")
    lookup = ConfigLookup(root, config_name)
    if any(r.new_names for r in reports):  # a NEW name the config already deals with is not news
        reports = [
            compare(r.path, r.lock, read_upstream(r.lock.source_module), _mentions(lookup, r.lock.config))
            if r.lock is not None
            else r
            for r in reports
        ]
    for report in reports:
        click.echo(render(report), nl=False)
    for section in (render_groups(reports, lookup), render_dependencies(reports)):
        if section:
            click.echo()
            click.echo(section, nl=False)
    click.echo(summary(reports))
    if any(r.needs_review for r in reports):
        sys.exit(EXIT_REVIEW)


def _mentions(lookup: ConfigLookup, config_module: str) -> frozenset[str]:
    config = lookup.config(config_module)
    return frozenset() if isinstance(config, str) else mentions(config)


def _accept(root: Path, configs: tuple[str, ...], config_name: str, reviewed: tuple[str, ...], reason: str) -> None:
    from patchgen.upgrade_accept import accept

    try:
        fresh = accept(root, list(configs), config_name, reviewed, reason)
    except PatchgenError as exc:
        _fail(str(exc), "nothing accepted")
    for path, text in fresh:
        full = root / path
        unchanged = full.exists() and full.read_text(encoding="utf-8") == text
        if not unchanged:
            write_atomic(full, text)
        click.echo(f"{'unchanged' if unchanged else 'accepted'} {path}")
    if reviewed:
        click.echo(f"reviewed {', '.join(reviewed)}: reason recorded in the lock files: {reason!r}")
    click.echo("upgrade-report: fingerprints refreshed; now run `python -m patchgen.run_codegen --all --diff`")


if __name__ == "__main__":
    main()
