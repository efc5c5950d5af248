"""Whether an import the config asks for (`add_import`) can run: the module is installed and binds the names.

Checked at generation, so a typo (`add_import("math", names=["sqrtt"])`) is one line naming the call
instead of a written file that fails on import. Python source is read, not imported (a GPU kernel
package may be slow or impossible to import here); only compiled modules are imported to look.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util

from patchgen.module_facts import runtime_bound_names
from patchgen.source_text import read_source


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
    try:
        if importlib.util.find_spec(f"{module}.{name}") is not None:
            return True  # a submodule: `from package import submodule`
    except (ImportError, ValueError):
        pass
    origin = spec.origin or ""
    if origin.endswith(".py"):
        try:
            tree = ast.parse(read_source(origin))
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
