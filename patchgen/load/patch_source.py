"""Patch objects -> their own source text, cut from their file with the comments above them.

A patch is found by *where it is defined*, never by its name alone: a module may define the same
name twice (a plain `def` and a faster one under `if FAST:`), and the registered object is the one
whose definition the generator must copy. Functions carry their first line (`co_firstlineno`); for
classes the DSL records the line its decorator ran on (`SourceLocation.line` of `defined_at`).

`free_names` lists the global names a piece of code reads; `patchgen.load.resolution` decides what each
of them becomes in the output.
"""

from __future__ import annotations

import ast
import inspect
import os
import symtable
import sys
from dataclasses import dataclass
from functools import cache, lru_cache
from types import ModuleType
from typing import Any

from patchgen.dsl.errors import PatchgenError
from patchgen.dsl.patch_spec import REGISTERING_DECORATORS, SourceLocation, module_path
from patchgen.syntax.definitions import definition_at, line_inside, parse_file
from patchgen.syntax.module_facts import ModuleFacts
from patchgen.syntax.source_text import Snippet, SourceText


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


@dataclass(frozen=True)
class ParsedFile:
    """A module file read once: its text, syntax tree and the facts about its top-level statements."""

    path: str
    source: SourceText
    tree: ast.Module
    facts: ModuleFacts


@cache
def parsed_file(path: str) -> ParsedFile:
    try:
        text, tree = parse_file(path)
    except SyntaxError as exc:
        raise PatchgenError(f"{exc.filename}:{exc.lineno}: cannot read patch code: {exc.msg}") from None
    return ParsedFile(path, SourceText(text), tree, ModuleFacts(tree))


def module_file(module: ModuleType) -> str:
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py"):
        raise PatchgenError(f"module {module.__name__!r} has no Python source file to copy patch code from")
    return path


def display_path(module: ModuleType) -> str:
    """The repo-style path messages and banners use for a module (never an absolute path)."""
    return module_path(module.__name__, module_file(module))


def locate_definition(obj: Any, label: str, line_hint: int | None = None) -> tuple[ModuleType, ParsedFile, ast.stmt]:
    """The module, file and definition node of a function or class object, found by its location.

    A function is found by its code's first line; a class by `line_hint`, a line inside its statement
    (the DSL records the line its decorator ran on), else by being the only definition of its name.
    """
    obj = inspect.unwrap(obj) if inspect.isfunction(obj) else obj
    module = sys.modules.get(getattr(obj, "__module__", "") or "", None)
    qualname = getattr(obj, "__qualname__", "") or ""
    if module is None or "<locals>" in qualname or not qualname:
        raise PatchgenError(
            f"{label}: {_describe(obj)} must be defined at module or class level of an importable module "
            "(not inside a function)"
        )
    parsed = parsed_file(module_file(module))
    code = getattr(obj, "__code__", None)
    if code is not None and os.path.realpath(code.co_filename) != os.path.realpath(parsed.path):
        raise PatchgenError(
            f"{label}: {_describe(obj)} claims module {module.__name__} but its code comes from "
            f"{os.path.basename(code.co_filename)}; define it with `def` in the module it belongs to"
        )
    node, candidates = definition_at(
        parsed.tree, qualname, code.co_firstlineno if code is not None else line_hint or line_inside(obj)
    )
    if node is not None:
        return module, parsed, node
    where = display_path(module)
    if qualname.endswith("<lambda>"):
        raise PatchgenError(f"{label}: a lambda cannot be copied into the output; define it with `def` in {where}")
    if not candidates:
        raise PatchgenError(f"{label}: cannot find the definition of {qualname} in {where}")
    lines = ", ".join(str(n.lineno) for n in candidates)
    raise PatchgenError(
        f"{label}: {where} defines {qualname} {len(candidates)} times (lines {lines}) and cannot tell which is "
        "the registered one; register it with a decorator on its definition, or give each definition its own name"
    )


def _describe(obj: Any) -> str:
    """How messages name an object: its qualified name, never a repr with a memory address."""
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    return f"{type(obj).__name__} {name!r}" if name else f"a {type(obj).__name__}"


def _is_registering_decorator(decorator: ast.expr) -> bool:
    return (
        isinstance(decorator, ast.Call)
        and isinstance(decorator.func, ast.Attribute)
        and decorator.func.attr in REGISTERING_DECORATORS
    )


