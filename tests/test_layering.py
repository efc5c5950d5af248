"""`patchgen/`'s folders name the pipeline's stages, and each imports only the stages below it (issue 20).

Stages, bottom to top, are `LAYERS`; `commands` sits on top and nothing below imports it. `runtime` (what
generated files import) imports nothing else of patchgen. Top-level modules besides `__init__` are only the
stable aliases of old paths (`ALIASES`). Imports are read with `ast`, at any depth, `TYPE_CHECKING` included.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest


PACKAGE = Path(__file__).resolve().parents[1] / "patchgen"
LAYERS = ["syntax", "dsl", "load", "plan", "render", "verify", "upgrade", "sets", "commands"]
ALIASES = {
    "run_codegen": True,
    "check_patchgen": True,
    "upgrade_report": True,
    "new_model": True,
    "patch_spec": False,
    "patch_sets": False,
}  # old module -> whether `python -m patchgen.<old>` runs a command
MAX_MODULES = 12


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: Path) -> set[str]:
    """Dotted names `path` imports from patchgen (`from patchgen.a import b` counts `patchgen.a.b` too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "patchgen" or node.module.startswith("patchgen."):
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("patchgen"))
    return found


def _stage(dotted: str) -> str | None:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in [*LAYERS, "runtime"] else None


def _modules() -> dict[str, set[str]]:
    return {_name(path): _imported(path) for path in sorted(PACKAGE.rglob("*.py"))}


def test_reader_sees_stages():
    modules = _modules()
    assert "patchgen.commands.codegen" in modules
    assert "patchgen.dsl.patch_spec" in modules["patchgen"]


def test_nothing_below_commands_imports_a_command():
    bad = [
        f"{module} imports {dep}"
        for module, deps in _modules().items()
        if _stage(module) != "commands" and module.split(".")[1:2] != [] and module.split(".")[1] not in ALIASES
        for dep in sorted(deps)
        if _stage(dep) == "commands"
    ]
    bad += [
        f"patchgen/__init__.py imports {dep}" for dep in sorted(_modules()["patchgen"]) if _stage(dep) == "commands"
    ]
    assert not bad, "commands sit on top: " + "; ".join(bad)


def test_stages_import_only_stages_below_them():
    bad = []
    for module, deps in _modules().items():
        stage = _stage(module)
        if stage is None:
            continue
        for dep in sorted(deps):
            other = _stage(dep)
            if other is None or other == stage:
                continue
            if other == "runtime" and stage == "sets":
                continue  # set code is spliced into generated files, which import the runtime
            if stage == "runtime" or other == "runtime" or LAYERS.index(other) > LAYERS.index(stage):
                bad.append(f"{module} ({stage}) imports {dep} ({other})")
    assert not bad, "stages are ordered " + " < ".join(LAYERS) + ": " + "; ".join(bad)


def test_every_stage_is_a_small_package_with_a_docstring():
    for stage in [*LAYERS, "runtime"]:
        init = PACKAGE / stage / "__init__.py"
        assert init.is_file(), f"patchgen/{stage}/ is not a package"
        assert ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), (
            f"patchgen/{stage}/__init__.py: no docstring"
        )
        modules = [p for p in (PACKAGE / stage).glob("*.py") if p.name != "__init__.py"]
        assert len(modules) <= MAX_MODULES, f"patchgen/{stage}/ has {len(modules)} modules (at most {MAX_MODULES})"


def test_top_level_holds_only_the_package_and_stable_aliases():
    extra = sorted(p.name for p in PACKAGE.glob("*.py") if p.stem not in {"__init__", "__main__", *ALIASES})
    assert not extra, f"put these in a stage package: {extra}"
    folders = sorted(
        p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name not in {*LAYERS, "runtime", "__pycache__"}
    )
    assert not folders, f"stage packages not in LAYERS: {folders}"


@pytest.mark.parametrize("old", sorted(ALIASES))
def test_stable_alias_is_the_moved_module(old):
    import importlib

    alias = importlib.import_module(f"patchgen.{old}")
    assert alias.__name__.startswith("patchgen.") and alias.__name__ != f"patchgen.{old}"
    assert alias.__name__.rsplit(".", 1)[1] == old


@pytest.mark.parametrize("old", sorted(name for name, runs in ALIASES.items() if runs))
def test_stable_alias_runs_the_command(old):
    result = subprocess.run(
        [sys.executable, "-m", f"patchgen.{old}", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
