"""Patch objects -> their own source text, and the names that text needs in the output.

A patch's text is cut from its module file (comments kept, `@config.*` decorators dropped). The
names it uses that the output module does not define are resolved in the patch's own module: an
import there becomes an import in the output; a helper defined in the patch package is copied in,
transitively. Nothing from the patch package is ever imported by the output.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import inspect
import symtable
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from patchgen.errors import PatchgenError
from patchgen.patch_spec import REGISTERING_DECORATORS, SourceLocation, module_path
from patchgen.source_text import Snippet, SourceText, apply_edits, reindent, rename_edits
from patchgen.upstream import bound_names


_BUILTINS = frozenset(dir(builtins)) | {"__name__", "__file__", "__doc__", "__spec__", "__package__"}


@dataclass(frozen=True)
class PatchSource:
    """The text of one definition taken from a patch module.

    `comments` are the comment lines directly above it, `decorators` its own decorators (DSL
    registrations removed), `definition` the `def`/`class` statement itself. All keep the
    indentation they have in their file (`indent`).
    """

    module: ModuleType
    location: SourceLocation
    comments: str
    decorators: tuple[str, ...]
    definition: str
    indent: str

    def snippet(self) -> Snippet:
        return Snippet.parse(self.comments + "".join(self.decorators) + self.definition)


@cache
def _parsed_file(path: str) -> tuple[SourceText, ast.Module]:
    text = Path(path).read_text(encoding="utf-8")
    return SourceText(text), ast.parse(text, filename=path)


def _module_file(module: ModuleType) -> str:
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py"):
        raise PatchgenError(f"module {module.__name__!r} has no Python source file to copy patch code from")
    return path


def _find_definition(tree: ast.Module, qualname: str) -> ast.stmt | None:
    body: list[ast.stmt] = tree.body
    node = None
    for part in qualname.split("."):
        node = next(
            (
                n
                for n in body
                if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == part
            ),
            None,
        )
        if node is None:
            return None
        body = node.body
    return node


def _is_registering_decorator(decorator: ast.expr) -> bool:
    return (
        isinstance(decorator, ast.Call)
        and isinstance(decorator.func, ast.Attribute)
        and decorator.func.attr in REGISTERING_DECORATORS
    )


def read_patch_source(obj: Any, label: str) -> PatchSource:
    """Cut the source of a module- or class-level function or class out of its file."""
    module = sys.modules.get(getattr(obj, "__module__", ""), None)
    qualname = getattr(obj, "__qualname__", "")
    if module is None or "<locals>" in qualname or not qualname:
        raise PatchgenError(
            f"{label}: {obj!r} must be defined at module or class level of an importable module (not inside a function)"
        )
    path = _module_file(module)
    source, tree = _parsed_file(path)
    node = _find_definition(tree, qualname)
    if node is None:
        raise PatchgenError(
            f"{label}: cannot find the definition of {qualname} in {module_path(module.__name__, path)}"
        )
    return _source_of_node(module, source, node)


def _source_of_node(module: ModuleType, source: SourceText, node: ast.stmt) -> PatchSource:
    decorators = getattr(node, "decorator_list", [])
    first = source.node_start_line(node, leading_comments=False)
    comments_start = source.node_start_line(node, leading_comments=True)
    kept = tuple(
        "".join(source.lines[d.lineno - 1 : d.end_lineno]) for d in decorators if not _is_registering_decorator(d)
    )
    location = SourceLocation(module.__name__, module_path(module.__name__, _module_file(module)), node.lineno)
    return PatchSource(
        module=module,
        location=location,
        comments="".join(source.lines[comments_start - 1 : first - 1]),
        decorators=kept,
        definition="".join(source.lines[node.lineno - 1 : node.end_lineno]),
        indent=source.indentation_of(node.lineno),
    )


def free_names(snippet: Snippet) -> set[str]:
    """Global names a definition reads: in decorators, defaults, annotations, bases and bodies."""
    text = "if 1:\n" + snippet.text if snippet.indent else snippet.text
    table = symtable.symtable(text, "<patch>", "exec")
    names: set[str] = set()
    for symbol in table.get_symbols():
        if symbol.is_referenced() and not symbol.is_assigned() and not symbol.is_imported():
            names.add(symbol.get_name())

    def visit(scope: symtable.SymbolTable) -> None:
        for symbol in scope.get_symbols():
            if symbol.is_global() and symbol.is_referenced():
                names.add(symbol.get_name())
        for child in scope.get_children():
            visit(child)

    for child in table.get_children():
        visit(child)
    return names - _BUILTINS


# -- resolving names ------------------------------------------------------------------------------


@dataclass
class Helper:
    """A definition copied from the patch package into the output, with its own banner."""

    key: tuple[str, str]
    name: str
    text: str
    location: SourceLocation
    needed_by: list[str] = field(default_factory=list)
    depends_on: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Resolution:
    """What the output needs beyond upstream so that every patch's names are defined."""

    imports: dict[str, None] = field(default_factory=dict)  # import statements, ordered, unique
    helpers: dict[tuple[str, str], Helper] = field(default_factory=dict)


