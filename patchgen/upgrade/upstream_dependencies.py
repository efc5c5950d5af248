"""What patched code uses from the upstream package outside its own module, found by reading source.

A generated file keeps importing the installed package at run time: `ALL_ATTENTION_FUNCTIONS`,
`can_return_tuple`, `auto_docstring` come from `transformers`, not from the file. An upgrade that
changes one of them changes what the generated file does, even when the patched definitions are
word for word the same. The lock files therefore also fingerprint these *dependencies*:

- where they start: the free names of a patch's code (and of the helpers copied with it) and of the
  upstream subject it patches (decorators included; for a method, also its class's decorators) that
  the module in question imports from the upstream package (`from ...utils import auto_docstring`,
  `from transformers.cache_utils import Cache`). Names used only in annotations are left out: an
  annotation does not run.
- what one is: the definition the name leads to, re-exports followed (`transformers.utils` ->
  `transformers.utils.auto_docstring.auto_docstring`): a function or class, or the statement that
  binds a module-level object (`ALL_ATTENTION_FUNCTIONS: AttentionInterface = AttentionInterface()`).
- what of a class is recorded: only what the code uses. A class read only as `Class.attr`
  (`PreTrainedModel.get_correct_experts_implementation(self, ...)`) is recorded member by member
  (form `member`, named `module.Class.attr`); a class used otherwise (called, passed, an output
  class) is recorded as its *interface* (form `interface`): decorators, bases, class-level
  statements and method signatures, method bodies left out. Recording `PreTrainedModel` whole
  (3,831 lines) made every upgrade flag every patch near it and made the report crawl.
- what is followed from there: the names an object's statement uses (its class), and the names a
  class's body assigns at class level (a registry such as `AttentionInterface._global_mapping`
  reaches `sdpa_attention_forward` and the other attention functions). Function bodies, methods
  and base classes are not followed: that keeps the set small and its changes relevant.

Everything is read with `ast` from the installed files (nothing is imported), each file parsed once
per process, and the result is sorted: the same install gives the same lock, byte for byte.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from patchgen.dsl.errors import PatchgenError
from patchgen.load.patch_source import free_names
from patchgen.load.resolution import binding_origin
from patchgen.load.upstream import UpstreamModule, bound_names, read_upstream, upstream_module
from patchgen.syntax.definitions import parse_file
from patchgen.syntax.source_text import Snippet, SourceText, reindent


_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass(frozen=True)
class Package:
    """An installed package read from its files: `transformers` at `.../site-packages/transformers`."""

    name: str
    root: Path

    @classmethod
    def of(cls, upstream: UpstreamModule) -> Package:
        parts = upstream.name.split(".")
        levels = len(parts) - (0 if upstream.path.name == "__init__.py" else 1)
        return cls(parts[0], upstream.path.parents[levels - 1] if levels else upstream.path.parent)

    def contains(self, module: str) -> bool:
        return module == self.name or module.startswith(self.name + ".")

    def module_file(self, module: str) -> Path | None:
        if not self.contains(module):
            return None
        base = self.root.joinpath(*module.split(".")[1:])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        return None


WHOLE, INTERFACE, MEMBER = "whole", "interface", "member"  # what of a definition a dependency records


@dataclass(frozen=True)
class Definition:
    """One dependency: `name` is where it is defined (`transformers.modeling_utils.ALL_ATTENTION_FUNCTIONS`)."""

    name: str
    source: str  # the dedented text of the def/class (decorators included) or of the binding statement
    node: ast.stmt
    module: str
    form: str = WHOLE  # WHOLE, INTERFACE (a class without method bodies) or MEMBER (`module.Class.attr`)


def interface_of(definition: Definition) -> Definition:
    """A class's decorators, bases, class-level statements and method signatures (bodies left out)."""
    node = definition.node
    if not isinstance(node, ast.ClassDef):
        return definition
    body = []
    for statement in node.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body.append(_signature_only(statement))
        elif not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)):
            body.append(statement)  # a docstring is not interface
    header = ast.ClassDef(
        name=node.name,
        bases=node.bases,
        keywords=node.keywords,
        body=body or [ast.Expr(ast.Constant(...))],
        decorator_list=node.decorator_list,
        type_params=getattr(node, "type_params", []),
    )
    return Definition(definition.name, ast.unparse(header) + "\n", node, definition.module, INTERFACE)


