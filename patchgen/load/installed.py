"""Whether an import the config asks for (`add_import`) can run: the module is installed and binds the names.

Checked at generation, so a typo (`add_import("math", names=["sqrtt"])`) is one line naming the call
instead of a written file that fails on import. The module's own Python source is read, not run (a GPU
kernel module may be slow or impossible to import here); finding a dotted module imports its parent
packages, as any `find_spec` does, and a compiled module is imported to look.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util

from patchgen.syntax.definitions import parse_file
from patchgen.syntax.module_facts import runtime_bound_names


def import_problem(module: str, names: tuple[str, ...]) -> str | None:
    """What stops `from module import names` (or `import module`) from running, or None."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return f"module {module!r} is not installed"
    missing = [name for name in names if not _binds(spec, module, name)]
    return f"module {module!r} has no {missing[0]!r}" if missing else None


def _binds(spec, module: str, name: str) -> bool:
    if _has_submodule(spec, name):
        return True  # `from package import submodule`
    origin = spec.origin or ""
    if origin.endswith(".py"):
        try:
            _, tree = parse_file(origin)  # read once per process, shared with the patch lookups
        except (OSError, SyntaxError, ValueError):
            return True  # unreadable here: the import check of the written file decides
        dynamic = any(
            isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names) for n in ast.walk(tree)
        ) or any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body)
        return dynamic or name in runtime_bound_names(tree.body)
    try:
        return hasattr(importlib.import_module(module), name)
    except Exception:  # noqa: BLE001 - a compiled module that fails to import: the import check decides
        return True


def _has_submodule(spec, name: str) -> bool:
    """A package's submodule `name`, looked up in its folders (finding its spec would import the package)."""
    for folder in spec.submodule_search_locations or ():
        if importlib.machinery.FileFinder(folder, *_LOADERS).find_spec(name) is not None:
            return True
    return False


_LOADERS = [
    (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
    (importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES),
    (importlib.machinery.SourcelessFileLoader, importlib.machinery.BYTECODE_SUFFIXES),
]
