"""What a module's top-level statements bind and change, read from its source once (a gatherer).

Copying code out of a patch module is only faithful when every statement that gives a name its value
comes along, in order: `FACTOR = 2` then `FACTOR *= 3`, `REG = {}` then `REG["x"] = f`, a `def` then a
redefinition under `if FAST:`. These facts say, per name, which top-level statements bind it, which
change it in place, and which hand it to a call (and so may change it in a way no reader can tell).
Names bound only under `if TYPE_CHECKING:` are kept apart: they do not exist when the module runs.

Worked example, for

    1  from typing import TYPE_CHECKING
    2  if TYPE_CHECKING:
    3      from torch import Tensor
    4  REG = {}
    5  REG["a"] = 1
    6  register(REG)
    7  @REG.setdefault
    8  def helper(x): ...

`binders("REG")` is the statement of line 4, `changers("REG")` those of lines 5 and 7 (a decorator
that is a method of `REG`), `unclear("REG")` line 6; `type_checking_names` is `{"Tensor"}` and
`runtime_names` holds `TYPE_CHECKING`, `REG`, `helper` but not `Tensor`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class TopStatement:
    """One top-level statement (a compound `if`/`try`/`with` block counts as one)."""

    index: int
    node: ast.stmt
    binds: frozenset[str]  # names it binds when the module runs (TYPE_CHECKING bodies left out)
    changes: frozenset[str]  # names it changes in place: `N[k] = v`, `N.a = v`, `N.m(...)`, `del N[k]`, `@N.m`
    unclear: frozenset[str]  # names it passes to a call at import time: the call may change them


def is_type_checking_test(test: ast.expr) -> bool:
    """`TYPE_CHECKING` or `typing.TYPE_CHECKING` (the guards type checkers read and the interpreter skips)."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def runtime_bound_names(body: list[ast.stmt]) -> set[str]:
    """Names a list of statements binds when it runs, looking into blocks but not `if TYPE_CHECKING:` bodies."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(alias.asname or alias.name.split(".", 1)[0] for alias in node.names if alias.name != "*")
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(_stored_names(target))
        elif isinstance(node, ast.If):
            if not is_type_checking_test(node.test):
                names |= runtime_bound_names(node.body)
            names |= runtime_bound_names(node.orelse)
        elif isinstance(node, ast.Try | getattr(ast, "TryStar", ast.Try)):
            names |= runtime_bound_names(node.body) | runtime_bound_names(node.orelse)
            names |= runtime_bound_names(node.finalbody)
            for handler in node.handlers:
                if handler.name:
                    names.add(handler.name)
                names |= runtime_bound_names(handler.body)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    names.update(_stored_names(item.optional_vars))
            names |= runtime_bound_names(node.body)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            names.update(_stored_names(node.target))
            names |= runtime_bound_names(node.body) | runtime_bound_names(node.orelse)
        elif isinstance(node, ast.While):
            names |= runtime_bound_names(node.body) | runtime_bound_names(node.orelse)
        elif isinstance(node, ast.Match):
            for case in node.cases:
                names.update(n.name for n in ast.walk(case.pattern) if getattr(n, "name", None))
                names |= runtime_bound_names(case.body)
        names |= walrus_targets(node)  # `if (N := f()):`, `X = [(N := 1)]`: the walrus binds in the module
    return names


def walrus_targets(node: ast.stmt) -> set[str]:
    """Names a statement binds with `:=` in the code it runs itself: its expressions (tests, decorators,
    defaults, bases, values), not the bodies of functions, lambdas or classes, nor nested statements
    (the caller visits those)."""
    found: set[str] = set()
    stack = [child for child in ast.iter_child_nodes(node) if not isinstance(child, (ast.stmt, ast.excepthandler))]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        stack = [*node.decorator_list, *node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
    elif isinstance(node, ast.ClassDef):
        stack = [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.NamedExpr) and isinstance(item.target, ast.Name):
            found.add(item.target.id)
        if isinstance(item, ast.Lambda):
            stack += [*item.args.defaults, *(d for d in item.args.kw_defaults if d is not None)]
        elif not isinstance(item, ast.stmt):
            stack += ast.iter_child_nodes(item)
    return found


def type_checking_names(body: list[ast.stmt]) -> set[str]:
    """Names bound only inside `if TYPE_CHECKING:` bodies (at any block depth)."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.If):
            if is_type_checking_test(node.test):
                names |= runtime_bound_names(node.body) | type_checking_names(node.body)
            names |= type_checking_names(node.orelse)
        elif isinstance(node, ast.Try):
            names |= type_checking_names(node.body)
    return names