@dataclass(frozen=True)
class NameContext:
    """What the output module will define, and which patch objects are renamed to which targets."""

    output_names: frozenset[str]
    upstream_module: ModuleType
    patch_package: str
    renamed_objects: dict[int, str]  # id(replacement object) -> upstream target name
    # The parsed upstream module (`patchgen.upstream.UpstreamModule`): lets names be matched by where
    # their source imports them from, without importing upstream (see `same_origin_as_upstream`).
    upstream: Any = None

    def is_patch_space(self, module_name: str) -> bool:
        return module_name == self.patch_package or module_name.startswith(self.patch_package + ".")


def binding_origin(node: ast.stmt | None, name: str, module_name: str, package: str) -> str | None:
    """The dotted name of the object `node` binds to `name`, read from source alone.

    `torch` for `import torch.nn.functional`, `torch.nn` for `from torch import nn`, `<module>.<name>`
    for a `def`/`class`; None for anything else (an assignment, a guarded block).
    """
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return f"{module_name}.{name}"
    if not isinstance(node, (ast.Import, ast.ImportFrom)):
        return None
    for alias in node.names:
        if (alias.asname or alias.name.split(".", 1)[0]) != name:
            continue
        if isinstance(node, ast.Import):
            return alias.name if alias.asname else name
        source = node.module or ""
        if node.level:
            source = importlib.util.resolve_name("." * node.level + source, package)
        return f"{source}.{alias.name}"
    return None


def same_origin_as_upstream(name: str, module: ModuleType, context: NameContext) -> bool:
    """True when the patch module and upstream bind `name` to the same dotted origin (so the same object).

    False means "not known from source": the caller compares the objects themselves.
    """
    upstream = context.upstream
    if upstream is None:
        return False
    path = _module_file(module)
    ours = binding_origin(_module_bindings(path).get(name), name, module.__name__, module.__package__ or "")
    theirs = binding_origin(_upstream_bindings(upstream).get(name), name, upstream.name, upstream.package)
    return ours is not None and ours == theirs


_UPSTREAM_BINDINGS: dict[str, dict[str, ast.stmt]] = {}


def _upstream_bindings(upstream) -> dict[str, ast.stmt]:
    if upstream.name not in _UPSTREAM_BINDINGS:
        bindings: dict[str, ast.stmt] = {}
        for node in upstream.tree.body:
            for bound in _names_bound_by(node):
                bindings.setdefault(bound, node)
        _UPSTREAM_BINDINGS[upstream.name] = bindings
    return _UPSTREAM_BINDINGS[upstream.name]


@cache
def _module_bindings(path: str) -> dict[str, ast.stmt]:
    """Top-level statement binding each name of a module (a guarded block binds all its names)."""
    _, tree = _parsed_file(path)
    bindings: dict[str, ast.stmt] = {}
    for node in tree.body:
        for name in _names_bound_by(node):
            bindings.setdefault(name, node)
    return bindings


def _names_bound_by(node: ast.stmt) -> set[str]:
    return bound_names([node])


def _import_statement(node: ast.Import | ast.ImportFrom, name: str, package: str) -> tuple[str, str]:
    """The single-name import statement binding `name`, and the absolute module it imports from."""
    for alias in node.names:
        bound = alias.asname or alias.name.split(".", 1)[0]
        if bound != name:
            continue
        if isinstance(node, ast.Import):
            text = f"import {alias.name} as {alias.asname}" if alias.asname else f"import {alias.name}"
            return text, alias.name
        module = node.module or ""
        if node.level:
            module = importlib.util.resolve_name("." * node.level + module, package)
        suffix = f" as {alias.asname}" if alias.asname else ""
        return f"from {module} import {alias.name}{suffix}", f"{module}.{alias.name}"
    raise KeyError(name)


def resolve_names(
    snippet: Snippet,
    module: ModuleType,
    label: str,
    context: NameContext,
    resolution: Resolution,
    *,
    ignore: frozenset[str] = frozenset(),
    bindings: dict[str, Any] | None = None,
) -> tuple[Snippet, list[tuple[str, str]]]:
    """Make every free name of `snippet` defined in the output.

    Returns the snippet with renamed references (patch replacement names -> upstream targets, bound
    placeholders -> the names of the objects bound to them) and the keys of the helpers it needs
    directly. Adds imports and helpers to `resolution`.
    """
    renames: dict[str, str] = {}
    needed: list[tuple[str, str]] = []
    namespace = vars(module)
    bindings = bindings or {}
    for name in sorted(free_names(snippet) - ignore):
        if name in bindings:
            value = bindings[name]
            if value.__name__ != name:
                renames[name] = value.__name__
            key = _resolve_bound(value, label, context, resolution)
            if key is not None:
                needed.append(key)
            continue
        value = namespace.get(name, _MISSING)
        if value is not _MISSING and id(value) in context.renamed_objects:
            target = context.renamed_objects[id(value)]
            if target != name:
                renames[name] = target
            continue
        if name in context.output_names:
            if value is _MISSING or same_origin_as_upstream(name, module, context):
                continue
            upstream_value = vars(context.upstream_module).get(name, _MISSING)
            if upstream_value is not _MISSING and value is not upstream_value:
                raise PatchgenError(
                    f"{label}: name {name!r} in {module_path(module.__name__, _module_file(module))} is not the "
                    f"upstream {name!r} that the output defines; rename it in the patch module or import upstream's"
                )
            continue
        if value is _MISSING:
            raise PatchgenError(
                f"{label}: name {name!r} is defined neither in the upstream module nor in "
                f"{module_path(module.__name__, _module_file(module))}; import or define it there"
            )
        key = _resolve_one(name, value, module, label, context, resolution)
        if key is not None:
            needed.append(key)
    if renames:
        snippet = Snippet.parse(apply_edits(snippet.text, rename_edits(snippet, renames)))
    return snippet, needed


