"""Upstream fingerprints: what each patch replaced or modified, as it was when the file was generated.

Every generated file gets a lock file beside it, `<target>.lock.json`, with one entry per patch:
its kind and target, the *subject* (the upstream class, function, method or `__init__` it touches),
that subject's upstream source text and a sha256 of the normalised text. Each entry also records
- `patch`: where the patch is defined (`file:line`, its patch set) and a sha256 of its own code (the
  patch definition and the helpers copied with it, `patchgen.upgrade.patch_closure`), so that accepting an
  upstream change can tell a fixed patch from one nobody touched;
- `dependencies`: the upstream package's functions, classes and objects that the subject or the
  patch uses from outside the upstream module (`patchgen.upgrade.upstream_dependencies`), whose source and
  sha256 the lock records once, under `dependencies`;
- `patch.code`: the patch definition's own text, so that accepting an upgrade can tell, hunk by
  hunk, whether the patch changed where each upstream change lands (`patchgen.commands.upgrade_accept`);
- `applied_by`: upstream decorators elsewhere in the module that take the subject as an argument
  (`@use_kernelized_func(apply_rotary_pos_emb)` on an attention class): their dependencies belong
  to the patch that replaces the argument, not to the patches of the decorated class;
- `reviewed`: reasons given when upstream changes were accepted without a patch change, for the
  whole target or per hunk (`hunks`, keyed by the hunk's id).
Each dependency records its `form` (`upstream_dependencies`: a function whole, a class as its
interface or member by member). The lock also records the upstream distribution version, its
required distributions (`upstream_requires`, from the installed metadata: a new required package
breaks imports as surely as changed code), the upstream module's top-level class and function
names and the names the config deals with (`mentions`), so an upgrade report can show what changed,
what vanished and what is new without the old `transformers` installed and without importing the
configs.

Code the generator adds by itself (`patchgen.load.native_code`) records no dependencies: it is the
generator's, and is checked by the generator's own tests, not by reviewing upstream helpers.

Normalisation: the source (decorators included, leading comments not) is parsed and printed back
with `ast.unparse`. Comments, blank lines, quoting and line wrapping do not count; code and
docstrings do. The lock is deterministic (sorted keys, no timestamps) so it can be reviewed in pull
requests and compared byte for byte by `check_patchgen`.

`generate` refuses to overwrite a lock whose patched subjects or dependencies changed upstream (see
`checked_against_recorded`): that decision belongs to a person, via
`python -m patchgen.upgrade_report --accept`.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import re
import subprocess
import tempfile
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from patchgen.dsl.errors import PatchgenError
from patchgen.dsl.patch_spec import AFTER_IMPORTS, Patch, PatchConfig, PatchKind
from patchgen.load.upstream import UpstreamModule, find_method
from patchgen.syntax.source_text import Snippet, reindent
from patchgen.upgrade.patch_closure import PatchCode, patch_code
from patchgen.upgrade.upstream_dependencies import (
    WHOLE,
    NamesInModule,
    Package,
    UsedNames,
    attribute_only_uses,
    dependencies,
    names_used,
    runtime_names,
)


LOCK_SUFFIX = ".lock.json"
NORMALISATION = "sha256 of ast.unparse(source): comments and formatting do not count; code and docstrings do"


def _lines(text: str) -> list[str]:
    return text.splitlines()  # a list of lines reads well in a pull-request diff


def _text(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


@dataclass(frozen=True)
class Review:
    """Why an upstream change was accepted with no change to the patch (`upgrade_report --accept --reviewed`).

    `reason` covers the whole target (every hunk); `hunks` holds a reason per hunk id (`#2`) when
    hunks were reviewed one by one (`--reviewed TARGET#2`).
    """

    reason: str
    upstream_version: str  # the installed upstream the change was accepted at
    hunks: tuple[tuple[str, str], ...] = ()  # (hunk id, reason), sorted

    def to_json(self) -> dict:
        data = {"reason": self.reason, "upstream_version": self.upstream_version}
        if self.hunks:
            data["hunks"] = dict(self.hunks)
        return data

    @classmethod
    def from_json(cls, data: dict | None) -> Review | None:
        if data is None:
            return None
        hunks = tuple(sorted((data.get("hunks") or {}).items()))
        return cls(reason=data["reason"], upstream_version=data["upstream_version"], hunks=hunks)


@dataclass(frozen=True)
class PatchRecord:
    """The patch that absorbs its subject's upstream changes: where it is and a hash of its code."""

    source: str  # `patchgen/sets/losses/fused_loss.py:42`
    name: str  # `linear_cross_entropy_forward`, or the `module.name` an external replacement imports
    patch_set: str | None
    sha256: str  # of the patch definition and its copied helpers, normalised
    code: str | None = None  # the patch definition's text (None: an external replacement, or an older lock)

    def to_json(self) -> dict:
        data = {"name": self.name, "set": self.patch_set, "sha256": self.sha256, "source": self.source}
        if self.code is not None:
            data["code"] = _lines(self.code)
        return data

    @classmethod
    def from_json(cls, data: dict | None) -> PatchRecord | None:
        if data is None:
            return None
        code = _text(data["code"]) if data.get("code") is not None else None
        return cls(source=data["source"], name=data["name"], patch_set=data["set"], sha256=data["sha256"], code=code)

    @property
    def label(self) -> str:
        """`patchgen/sets/losses/fused_loss.py:42 linear_cross_entropy_forward (patch set fused_loss.causal_lm)`."""
        return f"{self.source} {self.name}" + (f" (patch set {self.patch_set})" if self.patch_set else "")


