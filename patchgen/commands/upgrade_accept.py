"""`upgrade_report --accept`: record the installed upstream in the lock files, but never blindly.

Accepting refreshes a lock from the installed upstream, after which regeneration is allowed again.
An upstream change that no patch absorbed would then be waved through: every check goes green while
the patch still does what the *old* upstream did (seen with transformers 5.17 -> 5.23, where
`*ForCausalLM.forward` started to accept 2-D `logits_to_keep` and the patched forward raised
`IndexError` on it). So for every CHANGED target (its upstream subject, or an upstream dependency it
or its patch uses, moved since the lock was recorded) the patch's own code must have changed too
(the hash of the patch definition and its copied helpers, recorded in the lock). Otherwise the
person accepting names the target, or the dependency, and says why the patch needs no change:

    python -m patchgen.upgrade_report --accept --reviewed Qwen3MoeExperts --reason "only the sentinel slots ..."

The reason is written into the lock (`reviewed`), shown by the report, and read in review with the
lock's diff. A lock written before patch hashes were recorded has no hash to compare: its changed
targets need a reason too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from patchgen.dsl.errors import PatchgenError
from patchgen.upgrade.fingerprints import (
    Fingerprint,
    Lock,
    Review,
    build_lock,
    dependency_moved,
    lock_path,
    read_lock,
    recorded_elsewhere,
    with_reviews_of,
)
from patchgen.upgrade.review_hunks import absorbed, hunk_ids, hunks, only_decorators, uses_changed


@dataclass(frozen=True)
class Unabsorbed:
    """A CHANGED target whose patch is the code it was when the lock was recorded."""

    lock: Path
    entry: Fingerprint
    what: str  # the subject itself, or the dependency that changed
    hunk_id: str = ""  # `Qwen3Attention.forward#2`: what `--reviewed` names to review this hunk alone

    @property
    def patch_source(self) -> str:
        return self.entry.patch.source if self.entry.patch else "(no patch hash in this lock)"


@dataclass
class Acceptance:
    texts: list[tuple[Path, str]] = field(default_factory=list)  # lock path -> fresh text
    unabsorbed: list[Unabsorbed] = field(default_factory=list)
    reviewed: list[tuple[Path, str]] = field(default_factory=list)  # (lock, target or dependency) given a reason
    changed_names: set[str] = field(default_factory=set)  # every name --reviewed may use


def accept(
    root: Path, specs: list[str], config_name: str, reviewed: dict[str, str] | None = None
) -> list[tuple[Path, str]]:
    """Fresh lock texts from the installed upstream for the given configs (all when none given).

    Every config is validated by the planner first; a failure, a CHANGED target that no patch change
    absorbed and no `--reviewed` names, or a `--reviewed` name that matches no change raises, and
    nothing is written.
    """
    reviewed = reviewed or {}
    acceptance = Acceptance()
    for path, fresh in _fresh_locks(root, specs, config_name):
        recorded = read_lock(root / path) if (root / path).exists() else recorded_elsewhere(root, path)
        if recorded is not None:
            fresh = review(recorded, fresh, reviewed, path, acceptance)
        acceptance.texts.append((path, fresh.text()))
    unknown = sorted(set(reviewed) - acceptance.changed_names)
    if unknown:
        changed = ", ".join(sorted(acceptance.changed_names)) or "none"
        raise PatchgenError(
            f"--reviewed {', '.join(unknown)}: no CHANGED target or upstream dependency of that name "
            f"(changed: {changed})"
        )
    if acceptance.unabsorbed:
        raise PatchgenError(refusal(acceptance.unabsorbed))
    return acceptance.texts


def _fresh_locks(root: Path, specs: list[str], config_name: str):
    from patchgen.commands.codegen import target_path
    from patchgen.load.discovery import discover_configs, load_config
    from patchgen.load.native_code import with_native_model_code
    from patchgen.load.upstream import read_upstream
    from patchgen.plan.plan import make_plan

    for spec in specs or discover_configs(root):
        loaded = load_config(spec, config_name, root)
        if getattr(loaded.config, "abstract", False):
            continue  # a base config has no file of its own; the configs extending it carry its patches
        upstream = read_upstream(loaded.config.source_module)
        config = with_native_model_code(loaded.config, upstream)
        make_plan(config, loaded.module_name, upstream)
        path = lock_path(target_path(loaded))
        yield path, build_lock(config, loaded.module_name, upstream)


def review(recorded: Lock, fresh: Lock, reviewed: dict[str, str], path: Path, acceptance: Acceptance) -> Lock:
    """`fresh` with review reasons; records in `acceptance` what changed and what no patch absorbed.

    Hunk by hunk: each `code` hunk of a changed subject is absorbed when the patch changed where it
    maps and took in what it adds (`review_hunks.absorbed`), else it needs `--reviewed TARGET#N` (or
    the whole `TARGET`). Hunks of docstrings, annotations or formatting need nothing. Each `code` hunk
    of a changed dependency needs `--reviewed NAME#N` or `NAME` (or the target): no patch line maps
    to code outside the module.
    """
    fresh = with_reviews_of(recorded, fresh)
    version = fresh.upstream_version
    old_subjects, old_dependencies = recorded.by_subject(), recorded.by_dependency()
    moved: dict[str, list[str]] = {}  # dependency -> ids of its code hunks
    for dependency in fresh.dependencies:
        old = old_dependencies.get(dependency.name)
        if dependency_moved(recorded, old, fresh, dependency):
            found = hunks(old.source, dependency.source) if old.is_intact() else []
            ids = (
                list(hunk_ids(_short(dependency.name), tuple(found)).values()) if found else [_short(dependency.name)]
            )
            if ids:
                moved[dependency.name] = ids
    entries, dependency_reviews = [], {}
    for entry in fresh.patches:
        old = old_subjects.get(entry.subject)
        if old is None:
            entries.append(entry)
            continue
        pending: list[tuple[str, str]] = []  # (hunk id, what changed)
        old_code = old.patch.code if old.patch else None
        new_code = entry.patch.code if entry.patch else None
        if old.sha256 != entry.sha256 or not old.is_intact():
            found = tuple(hunks(old.source, entry.source)) if old.is_intact() else ()
            ids = hunk_ids(entry.target, found)
            for position, hunk_id in ids.items():
                if entry.keeps_upstream_decorators and only_decorators(found[position]):
                    continue  # the output writes upstream's new decorators above the patch
                if not absorbed(old.source, found[position], old_code, new_code):
                    pending.append((hunk_id, entry.subject))
            if not old.is_intact():
                pending.append((entry.target, entry.subject))
        for name in entry.dependencies:
            if name in moved and not uses_changed(_short(name), old_code, new_code):
                pending += [(hunk_id, name) for hunk_id in moved[name]]
        if not pending:
            entries.append(entry)
            continue
        own_names = {entry.target, entry.subject}
        acceptance.changed_names |= own_names | {hunk_id for hunk_id, _ in pending}
        acceptance.changed_names |= {n for _, n in pending if n in moved} | {
            _short(n) for _, n in pending if n in moved
        }
        target_reason = next((reviewed[name] for name in sorted(own_names) if name in reviewed), None)
        target_reviewed = target_reason is not None
        per_hunk = []
        for hunk_id, change in pending:
            if change in moved and ({change, _short(change), hunk_id} & reviewed.keys()):
                dependency_reviews.setdefault(change, set()).add(hunk_id)
            elif hunk_id in reviewed and change not in moved:
                per_hunk.append((hunk_id, reviewed[hunk_id]))
            elif not target_reviewed:
                acceptance.unabsorbed.append(Unabsorbed(path, entry, change, hunk_id))
        if target_reviewed:
            entry = replace(entry, reviewed=Review(target_reason, version))
            acceptance.reviewed.append((path, entry.target))
        elif per_hunk:
            entry = replace(entry, reviewed=Review("", version, tuple(sorted(per_hunk))))
            acceptance.reviewed += [(path, hunk_id) for hunk_id, _ in per_hunk]
        entries.append(entry)
    for name in sorted(dependency_reviews):
        acceptance.reviewed.append((path, name))

    def dependency_review(name: str) -> Review | None:
        ids = dependency_reviews.get(name)
        if not ids:
            return None
        for whole in (name, _short(name)):
            if whole in reviewed:
                return Review(reviewed[whole], version)
        return Review("", version, tuple(sorted((i, reviewed[i]) for i in ids)))

    return replace(
        fresh,
        patches=tuple(entries),
        dependencies=tuple(
            replace(d, reviewed=dependency_review(d.name)) if d.name in dependency_reviews else d
            for d in fresh.dependencies
        ),
    )


def _short(qualified: str) -> str:
    return qualified.rpartition(".")[2]


def refusal(unabsorbed: list[Unabsorbed]) -> str:
    """One line: each unfixed patch, the targets it left unabsorbed, and the two ways forward."""
    by_patch: dict[str, list[Unabsorbed]] = {}
    for item in unabsorbed:
        by_patch.setdefault(item.patch_source, []).append(item)
    described = []
    for source, items in sorted(by_patch.items()):
        pairs = {(item.lock, item.entry.target) for item in items}
        targets = sorted({item.entry.target for item in items})
        changes = ["upstream code"] if any(item.what == item.entry.subject for item in items) else []
        dependencies = sorted({_short(item.what) for item in items if item.what != item.entry.subject})
        if dependencies:
            changes.append(f"dependencies {', '.join(dependencies)}")
        ids = sorted({item.hunk_id for item in items if item.hunk_id})
        described.append(
            f"{source}: {len(pairs)} target(s) {', '.join(targets)} (changed: {'; '.join(changes)}; "
            f"hunks not absorbed: {', '.join(ids)})"
        )
    count = len({(item.lock, item.entry.target) for item in unabsorbed})
    return (
        f"refusing to accept {count} CHANGED target(s) with upstream code hunks that no patch change absorbed: "
        f"{'; '.join(described)}; fix the patch where each hunk lands (`python -m patchgen.upgrade_report` shows "
        'it beside the patch\'s lines), or say why it needs no change: --reviewed HUNK_ID (or TARGET) --reason "..."'
    )
