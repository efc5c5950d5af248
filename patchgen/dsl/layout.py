"""Where a project keeps its configs and its generated files: the project root and `[tool.patchgen]`.

Every command works on one project. Its root is the nearest folder, from the current directory
upwards, whose `pyproject.toml` has a `[tool.patchgen]` table, or that has this repository's own
layout (a `models` package, no table needed). The table's keys, with the defaults that reproduce
this repository's layout:

    [tool.patchgen]
    configs = ["models"]                      # folders (relative to the root) or dotted packages
    config-pattern = "*_patch_gen_config.py"  # searched for recursively in each of them
    output-root = "generated"                 # a folder only patchgen writes (orphans are reported)
    output-path = "{model}/{target_file}"     # below output-root; also {variant}

A config's module name is its path below its import root: a configs folder that is a package
(has `__init__.py`) is imported under its full package name, so the folder above the top package
goes on `sys.path` (a `src/` layout works); a plain folder is named from the project root.
Output paths are relative to the root; every folder from the output root down to a generated
file gets an `__init__.py`, so generated files import as `<output package>.<model>.<file>`.

This module imports nothing from the rest of patchgen but its error type and the supported-range
check (itself a leaf), so discovery, codegen and the CLIs can all use it.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import string
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patchgen.dsl.errors import PatchgenError
from patchgen.dsl.supported_range import require_supported_transformers


# The patch sets that ship with patchgen. Their code is patch code like a config's own package: the generator
# copies what a set's patches use into each output, and an output never imports this package.
SHIPPED_SETS = "patchgen.sets"


def in_patch_space(module_name: str, patch_package: str) -> bool:
    """Whether `module_name` holds patch code for a config of `patch_package`: its own package or the shipped sets."""
    return module_name in (patch_package, SHIPPED_SETS) or module_name.startswith(
        (patch_package + ".", SHIPPED_SETS + ".")
    )


SECTION = "patchgen"  # [tool.patchgen]
DEFAULT_CONFIG_PACKAGE = "models"  # this repository's layout: a project with no table has this package
DEFAULTS: dict[str, Any] = {
    "configs": [DEFAULT_CONFIG_PACKAGE],
    "config-pattern": "*_patch_gen_config.py",
    "output-root": "generated",
    "output-path": "{model}/{target_file}",
}
OUTPUT_FIELDS = ("model", "variant", "target_file")  # what output-path may name


@dataclass(frozen=True)
class ConfigFolder:
    #: the folder searched for configs (absolute)
    path: Path
    #: the folder whose files are named relative to it and that goes on sys.path (absolute)
    import_root: Path


@dataclass(frozen=True)
class Layout:
    """One project's layout: everything derived from its root and its `[tool.patchgen]` table."""

    #: the project root (absolute): output paths are relative to it
    root: Path
    #: where configs are discovered, in the order given
    config_folders: tuple[ConfigFolder, ...]
    #: file name pattern of a config module, searched for recursively in each folder
    config_pattern: str
    #: the folder generated files go under, relative to the root
    output_root: Path
    #: the path of a generated file below `output_root`, a str.format template over OUTPUT_FIELDS
    output_path: str
    #: the pyproject.toml the settings came from; None for this repository's default layout
    settings_file: Path | None = None

    def config_files(self) -> list[Path]:
        return sorted({path for folder in self.config_folders for path in folder.path.rglob(self.config_pattern)})

    def config_modules(self) -> list[str]:
        """Dotted names of every config module, sorted."""
        return sorted(self.module_name_for_path(path) for path in self.config_files())

    def near_miss_configs(self) -> list[tuple[Path, str]]:
        """Files in the configs folders that look like configs but that `config_pattern` skips, each with
        why it looks like one, sorted: `qwen3_gpu_patchgen_config.py` would otherwise never be generated
        nor checked, and nothing would say so.

        Looks like a config: it assigns `config = PatchConfig(` at the start of a line, or its name ends
        close to the pattern's fixed text (`_near_pattern`: `_patch_gen_conf.py`, `_patchgen_config.py`).
        """
        matched = set(self.config_files())
        found: dict[Path, str] = {}
        for folder in self.config_folders:
            for path in folder.path.rglob("*.py"):
                if path in matched or path.name == "__init__.py" or "__pycache__" in path.parts:
                    continue
                if _near_pattern(path.name, self.config_pattern):
                    found[path] = f"its name is close to config-pattern {self.config_pattern!r}"
                elif _CONFIG_ASSIGNMENT.search(_read_text(path)):
                    found[path] = "it assigns `config = PatchConfig(...)`"
        return sorted(found.items())

    def module_name_for_path(self, path: Path) -> str:
        """`models.qwen3.qwen3_gpu_patch_gen_config` for `<root>/models/qwen3/qwen3_gpu_patch_gen_config.py`."""
        path = path.resolve()
        for folder in self.config_folders:
            if path.is_relative_to(folder.path):
                return _dotted(path.relative_to(folder.import_root))
        try:
            return _dotted(path.relative_to(self.root))
        except ValueError:
            raise PatchgenError(f"{path}: config file is outside the project root {self.root}") from None

    @property
    def import_roots(self) -> list[Path]:
        """What goes on sys.path so that every config module imports by its name: the root first."""
        roots = [self.root]
        for folder in self.config_folders:
            if folder.import_root not in roots:
                roots.append(folder.import_root)
        return roots

    def output_file(self, model: str, variant: str, target_file: str) -> Path:
        """`generated/qwen3/patched_modeling_qwen3_gpu.py`: a generated file, relative to the root."""
        relative = Path(self.output_path.format(model=model, variant=variant, target_file=target_file))
        return self.output_root / relative

    def package_inits(self, output: Path) -> list[Path]:
        """The `__init__.py` of every folder from the file's own up to the output root, innermost first."""
        folders = [output.parent]
        while folders[-1] != self.output_root and folders[-1] != folders[-1].parent:
            folders.append(folders[-1].parent)
        return [folder / "__init__.py" for folder in folders]

    def user_path(self, given: Path, typed_in: Path) -> Path:
        """A path the user typed in folder `typed_in`, as the commands name it after `enter_project`:
        relative to the root when it is inside the project, absolute otherwise."""
        absolute = (typed_in / given).resolve()
        return absolute.relative_to(self.root) if absolute.is_relative_to(self.root) else absolute


