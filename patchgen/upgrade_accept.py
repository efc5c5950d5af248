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

from patchgen.errors import PatchgenError
from patchgen.fingerprints import Fingerprint, Lock, Review, build_lock, lock_path, read_lock, with_reviews_of


@dataclass(frozen=True)
class Unabsorbed:
    """A CHANGED target whose patch is the code it was when the lock was recorded."""

    lock: Path
    entry: Fingerprint
    what: str  # the subject itself, or the dependency that changed

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
    root: Path, specs: list[str], config_name: str, reviewed: tuple[str, ...] = (), reason: str = ""
) -> list[tuple[Path, str]]:
    """Fresh lock texts from the installed upstream for the given configs (all when none given).

    Every config is validated by the planner first; a failure, a CHANGED target that no patch change
    absorbed and no `--reviewed` names, or a `--reviewed` name that matches no change raises, and
    nothing is written.
    """
    acceptance = Acceptance()
    for path, fresh in _fresh_locks(root, specs, config_name):
        recorded = read_lock(root / path) if (root / path).exists() else None
        if recorded is not None:
            fresh = review(recorded, fresh, set(reviewed), reason, path, acceptance)
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
    from patchgen.codegen import target_path
    from patchgen.discovery import discover_configs, load_config
    from patchgen.native_code import with_native_model_code
    from patchgen.plan import make_plan
    from patchgen.upstream import read_upstream

    for spec in specs or discover_configs(root):
        loaded = load_config(spec, config_name, root)
        if getattr(loaded.config, "abstract", False):
            continue  # a base config has no file of its own; the configs extending it carry its patches
        upstream = read_upstream(loaded.config.source_module)
        config = with_native_model_code(loaded.config, upstream)
        make_plan(config, loaded.module_name, upstream)
        path = lock_path(target_path(loaded))
        yield path, build_lock(config, loaded.module_name, upstream)


def review(recorded: Lock, fresh: Lock, reviewed: set[str], reason: str, path: Path, acceptance: Acceptance) -> Lock:
    """`fresh` with review reasons; records in `acceptance` what changed and what no patch absorbed."""
    fresh = with_reviews_of(recorded, fresh)
    note = Review(reason, fresh.upstream_version)
    old_subjects, old_dependencies = recorded.by_subject(), recorded.by_dependency()
    moved = {
        d.name
        for d in fresh.dependencies
        if (old := old_dependencies.get(d.name)) is not None and (old.sha256 != d.sha256 or not old.is_intact())
    }
    entries, dependency_reviews = [], set()
    for entry in fresh.patches:
        old = old_subjects.get(entry.subject)
        changes = []
        if old is not None and (old.sha256 != entry.sha256 or not old.is_intact()):
            changes.append(entry.subject)
        if old is not None:
            changes += [name for name in entry.dependencies if name in moved]
        if not changes:
            entries.append(entry)
            continue
        own_names = {entry.target, entry.subject}
        acceptance.changed_names |= (
            own_names | {n for n in changes if n in moved} | {_short(n) for n in changes if n in moved}
        )
        absorbed = old.patch is not None and entry.patch is not None and old.patch.sha256 != entry.patch.sha256
        target_reviewed = bool(own_names & reviewed)
        if target_reviewed:
            entry = replace(entry, reviewed=note)
            acceptance.reviewed.append((path, entry.target))
        for change in changes:
            if change in moved and {change, _short(change)} & reviewed:
                dependency_reviews.add(change)  # reviewing a dependency covers it in every target that uses it
            elif not (target_reviewed or absorbed):
                acceptance.unabsorbed.append(Unabsorbed(path, entry, change))
        entries.append(entry)
    for name in sorted(dependency_reviews):
        acceptance.reviewed.append((path, name))
    return replace(
        fresh,
        patches=tuple(entries),
        dependencies=tuple(
            replace(d, reviewed=note) if d.name in dependency_reviews else d for d in fresh.dependencies
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
        described.append(f"{source}: {len(pairs)} target(s) {', '.join(targets)} (changed: {'; '.join(changes)})")
    count = len({(item.lock, item.entry.target) for item in unabsorbed})
    return (
        f"refusing to accept {count} CHANGED target(s) whose patch code is the same as when the lock was recorded: "
        f"{'; '.join(described)}; fix the patch (`python -m patchgen.upgrade_report` shows each change beside the "
        'patch\'s lines), or say why it needs no change: --reviewed TARGET --reason "..."'
    )
