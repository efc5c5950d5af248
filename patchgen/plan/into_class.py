"""Code written in one place and put into a class body in the output: what must not change meaning.

A method override, `add_method` or `modify_init` is often written as a module-level function, and a
replacement class is renamed to its target. Inside a class body Python treats some code differently:
- an identifier `__name` is rewritten to `_Class__name` (name mangling): a module-level function that
  sets `self.__seen` sets `__seen` at run time but `_Block__seen` once inside `class Block`, and
  `class FastNorm` renamed to `Qwen3RMSNorm` turns `_FastNorm__eps` into `_Qwen3RMSNorm__eps`
  (checkpoint keys included);
- zero-argument `super()` works (the class provides `__class__`), while in a module-level function it
  raises `RuntimeError` when called;
- decorators, defaults and annotations of a method run in the class body, whose names come before the
  module's (`def capped(self, *, cap=limit)` reads the class attribute `limit`).
The generator refuses such code instead of writing one that behaves differently.
"""

from __future__ import annotations

import ast

from patchgen.dsl.errors import PatchgenError
from patchgen.syntax.module_facts import runtime_bound_names


def mangled(class_name: str | None, name: str) -> str:
    """What `name` becomes when written in the body of `class_name` (None: outside any class)."""
    if class_name is None or not name.startswith("__") or name.endswith("__") or "." in name:
        return name
    stripped = class_name.lstrip("_")
    return f"_{stripped}{name}" if stripped else name


def class_written_in(obj: object) -> str | None:
    """The class a function is written in in its module (`Patches.forward` -> "Patches"), None at module level."""
    qualname = getattr(obj, "__qualname__", "")
    return qualname.rsplit(".", 2)[-2] if "." in qualname else None


def refuse_changed_meaning(
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef,
    written_in: str | None,
    placed_in: ast.ClassDef | str,
    label: str,
) -> None:
    """Refuse `node` (written in class `written_in`, None at module level) when placing it in `placed_in`
    (an upstream class body, or the name a replacement class is renamed to) changes what it does."""
    placed_name = placed_in if isinstance(placed_in, str) else placed_in.name
    where = f"{'class' if isinstance(node, ast.ClassDef) else 'in'} {node.name}"
    for name in _identifiers(node):
        ours, theirs = mangled(written_in, name), mangled(placed_name, name)
        if ours != theirs:
            raise PatchgenError(
                f"{label}: the private name {name!r} ({where}) is {ours!r} where the patch is written but "
                f"{theirs!r} in the output (Python mangles `__name` with the enclosing class); use a single "
                f"leading underscore ({name[1:]!r})"
            )
    if isinstance(node, ast.ClassDef):
        return
    if written_in is None and any(_is_bare_super(n) for n in ast.walk(node)):
        raise PatchgenError(
            f"{label}: {node.name} calls super() without arguments outside a class: applied at run time that "
            f"raises RuntimeError, in the output it would work; write super({placed_name}, self)"
        )
    if not isinstance(placed_in, str):
        _refuse_class_body_names(node, placed_in, label)


def refuse_private_member(class_name: str, name: str, label: str, what: str) -> None:
    """Refuse putting a new member spelled `__name` into `class_name`: written in the class body it is the
    attribute `_Class__name`, while the patch applied at run time (`setattr(Class, "__name", f)`) makes an
    attribute `__name`, so callers of one do not find the other."""
    if mangled(class_name, name) != name:
        raise PatchgenError(
            f"{label}: {what} {name!r} would be the attribute {mangled(class_name, name)!r} in class {class_name} "
            f"(Python mangles `__name` in a class body) but {name!r} applied at run time; use a name without two "
            f"leading underscores ({name.lstrip('_')!r} or {'_' + name.lstrip('_')!r})"
        )


def refuse_renamed_private_names(node: ast.ClassDef, new_name: str, label: str, advice: str) -> None:
    """Refuse upstream class `node` kept under `new_name` when its private names would change: `self.__size`
    is `_Block__size` at run time (the kept object is still upstream's class) but `_UpstreamBlock__size` in
    a class written as `class UpstreamBlock`."""
    for name in _identifiers(node):
        ours, theirs = mangled(node.name, name), mangled(new_name, name)
        if ours != theirs:
            raise PatchgenError(
                f"{label}: upstream class {node.name} uses the private name {name!r}, which is {ours!r} in upstream "
                f"but {theirs!r} in the output's `class {new_name}` (Python mangles `__name` with the class); {advice}"
            )


def _refuse_class_body_names(node: ast.FunctionDef | ast.AsyncFunctionDef, cls: ast.ClassDef, label: str) -> None:
    args = node.args
    evaluated = [*node.decorator_list, *args.defaults, *(d for d in args.kw_defaults if d is not None)]
    parameters = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    evaluated += [a.annotation for a in parameters if a is not None and a.annotation is not None]
    evaluated += [node.returns] if node.returns is not None else []
    read = {n.id for part in evaluated for n in ast.walk(part) if isinstance(n, ast.Name)}
    shadowed = sorted(read & runtime_bound_names(cls.body))
    if shadowed:
        raise PatchgenError(
            f"{label}: {node.name}'s decorators, defaults or annotations read {shadowed[0]!r}, which upstream class "
            f"{cls.name} binds in its body: there they would mean the class attribute, not the module's "
            f"{shadowed[0]!r}; rename it in the patch module"
        )


def _is_bare_super(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "super"
        and not node.args
        and not node.keywords
    )


def _identifiers(node: ast.AST):
    """Every identifier Python would mangle in `node`; nested classes' bodies are left out (their own
    name decides there)."""
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
