"""`python -m patchgen.upgrade_report`: what an upstream upgrade did to each patch, and who must absorb it.

Reads every lock file under `generated/` (see `patchgen.upgrade.fingerprints`) and compares each recorded
patch subject, and each upstream dependency the patched code uses, with the installed upstream:

    UNCHANGED  upstream is the same (formatting and comments aside): safe to regenerate
    CHANGED    upstream changed, in the subject itself or in a dependency it or its patch uses
    REMOVED    upstream no longer has it: renamed or deleted, with the closest new name
    INVALID    the recorded fingerprint is not the hash of the recorded source: the lock was edited
    NEW        upstream classes or functions that appeared since and that the config does not mention

CHANGED targets are then grouped by the patch that must absorb them (its `file:line` and patch
sets: one shared function patched onto 8 classes is one group). Each hunk of the upstream change is
classified (code, annotation-only, docstring-only, formatting-only; `patchgen.upgrade.review_hunks`) and
shown three ways: old upstream, new upstream, and the patch's own corresponding lines. Identical
hunks in several targets are shown once. Changed dependencies follow, each once, with their users.

Exit status: 0 when no patched subject needs review, 1 when one does, 2 on bad input.
`--accept` records the installed upstream in the lock files after review (`patchgen.commands.upgrade_accept`):
it refuses a CHANGED target whose patch code is the same as when the lock was recorded, unless
`--reviewed TARGET --reason "..."` says why the patch needs no change; the reason goes into the
lock and this report shows it. The recorded text lives in the lock files, so the old `transformers`
need not be installed.
"""

from __future__ import annotations

import ast
import difflib
import enum
import hashlib
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import click

from patchgen.commands.cli_errors import one_line_errors, run_command
from patchgen.dsl.errors import PatchgenError
from patchgen.dsl.layout import enter_project, is_path_spec, load_layout
from patchgen.dsl.patch_spec import PatchConfig
from patchgen.load.upstream import UpstreamModule
from patchgen.render.outputs import write_atomic
from patchgen.syntax.source_text import Snippet
from patchgen.upgrade.fingerprints import (
    LOCK_SUFFIX,
    DependencyRecord,
    Fingerprint,
    Lock,
    PatchRecord,
    Review,
    config_mentions,
    fingerprint_of,
    normalise,
    read_lock,
    requirement_name,
    subject_source,
    upstream_requires,
)
from patchgen.upgrade.review_hunks import Hunk, corresponding_lines, hunk_ids, hunks
from patchgen.upgrade.upstream_dependencies import FILES_READ, Package, parsed_file, read_installed, resolve_qualified


EXIT_REVIEW, EXIT_BAD_INPUT = 1, 2
INDENT = "      "  # every line of a hunk starts with it (`check_patchgen -q` drops such lines)


class Status(enum.Enum):
    UNCHANGED = "unchanged upstream (safe to regenerate)"
    CHANGED = "changed upstream: the patch must absorb this"
    COSMETIC = "changed upstream in docstrings, annotations or formatting only: shown, no review needed"
    REMOVED = "removed or renamed upstream"
    INVALID = "recorded fingerprint is not the hash of the recorded source: the lock file was edited"


QUIET = frozenset({Status.UNCHANGED, Status.COSMETIC})  # statuses that need no person


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

    def hunk_id(self, index: int) -> str:
        """`Qwen3Attention.forward#2`: what `--reviewed` names to review one hunk (1-based, code hunks counted)."""
        return f"{self.recorded.target}#{index}"


@dataclass
class LockReport:
    path: Path
    lock: Lock | None = None
    error: str | None = None
    installed_version: str = ""
    targets: list[TargetReport] = field(default_factory=list)
    dependencies: list[DependencyReport] = field(default_factory=list)
    new_names: list[str] = field(default_factory=list)

    requires_added: list[str] = field(default_factory=list)  # required distributions new since the lock
    requires_removed: list[str] = field(default_factory=list)
    requirement_users: dict[str, list[str]] = field(default_factory=dict)  # requirement -> patches it touches

    @property
    def needs_review(self) -> bool:
        return self.error is not None or any(t.status not in QUIET for t in self.targets)

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