def _signature_only(function: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.stmt:
    kind = type(function)
    fields = {f: getattr(function, f) for f in function._fields if f != "body"}
    return ast.copy_location(kind(**fields, body=[ast.Expr(ast.Constant(...))]), function)


def member_of(package: Package, definition: Definition, attribute: str) -> Definition:
    """`Class.attribute` as defined in the class body; the class's interface when it is inherited."""
    node = definition.node
    source, _ = parsed_file(package.module_file(definition.module))
    for statement in node.body if isinstance(node, ast.ClassDef) else ():
        if attribute in _bound_in_class(statement):
            first = source.node_start_line(statement, leading_comments=False)
            text = reindent(Snippet.parse("".join(source.lines[first - 1 : statement.end_lineno])), "")
            return Definition(f"{definition.name}.{attribute}", text, statement, definition.module, MEMBER)
    inherited = interface_of(definition)
    return Definition(
        f"{definition.name}.{attribute}",
        f"# {attribute}: not in the class body, inherited from its bases\n{inherited.source}",
        node,
        definition.module,
        MEMBER,
    )


def _bound_in_class(statement: ast.stmt) -> set[str]:
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {statement.name}
    if isinstance(statement, ast.Assign):
        return {t.id for t in statement.targets if isinstance(t, ast.Name)}
    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
        return {statement.target.id}
    return set()


FILES_READ: set[Path] = set()  # every upstream file read this process (the inputs a cached report names)


@cache
def parsed_file(path: Path) -> tuple[SourceText, ast.Module]:
    FILES_READ.add(path)
    text, tree = parse_file(str(path))  # decoded as Python decodes it (PEP 263), parsed once per process
    return SourceText(text), tree


@cache
def read_installed(module_name: str) -> UpstreamModule:
    """The installed upstream module read from its file, without importing its package.

    `read_upstream` finds a submodule with `importlib.util.find_spec`, which imports every parent
    package: `transformers/__init__.py` checks its own requirements at import, so a new release whose
    requirements this environment lacks (5.25 wants huggingface-hub 2.x) could not even be reported
    on, and importing it costs seconds. Only the top-level package is looked up here (that imports
    nothing); the file of a package without a plain folder layout falls back to `read_upstream`.
    """
    parts = module_name.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError) as exc:
        raise PatchgenError(f"source module {module_name!r} cannot be found: {exc}") from None
    folders = list(spec.submodule_search_locations or ()) if spec is not None else []
    if not folders or len(parts) == 1:
        return read_upstream(module_name)
    base = Path(folders[0]).joinpath(*parts[1:])
    path = next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)
    if path is None:
        raise PatchgenError(f"source module {module_name!r} is not installed (no {base}.py)")
    try:
        source, tree = parsed_file(path)
    except SyntaxError as exc:
        raise PatchgenError(
            f"source module {module_name!r} cannot be parsed ({path} line {exc.lineno}: {exc.msg}); "
            "fix or reinstall that package"
        ) from None
    return upstream_module(module_name, path, source, tree)


def top_level_binding(body: list[ast.stmt], name: str, *, at_run_time: bool = False) -> ast.stmt | None:
    """The innermost top-level statement binding `name`, looking into `if`/`try` blocks; the first wins.

    `at_run_time` skips `if TYPE_CHECKING:` blocks (their imports bind nothing when the code runs).
    Re-exports are followed through them: a lazy package `__init__` lists its names only there.
    """
    for node in body:
        if name not in bound_names([node]):
            continue
        if isinstance(node, ast.If):
            if at_run_time and _is_type_checking(node.test):
                continue
            found = top_level_binding(node.body, name, at_run_time=at_run_time)
            if found is None:
                found = top_level_binding(node.orelse, name, at_run_time=at_run_time)
            if found is not None:
                return found
            continue
        if isinstance(node, ast.Try):
            blocks = [node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)]
            found = next((f for b in blocks if (f := top_level_binding(b, name, at_run_time=at_run_time))), None)
            if found is not None:
                return found
            continue
        return node
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_origin(node: ast.ImportFrom, name: str, module: str, is_package: bool) -> tuple[str, str] | None:
    """(absolute module, original name) that `from ... import` in `module` binds to `name`."""
    dotted = binding_origin(node, name, module, module if is_package else module.rpartition(".")[0])
    if dotted is None:
        return None
    source, _, original = dotted.rpartition(".")
    return source, original


@cache
def _module_names(path: Path) -> set[str]:
    return bound_names(parsed_file(path)[1].body)