@dataclass(frozen=True)
class Fingerprint:
    """One patch's upstream subject: `Qwen3MLP.forward` for `override_method("Qwen3MLP.forward")`."""

    kind: str
    target: str
    subject: str
    source: str  # dedented upstream text of the subject
    sha256: str
    dependencies: tuple[str, ...] = ()  # qualified names, recorded in `Lock.dependencies`
    patch: PatchRecord | None = None  # None in locks written before patch hashes were recorded
    reviewed: Review | None = None
    applied_by: tuple[str, ...] = ()  # upstream decorators taking the subject: `Qwen3Attention: use_kernelized_func`
    # The output writes upstream's decorators above the patch (override_method's default): a change to
    # them is taken in by regeneration, not by the patch (`review_hunks.only_decorators`).
    keeps_upstream_decorators: bool = False

    def to_json(self) -> dict:
        data = {
            "kind": self.kind,
            "target": self.target,
            "subject": self.subject,
            "sha256": self.sha256,
            "source": _lines(self.source),
            "dependencies": list(self.dependencies),
            "patch": self.patch.to_json() if self.patch else None,
        }
        if self.applied_by:
            data["applied_by"] = list(self.applied_by)
        if self.keeps_upstream_decorators:
            data["keeps_upstream_decorators"] = True
        if self.reviewed is not None:
            data["reviewed"] = self.reviewed.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict) -> Fingerprint:
        return cls(
            kind=data["kind"],
            target=data["target"],
            subject=data["subject"],
            source=_text(data["source"]),
            sha256=data["sha256"],
            dependencies=tuple(data.get("dependencies", ())),
            patch=PatchRecord.from_json(data.get("patch")),
            reviewed=Review.from_json(data.get("reviewed")),
            applied_by=tuple(data.get("applied_by", ())),
            keeps_upstream_decorators=bool(data.get("keeps_upstream_decorators", False)),
        )

    @property
    def label(self) -> str:
        return f"{self.kind} {self.target}"

    def is_intact(self) -> bool:
        """Whether the recorded hash is the hash of the recorded source (false: the lock was edited)."""
        return _is_intact(self.source, self.sha256)


@dataclass(frozen=True)
class DependencyRecord:
    """An upstream-package definition that patched code uses from outside the upstream module."""

    name: str  # where it is defined: `transformers.utils.generic.can_return_tuple`
    source: str
    sha256: str
    reviewed: Review | None = None
    form: str = WHOLE  # `upstream_dependencies.WHOLE`, `INTERFACE` or `MEMBER`; older locks: whole

    def to_json(self) -> dict:
        data = {"name": self.name, "sha256": self.sha256, "source": _lines(self.source), "form": self.form}
        if self.reviewed is not None:
            data["reviewed"] = self.reviewed.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict) -> DependencyRecord:
        return cls(
            data["name"],
            _text(data["source"]),
            data["sha256"],
            Review.from_json(data.get("reviewed")),
            data.get("form", WHOLE),
        )

    def is_intact(self) -> bool:
        return _is_intact(self.source, self.sha256)