def compare(
    path: Path, lock: Lock, upstream: UpstreamModule, mentioned: frozenset[str] = frozenset(), *, with_hunks=True
) -> LockReport:
    """One lock against the installed upstream. `with_hunks=False` compares hashes only (fast: no diffs,
    so every moved subject is CHANGED, none COSMETIC), for `check_patchgen`."""
    report = LockReport(path, lock, installed_version=upstream.version)
    package = Package.of(upstream)
    report.dependencies = [_compare_dependency(record, package, with_hunks) for record in lock.dependencies]
    moved = {d.recorded.name for d in report.dependencies if d.status not in QUIET}
    for recorded in lock.patches:
        target = _compare_one(recorded, lock, upstream, with_hunks)
        changed = tuple(name for name in recorded.dependencies if name in moved)
        if changed and target.status in (Status.UNCHANGED, Status.CHANGED, Status.COSMETIC):
            target = replace(target, status=Status.CHANGED, changed_dependencies=changed)
        report.targets.append(target)
    known = set(lock.upstream_names) | mentioned | set(lock.mentions or ())
    report.new_names = sorted(name for name in upstream.definitions if name not in known)
    _compare_requirements(report, lock, upstream, package)
    return report


def _compare_requirements(report: LockReport, lock: Lock, upstream: UpstreamModule, package: Package) -> None:
    """New and dropped required distributions, each new one attributed to the patches whose recorded
    dependencies live in a module that imports it (`kernels` -> the users of `integrations.hub_kernels`)."""
    if lock.upstream_requires is None:
        return
    recorded = {requirement_name(r): r for r in lock.upstream_requires}
    installed = {requirement_name(r): r for r in upstream_requires(upstream.name)}
    report.requires_added = sorted(installed[n] for n in installed.keys() - recorded.keys())
    report.requires_removed = sorted(recorded[n] for n in recorded.keys() - installed.keys())
    for requirement in report.requires_added:
        name = requirement_name(requirement).replace("-", "_")
        modules = {d.name for d in lock.dependencies if name in _imported_packages(package, d.name)}
        users = sorted(
            {
                f"{t.patch.source} {t.patch.name} ({t.target})" if t.patch else t.target
                for t in lock.patches
                if modules & set(t.dependencies)
            }
        )
        report.requirement_users[requirement] = users