@cache
def package_imports(path: Path, module: str, package: Package) -> dict[str, tuple[str, str]]:
    """Top-level names the module at `path` imports from `package` at run time: name -> (module, name there).

    Like `top_level_binding(..., at_run_time=True)` for every name at once: the first binding wins, and a
    name bound otherwise first (a definition, an assignment) is not an import.
    """
    _, tree = parsed_file(path)
    is_package = path.name == "__init__.py"
    first: dict[str, tuple[str, str] | None] = {}

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If):
                if not _is_type_checking(node.test):
                    visit(node.body)
                    visit(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                    visit(block)
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    name = alias.asname or alias.name
                    if name not in first:
                        origin = import_origin(node, name, module, is_package)
                        first[name] = origin if origin is not None and package.contains(origin[0]) else None
            else:
                for name in bound_names([node]):
                    first.setdefault(name, None)

    visit(tree.body)
    return {name: origin for name, origin in sorted(first.items()) if origin is not None}


@cache
def resolve(package: Package, module: str, name: str, _hops: int = 0) -> Definition | None:
    """The definition `module.name` leads to inside the package, re-exports followed; None for a module,
    a star import, or anything not found (a lazily exported name)."""
    path = package.module_file(module)
    if path is None or _hops > 20:
        return None
    source, tree = parsed_file(path)
    node = top_level_binding(tree.body, name)
    if isinstance(node, ast.ImportFrom):
        origin = import_origin(node, name, module, path.name == "__init__.py")
        if origin is None or not package.contains(origin[0]):
            return None
        return resolve(package, *origin, _hops + 1)
    if isinstance(node, (*_DEFINITIONS, ast.Assign, ast.AnnAssign)):
        first = source.node_start_line(node, leading_comments=False)
        text = "".join(source.lines[first - 1 : node.end_lineno])
        if text[:1].isspace():  # defined inside an `if`/`try` block
            text = reindent(Snippet.parse(text), "")
        return Definition(f"{module}.{name}", text, node, module)
    return None


def resolve_qualified(package: Package, qualified: str, form: str = WHOLE) -> Definition | None:
    """The installed definition a lock's dependency record names, in the form it was recorded."""
    if form == MEMBER:
        owner, _, attribute = qualified.rpartition(".")
        definition = resolve_qualified(package, owner)
        if definition is None or not isinstance(definition.node, ast.ClassDef):
            return None
        return member_of(package, definition, attribute)
    module, _, name = qualified.rpartition(".")
    definition = resolve(package, module, name)
    if definition is not None and form == INTERFACE:
        return interface_of(definition)
    return definition


def runtime_names(tree: ast.AST) -> set[str]:
    """Names read outside annotations and class bases (`x: Cache` runs nothing; a base is not followed)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        parts: list[ast.AST | None] = []
        if isinstance(node, ast.arg):
            parts.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            parts.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            parts.append(node.annotation)
        elif isinstance(node, ast.ClassDef):
            parts += [*node.bases, *node.keywords]
        for part in parts:
            if part is not None:
                skipped.update(id(n) for n in ast.walk(part))
    return {
        n.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and id(n) not in skipped
    }


class UsedNames(frozenset):
    """Names read at run time, plus `members`: for a name only ever read as `name.attr`, those attrs.

    A frozenset (so every caller that wants the names keeps working); `dependencies` reads `members`
    to record only the parts of a class the code uses.
    """

    members: dict[str, frozenset[str]]


@cache
def names_used(text: str) -> UsedNames:
    """Global names a definition reads at run time (see `runtime_names`)."""
    snippet = Snippet.parse(text)
    used = UsedNames(free_names(snippet) & runtime_names(snippet.tree))
    used.members = attribute_only_uses(snippet.tree, used)
    return used


def attribute_only_uses(tree: ast.AST, names: frozenset[str]) -> dict[str, frozenset[str]]:
    """For each of `names` read only as `name.attr` in `tree`: the attrs read."""
    attributes: dict[str, set[str]] = {}
    as_value: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in names:
            attributes.setdefault(node.value.id, set()).add(node.attr)
            as_value.add(id(node.value))
    bare = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in names and id(n) not in as_value}
    return {name: frozenset(attrs) for name, attrs in attributes.items() if name not in bare}


def _followed_names(definition: Definition) -> set[str]:
    node = definition.node
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        return runtime_names(node.value) if node.value is not None else set()
    if isinstance(node, ast.ClassDef):
        names: set[str] = set()
        for statement in node.body:
            if isinstance(statement, (ast.Assign, ast.AnnAssign)) and statement.value is not None:
                names |= runtime_names(statement.value)
        return names
    return set()


@dataclass(frozen=True)
class NamesInModule:
    """Global names some code reads, to be looked up in the module the code lives in."""

    names: frozenset[str]
    module: str
    path: Path


def dependencies(package: Package, uses: list[NamesInModule]) -> dict[str, Definition]:
    """Every dependency in `package` of the given names, by qualified name (rules: module docstring)."""
    found: dict[str, Definition] = {}
    pending: list[tuple[str, str, frozenset[str] | None]] = []
    for use in uses:
        imports = package_imports(use.path, use.module, package)
        members = getattr(use.names, "members", {})
        pending += [(*imports[name], members.get(name)) for name in sorted(use.names) if name in imports]
    while pending:
        module, name, attributes = pending.pop(0)
        definition = resolve(package, module, name)
        if definition is None:
            continue
        if isinstance(definition.node, ast.ClassDef):
            parts = [member_of(package, definition, a) for a in sorted(attributes)] if attributes else []
            definition = interface_of(definition) if not parts else None
        else:
            parts = []
        for part in [definition] if definition is not None else parts:
            if part.name in found:
                continue
            found[part.name] = part
            if part.form == MEMBER and not isinstance(part.node, (ast.Assign, ast.AnnAssign)):
                continue  # a method's body is not followed, nor the bases of an inherited member
            local = _module_names(package.module_file(part.module))
            pending += [(part.module, n, None) for n in sorted(_followed_names(part)) if n in local]
    return dict(sorted(found.items()))
