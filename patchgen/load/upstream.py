"""Read the installed upstream module: its file, text, syntax tree and top-level definitions."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from types import ModuleType

from patchgen.dsl.errors import PatchgenError
from patchgen.syntax.definitions import parse_file
from patchgen.syntax.module_facts import ModuleFacts, runtime_bound_names
from patchgen.syntax.source_text import SourceText


@dataclass(frozen=True)
class UpstreamModule:
    name: str
    path: Path
    source: SourceText
    tree: ast.Module
    version: str
    definitions: dict[str, ast.stmt] = field(default_factory=dict)

    @property
    def package(self) -> str:
        """What its relative imports are relative to: a package's `__init__.py` is its own package."""
        return self.name if self.path.name == "__init__.py" else self.name.rpartition(".")[0]

    def module(self) -> ModuleType:
        """The imported upstream module (for comparing the objects patch code refers to)."""
        return importlib.import_module(self.name)

    def top_level_names(self) -> set[str]:
        return bound_names(self.tree.body)

    @cached_property
    def facts(self) -> ModuleFacts:
        return ModuleFacts(self.tree)

    @cached_property
    def calls_by_callee(self) -> dict[str, tuple[ast.Call, ...]]:
        """Every `name(...)` call in the module keyed by the plain name called, each in `ast.walk` order
        (gathered in one walk per process; `constructor_problems` asks for one name per replaced class)."""
        calls: dict[str, list[ast.Call]] = {}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                calls.setdefault(node.func.id, []).append(node)
        return {name: tuple(found) for name, found in calls.items()}

    @property
    def runtime_names(self) -> frozenset[str]:
        """Names the module binds when it runs (what is bound only under `if TYPE_CHECKING:` is not)."""
        return self.facts.runtime_names

    @property
    def type_checking_names(self) -> frozenset[str]:
        return self.facts.type_checking_names

    def import_block_end(self) -> int:
        """Where added imports and `after="imports"` code go: after upstream's leading imports; with none,
        after its docstring (or its leading comments: a coding line must stay in the first two lines)."""
        body = self.tree.body
        last = None
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                last = node
            elif node is body[0] and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                last = node  # the module docstring
            else:
                break
        if last is not None:
            return self.source.line_end(last.end_lineno)
        lines = self.source.lines
        leading = 0
        while leading < len(lines) and lines[leading].lstrip().startswith("#"):
            leading += 1
        return self.source.line_start(leading + 1) if leading < len(lines) else len(self.source.text)

    def binding_lines(self, name: str) -> list[int]:
        """Lines of the top-level statements that bind `name` when the module runs, `@overload` stubs aside."""
        return [s.node.lineno for s in self.facts.binders(name) if not is_overload_stub(s.node)]

    @cached_property
    def relative_imports(self) -> tuple[ast.ImportFrom, ...]:
        """Every `from .x import y` in the module, nested ones included (walked once per process)."""
        return tuple(node for node in ast.walk(self.tree) if isinstance(node, ast.ImportFrom) and node.level)


def distribution_version(module_name: str) -> str:
    top = module_name.split(".", 1)[0]
    try:
        return f"{top}=={importlib.metadata.version(top)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{top} (not an installed distribution)"


@cache
def read_upstream(module_name: str) -> UpstreamModule:
    """Find the installed module's file without importing it, and parse it once per process."""
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:
        raise PatchgenError(f"source module {module_name!r} cannot be found: {exc}") from None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise PatchgenError(f"source module {module_name!r} is not an installed Python module")
    path = Path(spec.origin)
    try:
        text, tree = parse_file(str(path))  # the same parse the lock's dependency closure uses
    except SyntaxError as exc:
        raise PatchgenError(
            f"source module {module_name!r} cannot be parsed ({module_name.replace('.', '/')}.py line "
            f"{exc.lineno}: {exc.msg}); fix or reinstall that package"
        ) from None
    return upstream_module(module_name, path, SourceText(text), tree)


def upstream_module(module_name: str, path: Path, source: SourceText, tree: ast.Module) -> UpstreamModule:
    """The record of a parsed upstream file: its top-level definitions by name, its distribution's version."""
    definitions = {
        node.name: node
        for node in tree.body
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    }
    return UpstreamModule(
        name=module_name,
        path=path,
        source=source,
        tree=tree,
        version=distribution_version(module_name),
        definitions=definitions,
    )


def bound_names(body: list[ast.stmt]) -> set[str]:
    """Names a list of module-level statements binds, looking into `if`/`try`/`with` blocks."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add(alias.asname or alias.name.split(".", 1)[0])
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.If):
            names |= bound_names(node.body) | bound_names(node.orelse)
        elif isinstance(node, ast.Try):
            names |= bound_names(node.body) | bound_names(node.orelse) | bound_names(node.finalbody)
            for handler in node.handlers:
                names |= bound_names(handler.body)
        elif isinstance(node, (ast.With, ast.For, ast.While)):
            names |= bound_names(node.body)
    return names


def find_method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The method `name` of a class body as it stands after the body ran (the last definition)."""
    methods = [n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name]
    return methods[-1] if methods else None


def member_bindings(cls: ast.ClassDef, name: str) -> list[ast.stmt]:
    """Statements of a class body that bind `name` (methods, assignments, nested blocks), overload stubs aside."""
    return [n for n in cls.body if name in runtime_bound_names([n]) and not is_overload_stub(n)]


def is_overload_stub(node: ast.stmt) -> bool:
    """A `@typing.overload` stub: replaced by the definition after it, so never the effective one."""
    for decorator in getattr(node, "decorator_list", []):
        if (isinstance(decorator, ast.Name) and decorator.id == "overload") or (
            isinstance(decorator, ast.Attribute) and decorator.attr == "overload"
        ):
            return True
    return False