def _imported_packages(package: Package, qualified: str) -> set[str]:
    """Top-level packages the module defining `qualified` imports (anywhere in the file)."""
    module = qualified
    while module and package.module_file(module) is None:
        module = module.rpartition(".")[0]
    path = package.module_file(module) if module else None
    if path is None:
        return set()
    _, tree = parsed_file(path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


_DEPENDENCY_REPORTS: dict[tuple, DependencyReport] = {}


def _compare_dependency(recorded: DependencyRecord, package: Package, with_hunks: bool = True) -> DependencyReport:
    """Memoised on the record's content: six locks recording `PreTrainedModel` cost one comparison."""
    key = (recorded.name, recorded.form, recorded.sha256, recorded.source, package, with_hunks)
    if key not in _DEPENDENCY_REPORTS:
        _DEPENDENCY_REPORTS[key] = _compare_dependency_once(recorded, package, with_hunks)
    found = _DEPENDENCY_REPORTS[key]
    return found if found.recorded is recorded else replace(found, recorded=recorded)


def _compare_dependency_once(recorded: DependencyRecord, package: Package, with_hunks: bool) -> DependencyReport:
    if not recorded.is_intact():
        return DependencyReport(recorded, Status.INVALID)
    installed = resolve_qualified(package, recorded.name, recorded.form)
    if installed is None:
        return DependencyReport(recorded, Status.REMOVED)
    if fingerprint_of(installed.source) == recorded.sha256:
        return DependencyReport(recorded, Status.UNCHANGED)
    if not with_hunks:
        return DependencyReport(recorded, Status.CHANGED, installed.source)
    found = tuple(hunks(recorded.source, installed.source))
    status = Status.CHANGED if any(h.needs_review for h in found) else Status.COSMETIC
    return DependencyReport(recorded, status, installed.source, found)


def _compare_one(recorded: Fingerprint, lock: Lock, upstream: UpstreamModule, with_hunks: bool = True) -> TargetReport:
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
    if not with_hunks:
        return TargetReport(recorded, Status.CHANGED, diff=diff, installed=installed)
    found = tuple(hunks(recorded.source, installed))
    status = Status.CHANGED if any(h.needs_review for h in found) else Status.COSMETIC
    return TargetReport(recorded, status, diff=diff, installed=installed, hunks=found)


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


def build_report(
    root: Path, mentioned: dict[str, frozenset[str]] | None = None, *, with_hunks: bool = True, progress=None
) -> list[LockReport]:
    """One report per lock file under the project's output root (`generated/`), in path order.

    The upstream is read from its files without importing it (`read_installed`); each upstream
    dependency is compared once for all the locks recording it. `progress(done, total, path)` is
    called before each lock.
    """
    reports = []
    paths = sorted((root / load_layout(root).output_root).rglob(f"*{LOCK_SUFFIX}"))
    for index, path in enumerate(paths):
        relative = path.relative_to(root)
        if progress is not None:
            progress(index, len(paths), relative)
        try:
            lock = read_lock(path)
            upstream = read_installed(lock.source_module)
        except PatchgenError as exc:
            reports.append(LockReport(relative, error=str(exc)))
            continue
        known = (mentioned or {}).get(lock.config, frozenset())
        reports.append(compare(relative, lock, upstream, known, with_hunks=with_hunks))
    return reports


def mentions(config: PatchConfig) -> frozenset[str]:
    """Upstream names a config already deals with: its targets, their classes and its exclusions."""
    return config_mentions(config)


# -- the patches' own text, for showing beside each hunk --------------------------------------------


@dataclass(frozen=True)
class PatchText:
    path: str  # `patchgen/sets/losses/fused_loss.py`
    first_line: int  # file line of `lines[0]` (the `def`/`class` line)
    lines: tuple[str, ...]


def patch_text(root: Path, record: PatchRecord | None) -> PatchText | str:
    """The patch's current text, found from where the lock says it is defined (`file:line` and name).

    Read from the file, not by importing the config: under a new upstream a config's imports may
    fail, and importing every config costs more than the whole report.
    """
    if record is None:
        return "the lock records no patch for this target"
    path, _, line = record.source.rpartition(":")
    if record.code is None and "." in record.name:
        return f"{record.source} imports {record.name}: no copied source"
    try:
        source, tree = parsed_file((root / path).resolve())
    except (OSError, SyntaxError, UnicodeDecodeError) as exc:
        return f"{path} cannot be read ({type(exc).__name__})"
    candidates = [
        node
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == record.name
    ]
    if not candidates:
        return f"{path} no longer defines {record.name}"
    wanted = int(line) if line.isdigit() else 0
    node = min(candidates, key=lambda n: abs(n.lineno - wanted))
    first = source.node_start_line(node, leading_comments=False)
    lines = tuple(line.rstrip("\n") for line in source.lines[first - 1 : node.end_lineno])
    indent = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
    return PatchText(path, first, tuple(x[indent:] for x in lines))


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
    for requirement in report.requires_added:
        users = report.requirement_users.get(requirement) or []
        touches = f"; reached by {'; '.join(users)}" if users else ""
        lines.append(
            f"  REQUIRES  {requirement}: newly required by {report.installed_version} (not required at "
            f"{lock.upstream_version}): install it, and check the code that uses it{touches}"
        )
    for requirement in report.requires_removed:
        lines.append(f"  REQUIRES  {requirement}: no longer required by {report.installed_version}")
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
    if target.status is Status.COSMETIC:
        return f"{target.status.value} ({', '.join(target.kinds)})"
    if target.status is not Status.CHANGED:
        return target.status.value
    parts = []
    if target.hunks:
        ids = list(hunk_ids(recorded.target, target.hunks).values())
        review = f"; to review: {_names(ids, 4)}" if ids else ""
        parts.append(f"changed upstream ({', '.join(target.kinds)}{review})")
    elif target.diff:
        parts.append("changed upstream (`python -m patchgen.upgrade_report` classifies each hunk)")
    if target.changed_dependencies:
        parts.append(f"uses changed {_names(target.changed_dependencies)}")
    where = f": absorb it in {recorded.patch.source} {recorded.patch.name}" if recorded.patch else ""
    return "; ".join(parts) + where


def _review_note(review: Review) -> str:
    note = f"; accepted at {review.upstream_version} with no patch change"
    if review.reason:
        note += f", reviewed: {review.reason!r}"
    for hunk_id, reason in review.hunks:
        note += f"; hunk {hunk_id} reviewed: {reason!r}"
    return note


def _names(names: tuple[str, ...] | list[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _members(members: list[tuple[LockReport, object]], name_of) -> str:
    """`LlamaForCausalLM.forward (llama_cpu, llama_gpu), Qwen3ForCausalLM.forward (qwen3_cpu)`."""
    where: dict[str, list[str]] = defaultdict(list)
    for report, item in members:
        where[name_of(item)].append(report.short_name)
    return ", ".join(f"{name} ({', '.join(sorted(locks))})" for name, locks in sorted(where.items()))


def render_groups(reports: list[LockReport], root: Path) -> str:
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
        patch = patch_text(root, first.recorded.patch)
        variants = _distinct_hunks([(r, t, t.hunks) for r, t in group.members])
        for index, (hunk, owners) in enumerate(variants, start=1):
            owner_report, owner = owners[0]
            scope = (
                f"all {len(group.members)} targets"
                if len(owners) == len(group.members) > 1
                else _members(owners, lambda t: t.recorded.subject)
            )
            ids = sorted({_id_of(t, hunk) for _, t in owners if hunk.needs_review})
            verdict = f"review id {', '.join(ids)}" if ids else "no review needed"
            lines.append(f"  hunk {index} of {len(variants)}: {hunk.kind}, in {scope}: {verdict}")
            lines += _hunk_lines(hunk, owner_report, owner.recorded.subject, owner.recorded.source, patch)
        dependencies = sorted({name for _, target in group.members for name in target.changed_dependencies})
        if dependencies:
            lines.append(f"  uses changed upstream dependencies (shown below): {', '.join(dependencies)}")
    return "\n".join(lines) + "\n"


def _id_of(target: TargetReport, hunk: Hunk) -> str:
    """The review id, in `target`, of the hunk with `hunk`'s content (the same edit sits elsewhere there)."""
    position = next(i for i, h in enumerate(target.hunks) if h.key == hunk.key)
    return hunk_ids(target.recorded.target, target.hunks)[position]


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
            if dependency.status in QUIET:
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
        applied = sorted({a for _, t in users[key] for a in t.recorded.applied_by})
        if applied:
            lines.append(f"  applied by upstream to the replaced function: {'; '.join(applied)}")
        ids = hunk_ids(_short(dependency.recorded.name), dependency.hunks)
        for index, hunk in enumerate(dependency.hunks, start=1):
            verdict = f"review id {ids[index - 1]}" if index - 1 in ids else "no review needed"
            lines.append(f"  hunk {index} of {len(dependency.hunks)}: {hunk.kind}: {verdict}")
            lines += _hunk_lines(hunk, report, dependency.recorded.name, dependency.recorded.source, None)
    return "\n".join(lines) + "\n"


def _short(qualified: str) -> str:
    """`transformers.integrations.hub_kernels.use_kernelized_func` -> `use_kernelized_func`."""
    return qualified.rpartition(".")[2]


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
    required = sorted({r for report in reports for r in report.requires_added})
    if required:
        parts.append(f"newly required: {', '.join(required)}")
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
@click.option(
    "--reviews",
    "reviews_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --accept: a file of reviews, one per line: `HUNK_ID[, HUNK_ID...]: reason` (`#` comments).",
)
@click.option("-c", "--config-name", default="config", show_default=True, help="Variable holding the PatchConfig.")
@click.option("--no-cache", is_flag=True, help="Recompute the report; ignore .patchgen-cache/.")
def main(
    configs: tuple[str, ...],
    accept_flag: bool,
    reviewed: tuple[str, ...],
    reason: str,
    reviews_file: Path | None,
    config_name: str,
    no_cache: bool,
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
    if (reviewed or reason or reviews_file) and not accept_flag:
        _fail("--reviewed, --reason and --reviews go with --accept", "nothing accepted")
    if reviewed and not reason:
        _fail(f'--reviewed {", ".join(reviewed)} needs --reason "why the patch needs no change"', "nothing accepted")
    if reason and not reviewed:
        _fail("--reason needs --reviewed TARGET (the CHANGED target it explains)", "nothing accepted")
    if accept_flag:
        reasons = dict.fromkeys(reviewed, reason)
        if reviews_file is not None:
            with one_line_errors():
                reasons.update(read_reviews(layout.user_path(reviews_file, typed_in)))  # absolute paths too
        _accept(root, configs, config_name, reasons)
        return
    if not list((root / layout.output_root).rglob(f"*{LOCK_SUFFIX}")):
        _fail(f"no *{LOCK_SUFFIX} under {layout.output_root}/; generate with --diff first", "nothing reported")
    text, status = cached_report(root, config_name, use_cache=not no_cache)
    click.echo(text, nl=False)
    sys.exit(status)


def full_report(root: Path, config_name: str, progress=None) -> tuple[str, int]:
    """The whole report's text and exit status."""
    reports = build_report(root, progress=progress)
    for report in reports:  # a NEW name the config already deals with is not news
        if report.new_names and report.lock.mentions is None:  # an older lock: ask the config
            known = _config_mentions(root, config_name, report.lock.config)
            report.new_names = [name for name in report.new_names if name not in known]
    parts = [render(report) for report in reports]
    for section in (render_groups(reports, root), render_dependencies(reports)):
        if section:
            parts += ["\n", section]
    parts.append(summary(reports) + "\n")
    return "".join(parts), EXIT_REVIEW if any(r.needs_review for r in reports) else 0


def _config_mentions(root: Path, config_name: str, config_module: str) -> frozenset[str]:
    from patchgen.load.discovery import load_config

    try:
        return mentions(load_config(config_module, config_name, root).config)
    except PatchgenError:
        return frozenset()


def cached_report(root: Path, config_name: str, *, use_cache: bool = True) -> tuple[str, int]:
    """`full_report`, reused while every input is unchanged: the lock files, every upstream file the
    report read, the patch files it showed, the environment (`patchgen.verify.cache`). Progress on stderr."""
    from patchgen.verify.cache import Cache

    locks = sorted((root / load_layout(root).output_root).rglob(f"*{LOCK_SUFFIX}"))
    cache = Cache(root) if use_cache else None
    key = [config_name, [[str(p.relative_to(root)), hashlib.sha256(p.read_bytes()).hexdigest()] for p in locks]]
    stored = cache.load("upgrade-report", key) if cache is not None else None
    if stored is not None:
        click.echo("upgrade-report: unchanged inputs, the stored report (--no-cache recomputes)", err=True)
        return stored[0], stored[1]
    started = time.monotonic()

    def progress(done: int, total: int, path: Path) -> None:
        click.echo(f"upgrade-report: [{done + 1}/{total}] {path} ({time.monotonic() - started:.1f}s)", err=True)

    text, status = full_report(root, config_name, progress)
    click.echo(f"upgrade-report: done in {time.monotonic() - started:.1f}s", err=True)
    if cache is not None:
        read = [*map(str, locks), *map(str, FILES_READ)]
        cache.store("upgrade-report", key, cache.inputs_now(read), [text, status])
    return text, status


def read_reviews(path: Path) -> dict[str, str]:
    """`--reviews FILE`: one review a line, `HUNK_ID[, HUNK_ID...]: reason`; blank lines and `#` comments skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PatchgenError(f"--reviews {path}: cannot read it ({exc.strerror})") from None
    reasons: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        names, colon, reason = line.partition(": ")
        reason = " ".join(reason.split())
        if not colon or not reason or not names.strip():
            raise PatchgenError(f"{path}:{number}: write `HUNK_ID[, HUNK_ID...]: reason`, got {line.strip()!r}")
        for name in names.split(","):
            reasons[name.strip()] = reason
    return reasons


def _accept(root: Path, configs: tuple[str, ...], config_name: str, reviewed: dict[str, str]) -> None:
    from patchgen.commands.upgrade_accept import accept

    try:
        fresh = accept(root, list(configs), config_name, reviewed)
    except PatchgenError as exc:
        _fail(str(exc), "nothing accepted")
    for path, text in fresh:
        full = root / path
        unchanged = full.exists() and full.read_text(encoding="utf-8") == text
        if not unchanged:
            write_atomic(full, text)
        click.echo(f"{'unchanged' if unchanged else 'accepted'} {path}")
    if reviewed:
        click.echo(f"reviewed {len(reviewed)} name(s): each reason recorded in the lock files")
    click.echo("upgrade-report: fingerprints refreshed; now run `python -m patchgen.run_codegen --all --diff`")


if __name__ == "__main__":
    run_command(main)