_MISSING = object()


def _resolve_bound(value: Any, label: str, context: NameContext, resolution: Resolution) -> tuple[str, str] | None:
    """A function or class bound to a placeholder (`use(..., bind=...)`): copied when it lives in the patch
    package, imported from its installed module otherwise. It keeps its own name in the output."""
    name, home_name = value.__name__, value.__module__
    if name in context.output_names:
        upstream_value = vars(context.upstream_module).get(name, _MISSING)
        if upstream_value is value:
            return None
        raise PatchgenError(
            f"{label}: bind: {home_name}.{name} would be defined as {name!r} in the output, which upstream "
            f"already defines; rename the bound {'class' if inspect.isclass(value) else 'function'}"
        )
    if context.is_patch_space(home_name):
        home = sys.modules[home_name]
        return _add_helper(
            name, _source_of_node(home, *_find_in_file(home, value.__qualname__, label)), label, context, resolution
        )
    if "." in value.__qualname__:
        raise PatchgenError(f"{label}: bind: {home_name}.{value.__qualname__} is not a module-level object")
    resolution.imports.setdefault(f"from {home_name} import {name}", None)
    return None


def _resolve_one(
    name: str, value: Any, module: ModuleType, label: str, context: NameContext, resolution: Resolution
) -> tuple[str, str] | None:
    if name in _BUILTINS:
        return None
    path = _module_file(module)
    binding = _module_bindings(path).get(name)
    if binding is None:
        raise PatchgenError(
            f"{label}: name {name!r} is set dynamically in {module_path(module.__name__, path)}; "
            "bind it with a plain import or definition there"
        )
    if isinstance(binding, (ast.Import, ast.ImportFrom)):
        statement, source_module = _import_statement(binding, name, module.__package__ or module.__name__)
        if not context.is_patch_space(source_module) and not context.is_patch_space(
            getattr(value, "__module__", "") or ""
        ):
            resolution.imports.setdefault(statement, None)
            return None
        if inspect.isclass(value) or inspect.isfunction(value):
            home = sys.modules[value.__module__]
            return _add_helper(
                name,
                _source_of_node(home, *_find_in_file(home, value.__qualname__, label)),
                label,
                context,
                resolution,
            )
        raise PatchgenError(
            f"{label}: {name!r} is imported from the patch package ({source_module}); generated files must not import "
            "from it, so import it from an installed package or define it as a function/class"
        )
    if isinstance(binding, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        source, _ = _parsed_file(path)
        return _add_helper(name, _source_of_node(module, source, binding), label, context, resolution)
    # An assignment, or an `if`/`try` block binding the name: copied whole, where it is.
    source, _ = _parsed_file(path)
    start, end = source.node_lines(binding)
    text = source.segment(start, end)
    location = SourceLocation(module.__name__, module_path(module.__name__, path), binding.lineno)
    fake = PatchSource(module, location, "", (), text, "")
    return _add_helper(name, fake, label, context, resolution)


def _find_in_file(module: ModuleType, qualname: str, label: str) -> tuple[SourceText, ast.stmt]:
    source, tree = _parsed_file(_module_file(module))
    node = _find_definition(tree, qualname)
    if node is None:
        raise PatchgenError(f"{label}: cannot find {qualname} in {module.__name__}")
    return source, node


def _add_helper(
    name: str, source: PatchSource, label: str, context: NameContext, resolution: Resolution
) -> tuple[str, str]:
    key = (source.location.module, name)
    if key in resolution.helpers:
        resolution.helpers[key].needed_by.append(label)
        return key
    helper = Helper(key=key, name=name, text="", location=source.location, needed_by=[label])
    resolution.helpers[key] = helper  # registered first so recursive helpers terminate
    snippet = source.snippet()
    definition = snippet.definition
    if isinstance(definition, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and definition.name != name:
        snippet = Snippet.parse(apply_edits(snippet.text, rename_edits(snippet, {definition.name: name})))
    snippet, needs = resolve_names(
        snippet, source.module, f"{label} (via helper {name})", context, resolution, ignore=frozenset({name})
    )
    helper.text = reindent(snippet, "")
    helper.depends_on = [k for k in needs if k != key]
    return key
