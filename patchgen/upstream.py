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

from patchgen.errors import PatchgenError
from patchgen.source_text import SourceText


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
        return self.name.rpartition(".")[0]

    def module(self) -> ModuleType:
        """The imported upstream module (for comparing the objects patch code refers to)."""
        return importlib.import_module(self.name)

    def top_level_names(self) -> set[str]:
        return bound_names(self.tree.body)

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
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text, filename=str(path))
    definitions = {
        node.name: node
        for node in tree.body
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    }
    return UpstreamModule(
        name=module_name,
        path=path,
        source=SourceText(text),
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
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return node
    return None
