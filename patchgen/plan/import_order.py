"""Functions a module runs while it is imported must not read its names before they are bound.

`TABLE = build()` above `class Block` fails on import when `build` returns `Block`, yet every name
the statement itself spells is defined above it, so an undefined-name linter is satisfied. Patch code
and copied helpers land above upstream definitions they may call into, so the rendered file is read
once more: for every module-level statement, the module's own functions it calls while the module is
imported (calls, decorators, instantiated classes' `__init__`), followed through the module's
functions they call, must only read module names bound above that statement.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from patchgen.syntax.module_facts import import_time_nodes, runtime_bound_names


@dataclass(frozen=True)
class ForwardRead:
    line: int  # the module-level statement running the code
    function: str  # the module function (or class) it runs
    name: str  # the module name that function reads
    bound_line: int  # where the module first binds it, below `line`


def forward_reads_at_import(tree: ast.Module) -> list[ForwardRead]:
    first_bound: dict[str, int] = {}
    for index, node in enumerate(tree.body):
        for name in runtime_bound_names([node]):
            first_bound.setdefault(name, index)
    callables: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            callables[node.name] = node
        elif isinstance(node, ast.ClassDef):
            init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
            if init is not None:
                callables[node.name] = init
    found: list[ForwardRead] = []
    for index, node in enumerate(tree.body):
        for entry in sorted(_run_at_import(node) & callables.keys()):
            for function, name in _reads(entry, callables):
                bound = first_bound.get(name)
                if bound is not None and bound > index:
                    found.append(ForwardRead(node.lineno, function, name, tree.body[bound].lineno))
    return found


def _run_at_import(node: ast.stmt) -> set[str]:
    """Names of what a statement calls while it runs: called names, bare decorators."""
    called = set()
    for item in import_time_nodes(node):
        if isinstance(item, ast.Call) and isinstance(item.func, ast.Name):
            called.add(item.func.id)
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            called |= {d.id for d in item.decorator_list if isinstance(d, ast.Name)}
    return called


def _reads(entry: str, callables: dict[str, ast.stmt]) -> list[tuple[str, str]]:
    """(function, module name it reads) for `entry` and the module functions it calls, transitively."""
    out: list[tuple[str, str]] = []
    seen, todo = set(), [entry]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        function = callables[current]
        local = {a.arg for a in ast.walk(function.args) if isinstance(a, ast.arg)}
        local |= {n.id for n in ast.walk(function) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        for node in ast.walk(function):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in local:
                out.append((current, node.id))
                if node.id in callables:
                    todo.append(node.id)
    return list(dict.fromkeys(out))
