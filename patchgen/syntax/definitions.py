"""Finding a function or class definition in its file by where it is, not only by its name.

A module may define one name twice (a plain `def` and a faster one under `if FAST:`); the object a
decorator registered is the definition whose lines hold the line that decorator ran on (Python
reports the decorator's own line while it runs), and a function's code records its first line. A
leaf module: the DSL (to record where a patch is) and the generator (to copy it) both use it.
"""

from __future__ import annotations

import ast
import inspect
from functools import cache
from typing import Any

from patchgen.syntax.source_text import read_source


_DEFINITIONS = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


@cache
def parse_file(path: str) -> tuple[str, ast.Module]:
    """The decoded text and syntax tree of a Python file, read once per process. Raises `SyntaxError`."""
    text = read_source(path)
    return text, ast.parse(text, filename=path)


def first_line(node: ast.stmt) -> int:
    """The first line of a definition, its decorators included."""
    return min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])


def definitions_named(tree: ast.Module, qualname: str) -> list[ast.stmt]:
    """Every class or function definition with this qualified name, also inside module-level blocks
    (`if FAST:`, `try:`), in file order. Methods are found inside their classes."""
    found: list[ast.stmt] = []

    def visit(body: list[ast.stmt], parts: list[str]) -> None:
        for node in body:
            if isinstance(node, _DEFINITIONS) and node.name == parts[0]:
                if len(parts) == 1:
                    found.append(node)
                elif isinstance(node, ast.ClassDef):
                    visit(node.body, parts[1:])
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
                for block in (node.body, node.orelse, getattr(node, "finalbody", []), *_handler_bodies(node)):
                    visit(block, parts)

    visit(tree.body, qualname.split("."))
    return found


def _handler_bodies(node: ast.stmt) -> list[list[ast.stmt]]:
    return [handler.body for handler in getattr(node, "handlers", [])]


def definition_at(tree: ast.Module, qualname: str, line: int | None) -> tuple[ast.stmt | None, list[ast.stmt]]:
    """The definition of `qualname` whose lines (decorators included) hold `line`, else the only one.

    Returns (node or None, every candidate), so a caller can say which lines were ambiguous.
    """
    candidates = definitions_named(tree, qualname)
    if line is not None:
        matching = [n for n in candidates if first_line(n) <= line <= n.end_lineno]
        if matching:
            return matching[-1], candidates
    if len(candidates) == 1:
        return candidates[0], candidates
    return None, candidates


def line_inside(obj: Any) -> int | None:
    """A line inside `obj`'s own definition, read from the object: a function's first line, or for a
    class the first line of a method written in its body (a method of the same file, not inherited)."""
    code = getattr(obj, "__code__", None)
    if code is not None:
        return code.co_firstlineno
    if not inspect.isclass(obj):
        return None
    module_file = getattr(inspect.getmodule(obj), "__file__", None)
    for member in vars(obj).values():
        function = getattr(member, "__func__", member)  # staticmethod / classmethod
        function = getattr(function, "fget", function)  # property
        if inspect.isfunction(function):
            code = inspect.unwrap(function).__code__
            written_here = function.__qualname__.startswith(obj.__qualname__ + ".")
            if written_here and code.co_filename == module_file:
                return code.co_firstlineno
    return None