def _stored_names(target: ast.expr) -> set[str]:
    return {n.id for n in ast.walk(target) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _root_name(node: ast.expr) -> str | None:
    """`REG` for `REG`, `REG["a"]`, `REG.items.x`: the name an attribute/subscript chain starts from."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def import_time_nodes(node: ast.AST):
    """Every node of `node` that runs when the module is imported: not the bodies of functions and lambdas
    (their decorators, defaults and annotations do run), but class bodies and blocks, which do."""
    yield node
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        parts = [*node.decorator_list, *node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
        for part in parts:
            yield from import_time_nodes(part)
        return
    if isinstance(node, ast.Lambda):
        for part in [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]:
            yield from import_time_nodes(part)
        return
    for child in ast.iter_child_nodes(node):
        yield from import_time_nodes(child)


# Calls that only read their arguments, and methods that only read their object: a statement using a
# copied name only through these needs no copying. Anything else that receives the name may change it.
_READING_CALLS = frozenset(
    "len sorted list tuple dict set frozenset isinstance issubclass str repr getattr hasattr enumerate zip range "
    "min max sum any all iter map filter type id hash bool int float reversed callable".split()
)
_READING_METHODS = frozenset(
    "items keys values get copy index count startswith endswith format join split strip lower upper replace".split()
)


def _changed_and_unclear(node: ast.stmt, functions: dict[str, set[str]]) -> tuple[set[str], set[str]]:
    """Names a top-level statement changes in place, and names it hands to a call run at import time.

    `functions` maps the module's own functions to the module names their bodies change (a top-level
    `setup()` changes what `setup` changes).
    """
    changed: set[str] = set()
    unclear: set[str] = set()
    for item in import_time_nodes(node):
        if isinstance(item, (ast.Attribute, ast.Subscript)) and isinstance(item.ctx, (ast.Store, ast.Del)):
            root = _root_name(item)
            if root:
                changed.add(root)  # `REG["a"] = f`, `CONF.x = 1`, `del REG["a"]`, `REG["a"] += 1`
        elif isinstance(item, ast.Call):
            func = item.func
            if isinstance(func, ast.Attribute) and func.attr not in _READING_METHODS:
                root = _root_name(func)
                if root:
                    changed.add(root)  # `REG.update(...)`, `@REG.register(...)`: a method may change its object
            if isinstance(func, ast.Name):
                changed |= functions.get(func.id, set())
                if func.id in _READING_CALLS:
                    continue
            for argument in [*item.args, *(k.value for k in item.keywords)]:
                value = argument.value if isinstance(argument, ast.Starred) else argument
                root = _root_name(value)
                if root:
                    unclear.add(root)
        elif isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for decorator in item.decorator_list:
                if isinstance(decorator, (ast.Attribute, ast.Subscript)):
                    root = _root_name(decorator)
                    if root:
                        changed.add(root)  # `@REG.register` without a call: applied to the definition
                elif isinstance(decorator, ast.Name):
                    changed |= functions.get(decorator.id, set())  # `@register`, whose body fills `REG`
    return changed, unclear - changed


def changes_attribute_of(node: ast.stmt, base: str, attribute: str) -> bool:
    """Whether a statement changes `base.attribute` in place or rebinds it (`a.REG["y"] = 2`, `a.REG = {}`,
    `a.ITEMS.append(1)`), as opposed to reading it, calling it or passing it on."""

    def chain_holds(expr: ast.expr) -> bool:
        while isinstance(expr, (ast.Attribute, ast.Subscript)):
            if isinstance(expr, ast.Attribute) and expr.attr == attribute and isinstance(expr.value, ast.Name):
                if expr.value.id == base:
                    return True
            expr = expr.value
        return False

    for item in import_time_nodes(node):
        if isinstance(item, (ast.Attribute, ast.Subscript)) and isinstance(item.ctx, (ast.Store, ast.Del)):
            if chain_holds(item):
                return True
        elif isinstance(item, ast.Call) and isinstance(item.func, ast.Attribute):
            if item.func.attr not in _READING_METHODS and chain_holds(item.func.value):
                return True
    return False


def _names_a_function_changes(func: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Module names a function's body rebinds (`global N`) or changes in place (`N[k] = v`, `N.m(...)`)."""
    declared_global = {name for n in ast.walk(func) if isinstance(n, ast.Global) for name in n.names}
    local = {a.arg for a in [*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs]}
    local |= {a.arg for a in (func.args.vararg, func.args.kwarg) if a is not None}
    local |= {n.id for n in ast.walk(func) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    local -= declared_global
    changed = set(declared_global)
    for item in ast.walk(func):
        root = None
        if isinstance(item, (ast.Attribute, ast.Subscript)) and isinstance(item.ctx, (ast.Store, ast.Del)):
            root = _root_name(item)
        elif isinstance(item, ast.Call) and isinstance(item.func, ast.Attribute):
            if item.func.attr not in _READING_METHODS:
                root = _root_name(item.func)
        if root and root not in local:
            changed.add(root)
    return changed


class ModuleFacts:
    """The top-level statements of one module, indexed by the names they bind and change."""

    def __init__(self, tree: ast.Module):
        self.tree = tree
        functions = {
            node.name: _names_a_function_changes(node)
            for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        }
        statements = []
        for index, node in enumerate(tree.body):
            changes, unclear = _changed_and_unclear(node, functions)
            binds = frozenset(runtime_bound_names([node]))
            statements.append(TopStatement(index, node, binds, frozenset(changes - binds), frozenset(unclear - binds)))
        self.statements: tuple[TopStatement, ...] = tuple(statements)

    @cached_property
    def runtime_names(self) -> frozenset[str]:
        return frozenset(name for statement in self.statements for name in statement.binds)

    @cached_property
    def type_checking_names(self) -> frozenset[str]:
        return frozenset(type_checking_names(self.tree.body) - self.runtime_names)

    @cached_property
    def future_annotations(self) -> bool:
        return any(
            isinstance(node, ast.ImportFrom)
            and node.module == "__future__"
            and any(alias.name == "annotations" for alias in node.names)
            for node in self.tree.body
        )

    def binders(self, name: str) -> list[TopStatement]:
        return [s for s in self.statements if name in s.binds]

    def changers(self, name: str) -> list[TopStatement]:
        return [s for s in self.statements if name in s.changes]

    @cached_property
    def aliases(self) -> dict[str, set[str]]:
        """name -> the names a plain assignment binds to it or a part of it (`ALIAS = REG`, `SUB = REG["a"]`),
        transitively: a change through one of them changes the object of `name` too."""
        direct: dict[str, set[str]] = {}
        for statement in self.statements:
            node = statement.node
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(
                node.value, (ast.Name, ast.Attribute, ast.Subscript)
            ):
                root = _root_name(node.value)
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    direct.setdefault(root, set()).update(_stored_names(target) - {root})
        closed: dict[str, set[str]] = {}
        for name in direct:
            seen, todo = set(), [name]
            while todo:
                for alias in direct.get(todo.pop(), set()) - seen:
                    seen.add(alias)
                    todo.append(alias)
            closed[name] = seen
        return closed

    def unclear(self, name: str) -> list[TopStatement]:
        """Statements that may change `name` in ways a copy cannot follow: handing it to a call, or changing
        it through another name bound to it."""
        aliases = self.aliases.get(name, set())
        return [s for s in self.statements if name in s.unclear or s.changes & aliases or s.unclear & aliases]

    def statements_for(self, name: str) -> list[TopStatement]:
        """Every statement that binds or changes `name`, in file order: what a faithful copy must hold."""
        return [s for s in self.statements if name in s.binds or name in s.changes]
