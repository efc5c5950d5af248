"""Upstream fingerprints: what each patch replaced or modified, as it was when the file was generated.

Every generated file gets a lock file beside it, `<target>.lock.json`, with one entry per patch:
its kind and target, the *subject* (the upstream class, function, method or `__init__` it touches),
that subject's upstream source text and a sha256 of the normalised text. The lock also records the
upstream distribution version and the upstream module's top-level class and function names, so an
upgrade report can show what changed, what vanished and what is new without the old `transformers`
installed.

Normalisation: the subject's source (decorators included, leading comments not) is parsed and
printed back with `ast.unparse`. Comments, blank lines, quoting and line wrapping do not count;
code and docstrings do. The lock is deterministic (sorted keys, no timestamps) so it can be
reviewed in pull requests and compared byte for byte by `check_patchgen`.

`generate` refuses to overwrite a lock whose patched subjects changed upstream (see
`refuse_stale_upstream`): that decision belongs to a person, via
`python -m patchgen.upgrade_report --accept`.
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from patchgen.errors import PatchgenError
from patchgen.patch_spec import AFTER_IMPORTS, Patch, PatchConfig, PatchKind
from patchgen.source_text import Snippet, reindent
from patchgen.upstream import UpstreamModule, find_method


LOCK_SUFFIX = ".lock.json"
NORMALISATION = "sha256 of ast.unparse(subject source): comments and formatting do not count; code and docstrings do"
_DEFINITIONS = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


@dataclass(frozen=True)
class Fingerprint:
    """One patch's upstream subject: `Qwen3MLP.forward` for `override_method("Qwen3MLP.forward")`."""

    kind: str
    target: str
    subject: str
    source: str  # dedented upstream text of the subject
    sha256: str

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "target": self.target,
            "subject": self.subject,
            "sha256": self.sha256,
            "source": self.source.splitlines(),  # a list of lines reads well in a pull-request diff
        }

    @classmethod
    def from_json(cls, data: dict) -> Fingerprint:
        return cls(
            kind=data["kind"],
            target=data["target"],
            subject=data["subject"],
            source="".join(line + "\n" for line in data["source"]),
            sha256=data["sha256"],
        )

    @property
    def label(self) -> str:
        return f"{self.kind} {self.target}"

    def is_intact(self) -> bool:
        """Whether the recorded hash is the hash of the recorded source (false: the lock was edited)."""
        try:
            return fingerprint_of(self.source) == self.sha256
        except SyntaxError:
            return False


@dataclass(frozen=True)
class Lock:
    config: str
    source_module: str
    upstream_version: str
    upstream_names: tuple[str, ...]
    patches: tuple[Fingerprint, ...]

    def text(self) -> str:
        data = {
            "config": self.config,
            "normalisation": NORMALISATION,
            "patches": [p.to_json() for p in self.patches],
            "source_module": self.source_module,
            "upstream_names": list(self.upstream_names),
            "upstream_version": self.upstream_version,
        }
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def by_subject(self) -> dict[str, Fingerprint]:
        return {p.subject: p for p in self.patches}


def lock_path(module_path: Path) -> Path:
    """`generated/qwen3/patched_modeling_qwen3_cpu.py` -> `.../patched_modeling_qwen3_cpu.lock.json`."""
    return module_path.with_suffix(LOCK_SUFFIX)


def normalise(source: str) -> str:
    return ast.unparse(Snippet.parse(source).tree)


def fingerprint_of(source: str) -> str:
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


def build_lock(config: PatchConfig, config_module: str, upstream: UpstreamModule) -> Lock:
    """The lock of a config whose targets exist upstream (the planner has checked that)."""
    entries = []
    for patch in config.patches:
        subject = subject_of(patch)
        source = subject_source(upstream, subject)
        if source is None:  # pragma: no cover - make_plan rejects missing targets first
            raise PatchgenError(f"{config_module}: {patch.label}: no upstream {subject} to fingerprint")
        entries.append(Fingerprint(patch.kind.value, patch.target, subject, source, fingerprint_of(source)))
    return Lock(
        config=config_module,
        source_module=upstream.name,
        upstream_version=upstream.version,
        upstream_names=definition_names(upstream),
        patches=tuple(sorted(entries, key=lambda e: e.subject)),
    )


def read_lock(path: Path) -> Lock:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Lock(
            config=data["config"],
            source_module=data["source_module"],
            upstream_version=data["upstream_version"],
            upstream_names=tuple(data["upstream_names"]),
            patches=tuple(Fingerprint.from_json(p) for p in data["patches"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PatchgenError(
            f"{path}: not a readable patchgen lock file ({type(exc).__name__}: {exc}); restore it from version "
            "control, or delete it and review the upstream changes by hand before regenerating"
        ) from None


def refuse_stale_upstream(config_module: str, fresh: Lock, path: Path) -> None:
    """Refuse to regenerate over a lock whose patched subjects changed upstream since it was recorded.

    Regenerating would silently fold the new upstream into the output and refresh the fingerprints;
    a person must first review the change (`upgrade_report`) and accept it (`--accept`).
    """
    if not path.exists():
        return
    recorded = read_lock(path).by_subject()
    stale = []
    for entry in fresh.patches:
        old = recorded.get(entry.subject)
        if old is not None and (old.sha256 != entry.sha256 or not old.is_intact()):
            stale.append(entry.subject)
    if stale:
        raise PatchgenError(
            f"{config_module}: upstream changed under patched target(s) {', '.join(stale)} since {path} was "
            "recorded; review with `python -m patchgen.upgrade_report`, fix the patches, then run "
            "`python -m patchgen.upgrade_report --accept` and regenerate"
        )