def find_project_root(start: Path) -> Path:
    """The nearest folder from `start` upwards that is a patchgen project (see the module docstring)."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if _settings_table(folder / "pyproject.toml") is not None:
            return folder
        if (folder / DEFAULT_CONFIG_PACKAGE / "__init__.py").is_file():
            return folder
    raise PatchgenError(
        f"not inside a patchgen project: no pyproject.toml with a [tool.{SECTION}] table and no "
        f"{DEFAULT_CONFIG_PACKAGE}/__init__.py in {start} or any folder above it; run from inside your project "
        f"or add the table to its pyproject.toml"
    )


def load_layout(root: Path) -> Layout:
    """The layout of the project at `root`: its `[tool.patchgen]` table over the defaults."""
    root = root.resolve()
    settings_file = root / "pyproject.toml"
    table = _settings_table(settings_file)
    if table is None:
        table, settings_file = {}, None
    where = f"{settings_file} [tool.{SECTION}]"
    unknown = sorted(set(table) - set(DEFAULTS))
    if unknown:
        raise PatchgenError(f"{where}: unknown key {unknown[0]!r}; the keys are {', '.join(DEFAULTS)}")
    settings = {**DEFAULTS, **table}
    configs = settings["configs"]
    if not isinstance(configs, list) or not configs or not all(isinstance(c, str) and c for c in configs):
        raise PatchgenError(f"{where}: configs must be a non-empty list of folders or dotted package names")
    for key in ("config-pattern", "output-root", "output-path"):
        if not isinstance(settings[key], str) or not settings[key]:
            raise PatchgenError(f"{where}: {key} must be a non-empty string")
    return Layout(
        root=root,
        config_folders=tuple(
            folder for entry in configs if (folder := _config_folder(root, entry, where, table)) is not None
        ),
        config_pattern=settings["config-pattern"],
        output_root=_inside(root, settings["output-root"], where, "output-root"),
        output_path=_checked_output_path(settings["output-path"], where),
        settings_file=settings_file,
    )


def project_layout() -> Layout:
    """The layout of the project the current directory is in; a `PatchgenError` outside any project."""
    return load_layout(find_project_root(Path.cwd()))


def enter_project() -> Layout:
    """For a command: the current directory's project, made the current directory and importable.

    The pipeline names every output relative to the project root and reads and writes it from the
    current directory, so a command started anywhere inside the project runs from its root; paths
    the user typed are re-expressed first (`Layout.user_path`). The root and the import root of every
    configs folder go on sys.path, as `python -m` from the root would put the root: the `patchgen`
    console script starts with its own bin folder there instead, and project-local modules (the
    shared sets in `models/common`, a project-local upstream) must import the same under both
    spellings. Then the installed transformers must be in patchgen's supported range
    (`patchgen.dsl.supported_range`). Outside a project, with a bad `[tool.patchgen]` or an unsupported
    transformers: a `PatchgenError` (the commands print it as one line, exit status 2).
    """
    layout = project_layout()
    os.chdir(layout.root)
    _put_on_sys_path(layout)
    require_supported_transformers()
    return layout


def is_path_spec(spec: str) -> bool:
    """A config given as a file path (`models/x/y_patch_gen_config.py`) rather than a dotted name."""
    return spec.endswith(".py") or "/" in spec


def ensure_importable(root: Path) -> None:
    """Put the project root and the import root of every configs folder on sys.path."""
    _put_on_sys_path(load_layout(root))


def _put_on_sys_path(layout: Layout) -> None:
    for folder in reversed(layout.import_roots):
        text = str(folder)
        if text not in sys.path:
            sys.path.insert(0, text)


# -- helpers --------------------------------------------------------------------------------------


def _settings_table(pyproject: Path) -> dict | None:
    """The `[tool.patchgen]` table of a pyproject.toml, or None when the file or the table is absent."""
    if not pyproject.is_file():
        return None
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise PatchgenError(f"{pyproject}: not valid TOML: {exc}") from None
    table = data.get("tool", {}).get(SECTION)
    if table is not None and not isinstance(table, dict):
        raise PatchgenError(f"{pyproject}: [tool.{SECTION}] must be a table")
    return table


def _config_folder(root: Path, entry: str, where: str, table: dict) -> ConfigFolder | None:
    """A configs entry as a folder and its import root; the default folder may be absent (no configs yet)."""
    if (root / entry).is_dir():
        folder = (root / _inside(root, entry, where, "configs")).resolve()
    elif "configs" not in table:
        return None
    elif _is_dotted_name(entry):
        folder = _package_folder(root, entry, where)
        return ConfigFolder(folder, folder.parents[entry.count(".")])
    else:
        raise PatchgenError(f"{where}: configs entry {entry!r} is not a folder under {root}")
    if not (folder / "__init__.py").exists():
        return ConfigFolder(folder, root)
    import_root = folder
    while (import_root / "__init__.py").exists() and import_root != root:
        import_root = import_root.parent
    return ConfigFolder(folder, import_root)


def _is_dotted_name(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def _package_folder(root: Path, dotted: str, where: str) -> Path:
    """The folder of an importable package named in `configs` (found with the root on sys.path)."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        spec = importlib.util.find_spec(dotted)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise PatchgenError(f"{where}: configs entry {dotted!r} is neither a folder under {root} nor a package")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def _inside(root: Path, relative: str, where: str, key: str) -> Path:
    """`relative` as a path below the root, refusing absolute paths and ones that climb out of it."""
    path = Path(relative)
    if path.is_absolute() or not (root / path).resolve().is_relative_to(root) or (root / path).resolve() == root:
        raise PatchgenError(f"{where}: {key} {relative!r} must be a folder inside the project root {root}")
    return path