def _is_intact(source: str, sha256: str) -> bool:
    try:
        return fingerprint_of(source) == sha256
    except SyntaxError:
        return False


@dataclass(frozen=True)
class Lock:
    config: str
    source_module: str
    upstream_version: str
    upstream_names: tuple[str, ...]
    patches: tuple[Fingerprint, ...]
    dependencies: tuple[DependencyRecord, ...] = ()
    upstream_requires: tuple[str, ...] | None = None  # None: an older lock that did not record them
    mentions: tuple[str, ...] | None = None  # upstream names the config deals with; None: not recorded

    def text(self) -> str:
        data = {
            "config": self.config,
            "normalisation": NORMALISATION,
            "patches": [p.to_json() for p in self.patches],
            "dependencies": [d.to_json() for d in self.dependencies],
            "source_module": self.source_module,
            "upstream_names": list(self.upstream_names),
            "upstream_version": self.upstream_version,
        }
        if self.upstream_requires is not None:
            data["upstream_requires"] = list(self.upstream_requires)
        if self.mentions is not None:
            data["mentions"] = list(self.mentions)
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def by_subject(self) -> dict[str, Fingerprint]:
        return {p.subject: p for p in self.patches}

    def by_dependency(self) -> dict[str, DependencyRecord]:
        return {d.name: d for d in self.dependencies}


def lock_path(module_path: Path) -> Path:
    """`generated/qwen3/patched_modeling_qwen3_cpu.py` -> `.../patched_modeling_qwen3_cpu.lock.json`."""
    return module_path.with_suffix(LOCK_SUFFIX)


def normalise(source: str) -> str:
    return ast.unparse(Snippet.parse(source).tree)


@lru_cache(maxsize=4096)
def fingerprint_of(source: str) -> str:
    # cached: every lock records the same transformers dependencies, and the checker hashes them again
    return hashlib.sha256(normalise(source).encode("utf-8")).hexdigest()


# -- subjects: the upstream thing each patch touches ----------------------------------------------


IMPORTS_SUBJECT = "<imports>"  # code added after upstream's imports depends on that import block


def subject_of(patch: Patch) -> str:
    if patch.kind is PatchKind.INIT_MODIFICATION:
        return f"{patch.target}.__init__"
    if patch.kind is PatchKind.MODULE_CODE:
        return IMPORTS_SUBJECT if patch.anchor == AFTER_IMPORTS else patch.anchor
    return patch.target


def subject_source(upstream: UpstreamModule, subject: str) -> str | None:
    """The dedented upstream text of `Class`, `function`, `Class.method` or `Class.__init__`.

    For a method the class inherits rather than defines (an `__init__` that `modify_init` writes,
    an inherited method an override adds), the subject is the class header with a `...` body: the
    bases are what the patch depends on. None when the subject does not exist upstream.
    """
    key = (upstream.source.text, subject)  # a str's hash is computed once: cheap to key on the whole file
    if key not in _SUBJECTS:
        _SUBJECTS[key] = _subject_source(upstream, subject)
    return _SUBJECTS[key]


_SUBJECTS: dict[tuple[str, str], str | None] = {}