def read_patch_source(obj: Any, label: str, line_hint: int | None = None) -> PatchSource:
    """Cut the source of a module- or class-level function or class out of its file."""
    module, parsed, node = locate_definition(obj, label, line_hint)
    _refuse_changed_after_definition(obj, module, parsed, node, label)
    return source_of_node(module, parsed.source, node)


def _refuse_changed_after_definition(obj: Any, module: ModuleType, parsed: ParsedFile, node: ast.stmt, label: str):
    """`fast.cache = {}` or `FastNorm.eps = 1e-5` below the definition: the registered object is more than its
    definition, and the output copies only the definition."""
    name = getattr(node, "name", None)
    if name is None or vars(module).get(name) is not obj:
        return
    changers = [s for s in parsed.facts.changers(name) if s.node.lineno > node.lineno]
    if changers:
        raise PatchgenError(
            f"{label}: {display_path(module)}:{changers[0].node.lineno} changes {name!r} after its definition; the "
            f"output copies the definition only, so move that into it (a class attribute, or state the code builds)"
        )


def source_of_node(module: ModuleType, source: SourceText, node: ast.stmt) -> PatchSource:
    decorators = getattr(node, "decorator_list", [])
    first = source.node_start_line(node, leading_comments=False)
    comments_start = source.node_start_line(node, leading_comments=True)
    kept = tuple(
        "".join(source.lines[d.lineno - 1 : d.end_lineno]) for d in decorators if not _is_registering_decorator(d)
    )
    location = SourceLocation(module.__name__, display_path(module), node.lineno)
    return PatchSource(
        module=module,
        location=location,
        comments="".join(source.lines[comments_start - 1 : first - 1]),
        decorators=kept,
        definition="".join(source.lines[node.lineno - 1 : node.end_lineno]),
        indent=source.indentation_of(node.lineno),
    )


def free_names(snippet: Snippet) -> set[str]:
    """Global names a piece of code reads: in decorators, defaults, annotations, bases and bodies.

    Builtins are included: whether `round` means the builtin depends on what the patch module binds.
    """
    return set(_symbols_of(_module_text(snippet)).free)


def assigned_globals(snippet: Snippet) -> set[str]:
    """Module names the code rebinds from inside a function (`global N` then `N = ...`, `N += 1`, `del N`)."""
    return set(_symbols_of(_module_text(snippet)).assigned_globals)


def local_names(snippet: Snippet) -> set[str]:
    """Names bound as locals (parameters, variables, nested definitions) in any function, lambda, class or
    comprehension scope of the code: never the module's names, though spelled the same."""
    return set(_symbols_of(_module_text(snippet)).local)


def _module_text(snippet: Snippet) -> str:
    return "if 1:\n" + snippet.text if snippet.indent else snippet.text


@dataclass(frozen=True)
class _Symbols:
    free: frozenset[str]
    assigned_globals: frozenset[str]
    local: frozenset[str]


@lru_cache(maxsize=4096)
def _symbols_of(text: str) -> _Symbols:
    """What `free_names`, `assigned_globals` and `local_names` read of the symbol table: one table per
    distinct text (every config imports the sets afresh, and asks again of the same code)."""
    table = symtable.symtable(text, "<patch>", "exec")
    free = {
        symbol.get_name()
        for symbol in table.get_symbols()
        if symbol.is_referenced() and not symbol.is_assigned() and not symbol.is_imported()
    }
    assigned, local = set(), set()
    stack = list(table.get_children())
    while stack:  # every function, lambda, class and comprehension scope (not the module's)
        scope = stack.pop()
        for symbol in scope.get_symbols():
            if symbol.is_global() and symbol.is_referenced():
                free.add(symbol.get_name())
            if symbol.is_declared_global() and symbol.is_assigned():
                assigned.add(symbol.get_name())
            if symbol.is_local() and not symbol.is_global():
                local.add(symbol.get_name())
        stack += scope.get_children()
    # `__class__` is the implicit cell zero-argument `super()` reads: the class the method is written in
    # provides it, in the output as in the patch module
    return _Symbols(frozenset(free - {"__class__"}), frozenset(assigned), frozenset(local))
