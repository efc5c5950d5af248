"""Finding config modules and loading the `PatchConfig` out of one, with one-line errors."""

from __future__ import annotations

import importlib
import traceback
from dataclasses import dataclass
from pathlib import Path

from patchgen.errors import PatchgenError
from patchgen.layout import ensure_importable, load_layout
from patchgen.patch_spec import PatchConfig


@dataclass(frozen=True)
class LoadedConfig:
    module_name: str
    config: PatchConfig


def discover_configs(root: Path) -> list[str]:
    """Dotted names of every config module of the project at `root` (`patchgen.layout`), sorted."""
    return load_layout(root).config_modules()


def to_module_name(spec: str, root: Path) -> str:
    """Accept `models.qwen3.qwen3_gpu_patch_gen_config` or `models/qwen3/qwen3_gpu_patch_gen_config.py`."""
    if spec.endswith(".py") or "/" in spec:
        path = Path(spec)
        absolute = path if path.is_absolute() else (Path.cwd() / path)
        if not absolute.is_file():
            raise PatchgenError(f"{spec}: no such config file")
        return load_layout(root).module_name_for_path(absolute)
    return spec


def load_config(spec: str, config_name: str = "config", root: Path | None = None) -> LoadedConfig:
    root = root or Path.cwd()
    ensure_importable(load_layout(root))
    module_name = to_module_name(spec, root)
    try:
        module = importlib.import_module(module_name)
    except PatchgenError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise PatchgenError(f"{module_name}: no such config module (check the dotted name or the path)") from None
        raise PatchgenError(f"{module_name}: config module failed to import: {_last_line(exc)}") from None
    except SyntaxError as exc:
        raise PatchgenError(
            f"{module_name}: config module has a syntax error at {exc.filename}:{exc.lineno}: {exc.msg}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any import-time failure is reported, never skipped
        raise PatchgenError(f"{module_name}: config module failed to import: {_last_line(exc)}") from None
    if not hasattr(module, config_name):
        raise PatchgenError(f"{module_name}: has no variable {config_name!r}; define it or pass --config-name")
    config = getattr(module, config_name)
    if not isinstance(config, PatchConfig):
        raise PatchgenError(f"{module_name}: {config_name!r} is a {type(config).__name__}, not a patchgen PatchConfig")
    return LoadedConfig(module_name, config)


def _last_line(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)
    place = f" ({Path(where[-1].filename).name}:{where[-1].lineno})" if where else ""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}{place}"
