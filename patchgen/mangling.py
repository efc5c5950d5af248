"""Private names (`self.__cache`) and the class they are written in.

Python rewrites an identifier `__name` written inside a class body to `_Class__name` (name mangling).
Moving code into another class, or renaming its class, changes what such a name becomes: a method
override written as a module-level function sets `self.__seen` at run time, while the same text inside
`class Block` sets `self._Block__seen`; `class FastNorm` renamed to `Qwen3RMSNorm` turns
`_FastNorm__eps` into `_Qwen3RMSNorm__eps` (checkpoint keys included). The generator refuses such
code instead of writing one that stores different attributes.
"""

from __future__ import annotations

import ast

from patchgen.errors import PatchgenError


def mangled(class_name: str | None, name: str) -> str:
    """What `name` becomes when written in the body of `class_name` (None: outside any class)."""
    if class_name is None or not name.startswith("__") or name.endswith("__") or "." in name:
        return name
    stripped = class_name.lstrip("_")
    return f"_{stripped}{name}" if stripped else name


def _identifiers(node: ast.AST):
    """Every identifier Python would mangle in `node`, nested classes left out (their
    own name decides for their bodies)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.Name):
            yield item.id
        elif isinstance(item, ast.Attribute):
            yield item.attr
        elif isinstance(item, ast.arg):
            yield item.arg
        elif isinstance(item, ast.alias):
            yield item.asname or item.name
        elif isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and item is not node:
            yield item.name
        if isinstance(item, ast.ClassDef) and item is not node:
            stack += [*item.decorator_list, *item.bases, *item.keywords]
            continue
        stack += ast.iter_child_nodes(item)


def class_written_in(obj: object) -> str | None:
    """The class a function is written in in its module (`Patches.forward` -> "Patches"), None at module level."""
    qualname = getattr(obj, "__qualname__", "")
    return qualname.rsplit(".", 2)[-2] if "." in qualname else None


def refuse_changed_mangling(
    node: ast.AST, written_in: str | None, placed_in: str | None, label: str, where: str
) -> None:
    """Refuse code whose private names mean other attributes in the output (`written_in`: the class the
    patch code sits in in its module, None at module level; `placed_in`: its class in the output)."""
    for name in _identifiers(node):
        ours, theirs = mangled(written_in, name), mangled(placed_in, name)
        if ours != theirs:
            raise PatchgenError(
                f"{label}: the private name {name!r} ({where}) is {ours!r} where the patch "
                f"is written but {theirs!r} in the output (Python mangles `__name` with the enclosing class); "
                f"use a single leading underscore ({name[1:]!r})"
            )