def _subject_source(upstream: UpstreamModule, subject: str) -> str | None:
    if subject == IMPORTS_SUBJECT:
        imports = [n for n in upstream.tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        return "".join(_node_text(upstream, n) for n in imports)
    owner, _, member = subject.partition(".")
    node = upstream.definitions.get(owner)
    if node is None and not member:  # an assignment (`replace_assignment`, `add_code(after=CONSTANT)`)
        binders = upstream.facts.binders(owner)
        return _node_text(upstream, binders[-1].node) if binders else None
    if node is None:
        return None
    if not member:
        return _node_text(upstream, node)
    if not isinstance(node, ast.ClassDef):
        return None
    method = find_method(node, member)
    if method is not None:
        return _node_text(upstream, method)
    return f"# no {member} of its own upstream: inherited from the bases below\n" + class_header(node)


def class_header(node: ast.ClassDef) -> str:
    header = ast.ClassDef(
        name=node.name,
        bases=node.bases,
        keywords=node.keywords,
        body=[ast.Expr(ast.Constant(...))],
        decorator_list=node.decorator_list,
        type_params=getattr(node, "type_params", []),
    )
    return ast.unparse(header) + "\n"


def _node_text(upstream: UpstreamModule, node: ast.stmt) -> str:
    source = upstream.source
    first = source.node_start_line(node, leading_comments=False)
    text = "".join(source.lines[first - 1 : node.end_lineno])
    return reindent(Snippet.parse(text), "")


def definition_names(upstream: UpstreamModule) -> tuple[str, ...]:
    return tuple(sorted(upstream.definitions))


def subject_uses(
    upstream: UpstreamModule, subject: str, source: str, owned_elsewhere: frozenset[str] = frozenset()
) -> NamesInModule:
    """Names the upstream subject reads at run time; for a method, its class's decorators too.

    A class decorator that takes a function another patch replaces (`owned_elsewhere`) is left to that
    patch (`applied_by`): `@use_kernelized_func(apply_rotary_pos_emb)` is the rope patch's concern.
    """
    used = names_used(source)
    names, members = set(used), dict(used.members)
    owner, _, member = subject.partition(".")
    node = upstream.definitions.get(owner)
    if member and isinstance(node, ast.ClassDef):
        for decorator in node.decorator_list:
            read = runtime_names(decorator)
            if read & owned_elsewhere:
                continue
            names |= read
            for name in read:
                members.pop(name, None)  # used bare by the decorator
    result = UsedNames(names)
    result.members = members
    return NamesInModule(result, upstream.name, upstream.path)


def applied_by(upstream: UpstreamModule, name: str) -> tuple[list[str], UsedNames]:
    """Upstream decorators that take the module-level `name` as an argument, and the names they read.

    `@use_kernelized_func(apply_rotary_pos_emb)` on `class Qwen3Attention` gives
    `["Qwen3Attention: use_kernelized_func(apply_rotary_pos_emb)"]` and `{"use_kernelized_func"}`.
    """
    found, names = [], set()
    for node in upstream.tree.body:
        for decorator in getattr(node, "decorator_list", ()):
            if isinstance(decorator, ast.Call) and any(
                isinstance(n, ast.Name) and n.id == name for a in decorator.args for n in ast.walk(a)
            ):
                found.append(f"{node.name}: {ast.unparse(decorator)}")
                names |= runtime_names(decorator) - {name}
    used = UsedNames(names)
    used.members = attribute_only_uses(ast.Module(body=[], type_ignores=[]), used)
    return sorted(set(found)), used


NATIVE_CODE_PATH = "patchgen/load/native_code.py"  # where the generator's own patches are written


def is_generator_code(patch: Patch) -> bool:
    """A patch the generator adds itself (`patchgen.load.native_code`), not one a config wrote."""
    return patch.patch_set == "native_model_code" or str(patch.defined_at or "").startswith(NATIVE_CODE_PATH)


def upstream_requires(module_name: str) -> tuple[str, ...]:
    """The upstream distribution's required distributions (no extras), normalised and sorted."""
    top = module_name.split(".", 1)[0]
    try:
        requires = importlib.metadata.requires(top) or []
    except importlib.metadata.PackageNotFoundError:
        return ()
    required = [r for r in requires if "extra ==" not in r.replace('"', "'").replace("extra==", "extra ==")]
    return tuple(sorted({" ".join(r.split()) for r in required}))


def requirement_name(requirement: str) -> str:
    """`kernels>=0.19; python_version >= "3.10"` -> `kernels` (PEP 503 normalised)."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
    return re.sub(r"[-_.]+", "-", name.group(0)).lower() if name else requirement


def patch_record(patch: Patch, code: PatchCode) -> PatchRecord:
    """Comments and formatting do not count: a comment is not a fix."""
    parts = [code.imported] + [normalise(text.text) for text in code.texts]
    sha = hashlib.sha256("\n\x00\n".join(parts).encode("utf-8")).hexdigest()
    return PatchRecord(code.location, code.name, patch.patch_set, sha, code.texts[0].text if code.texts else None)


def build_lock(config: PatchConfig, config_module: str, upstream: UpstreamModule) -> Lock:
    """The lock of a config whose targets exist upstream (the planner has checked that)."""
    package = Package.of(upstream)
    patch_package = config_module.split(".", 1)[0]
    entries, found = [], {}
    replaced = frozenset(  # module-level functions a patch replaces (copied, or imported from a kernel package)
        p.target
        for p in config.patches
        if p.kind in (PatchKind.FUNCTION_REPLACEMENT, PatchKind.EXTERNAL_REPLACEMENT) and "." not in p.target
    )
    for patch in config.patches:
        subject = subject_of(patch)
        source = subject_source(upstream, subject)
        if source is None:  # pragma: no cover - make_plan rejects missing targets first
            raise PatchgenError(f"{config_module}: {patch.label}: no upstream {subject} to fingerprint")
        code = patch_code(patch, f"{config_module}: {patch.defined_at}: {patch.label}", patch_package)
        decorators: list[str] = []
        if is_generator_code(patch):
            used = {}
        else:
            uses = [subject_uses(upstream, subject, source, replaced - {patch.target}), *code.uses()]
            if patch.target in replaced:
                decorators, decorator_names = applied_by(upstream, patch.target)
                uses.append(NamesInModule(decorator_names, upstream.name, upstream.path))
            used = dependencies(package, uses)
        found.update(used)
        entries.append(
            Fingerprint(
                patch.kind.value,
                patch.target,
                subject,
                source,
                fingerprint_of(source),
                dependencies=tuple(used),
                patch=patch_record(patch, code),
                applied_by=tuple(decorators),
                keeps_upstream_decorators=patch.kind is PatchKind.METHOD_OVERRIDE and patch.keep_upstream_decorators,
            )
        )
    return Lock(
        config=config_module,
        source_module=upstream.name,
        upstream_version=upstream.version,
        upstream_names=definition_names(upstream),
        patches=tuple(sorted(entries, key=lambda e: e.subject)),
        dependencies=tuple(
            DependencyRecord(name, found[name].source, fingerprint_of(found[name].source), form=found[name].form)
            for name in sorted(found)
        ),
        upstream_requires=upstream_requires(upstream.name),
        mentions=tuple(sorted(config_mentions(config))),
    )


def config_mentions(config: PatchConfig) -> frozenset[str]:
    """Upstream names a config already deals with: its targets, their classes and its exclusions."""
    names = {p.target for p in config.patches} | {p.target_class for p in config.patches}
    return frozenset(names | {e.name for e in config.exclusions})


def read_lock(path: Path) -> Lock:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Lock(
            config=data["config"],
            source_module=data["source_module"],
            upstream_version=data["upstream_version"],
            upstream_names=tuple(data["upstream_names"]),
            patches=tuple(Fingerprint.from_json(p) for p in data["patches"]),
            dependencies=tuple(DependencyRecord.from_json(d) for d in data.get("dependencies", ())),
            upstream_requires=tuple(data["upstream_requires"]) if "upstream_requires" in data else None,
            mentions=tuple(data["mentions"]) if "mentions" in data else None,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PatchgenError(
            f"{path}: not a readable patchgen lock file ({type(exc).__name__}: {exc}); restore it from version "
            "control, or delete it and review the upstream changes by hand before regenerating"
        ) from None


def stale_entries(recorded: Lock, fresh: Lock) -> list[str]:
    """Subjects and dependencies whose upstream source moved since `recorded` (or whose record was edited)."""
    old_subjects, old_dependencies = recorded.by_subject(), recorded.by_dependency()
    stale = []
    for entry in fresh.patches:
        old = old_subjects.get(entry.subject)
        if old is not None and (old.sha256 != entry.sha256 or not old.is_intact()):
            stale.append(entry.subject)
    for dependency in fresh.dependencies:
        if dependency_moved(recorded, old_dependencies.get(dependency.name), fresh, dependency):
            stale.append(dependency.name)
    return stale


def dependency_moved(recorded: Lock, old: DependencyRecord | None, fresh: Lock, new: DependencyRecord) -> bool:
    """Whether a dependency's upstream moved since `recorded`. A record in another form (an older lock
    recorded a class whole) at the same upstream version is a change of lock format, not of upstream."""
    if old is None:
        return False
    if old.form != new.form and recorded.upstream_version == fresh.upstream_version:
        return False
    return old.sha256 != new.sha256 or not old.is_intact()


def checked_against_recorded(config_module: str, fresh: Lock, path: Path) -> Lock:
    """The lock to write over `path`: refused when upstream moved under it since it was recorded.

    Regenerating would silently fold the new upstream into the output and refresh the fingerprints;
    a person must first review the change (`upgrade_report`) and accept it (`--accept`). Reasons
    given at that review stay in the lock for as long as the upstream source they were given for.
    """
    recorded = read_lock(path) if path.exists() else recorded_elsewhere(Path.cwd(), path)
    if recorded is None:
        other = other_versions(path, fresh)
        if other:
            raise PatchgenError(
                f"{config_module}: {path} is missing and git HEAD has none, while {other[0]} records "
                f"{other[1]} and {fresh.upstream_version} is installed: a new lock would record the moved "
                f"upstream unreviewed; restore the lock, or review with `python -m patchgen.upgrade_report` "
                f"and run `python -m patchgen.upgrade_report --accept {config_module}`"
            )
        return fresh
    stale = stale_entries(recorded, fresh)
    if stale:
        raise PatchgenError(
            f"{config_module}: upstream changed under patched target(s) {', '.join(stale)} since {path} was "
            "recorded; review with `python -m patchgen.upgrade_report`, fix the patches, then run "
            "`python -m patchgen.upgrade_report --accept` and regenerate"
        )
    return with_reviews_of(recorded, fresh)


def recorded_elsewhere(root: Path, path: Path) -> Lock | None:
    """The lock git HEAD holds at `path` (a lock deleted in the work tree), or None.

    The rule for a missing lock: it is never the end of the review. A lock deleted (or lost) in
    the work tree is replaced by the committed one, so regenerating compares against what was
    reviewed; only a config that never had a lock starts without one, and even then not while
    other locks record another upstream version (`other_versions`).
    """
    full = path if path.is_absolute() else root / path
    try:
        top = subprocess.run(
            ["git", "-C", str(_existing_parent(full)), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        relative = full.resolve().relative_to(Path(top).resolve())
        shown = subprocess.run(
            ["git", "-C", top, "show", f"HEAD:{relative.as_posix()}"], capture_output=True, check=True
        ).stdout
    except (OSError, ValueError, subprocess.CalledProcessError):
        return None
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / path.name
        copy.write_bytes(shown)
        try:
            return read_lock(copy)
        except PatchgenError:
            return None


def _existing_parent(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path.cwd()


def other_versions(path: Path, fresh: Lock) -> tuple[str, str] | None:
    """(a lock beside `path`'s folder, its upstream version) recording another version of the same
    upstream distribution than `fresh`; None when all agree (or there are none)."""
    distribution = fresh.upstream_version.split("==")[0].split(" ")[0]
    folder = path.parent.parent if path.parent.parent != path.parent else path.parent
    for other in sorted(folder.rglob(f"*{LOCK_SUFFIX}")) if folder.exists() else ():
        try:
            version = read_lock(other).upstream_version
        except PatchgenError:
            continue
        if version.split("==")[0].split(" ")[0] == distribution and version != fresh.upstream_version:
            return str(other), version
    return None


def with_reviews_of(recorded: Lock, fresh: Lock) -> Lock:
    """`fresh` with the review reasons `recorded` holds for the very same upstream sources."""
    old_subjects, old_dependencies = recorded.by_subject(), recorded.by_dependency()

    def kept(old, new):
        return old.reviewed if old is not None and old.sha256 == new.sha256 and new.reviewed is None else new.reviewed

    return replace(
        fresh,
        patches=tuple(replace(e, reviewed=kept(old_subjects.get(e.subject), e)) for e in fresh.patches),
        dependencies=tuple(replace(d, reviewed=kept(old_dependencies.get(d.name), d)) for d in fresh.dependencies),
    )