def _checked_output_path(template: str, where: str) -> str:
    fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    unknown = [name for name in fields if name not in OUTPUT_FIELDS]
    if unknown:
        raise PatchgenError(
            f"{where}: output-path {template!r} names {{{unknown[0]}}}; it may use "
            + ", ".join(f"{{{name}}}" for name in OUTPUT_FIELDS)
        )
    sample = Path(template.format(model="m", variant="v", target_file="f.py"))
    if sample.is_absolute() or ".." in sample.parts or sample.suffix != ".py":
        raise PatchgenError(f"{where}: output-path {template!r} must be a relative path ending in .py")
    return template


# `config = PatchConfig(` / `config: PatchConfig = patchgen.PatchConfig(` at the start of a line
_CONFIG_ASSIGNMENT = re.compile(r"^config\s*(?::[^=\n]*)?=\s*(?:[\w.]+\.)?PatchConfig\(", re.MULTILINE)
_NEAR = 0.8  # difflib ratio: `patchgenconf` vs `patchgenconfig` is 0.92, `patches` vs it 0.38


def _near_pattern(name: str, pattern: str) -> bool:
    """A file name the glob rejects whose end resembles the pattern's fixed text, letters and digits only.

    `*_patch_gen_config.py` has the fixed text `patchgenconfig`; `qwen3_gpu_patch_gen_conf.py` ends in
    `patchgenconf` (ratio 0.92) and `qwen3_gpu_patchgen_config.py` in `patchgenconfig` itself (only the
    underscore differs). Compared at the end because the pattern's `*` comes first: a helper named
    `qwen3_patch_config_helpers.py` is not taken for a config. Fixed texts under 8 characters say too
    little to compare (a pattern like `*.cfg.py`); those projects rely on the assignment test alone.
    """
    fixed = _letters(Path(pattern).stem.replace("*", "").replace("?", ""))
    stem = _letters(Path(name).stem)
    if len(fixed) < 8 or not name.endswith(".py"):
        return False
    tails = (stem[-size:] for size in range(len(fixed) - 3, len(fixed) + 4) if size <= len(stem))
    return any(difflib.SequenceMatcher(None, fixed, tail).ratio() >= _NEAR for tail in tails)


def _letters(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""  # unreadable: not recognisable as a config either


def _dotted(relative: Path) -> str:
    return ".".join(relative.with_suffix("").parts)
