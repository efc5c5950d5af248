"""Finding config modules and loading the `PatchConfig` out of one, with one-line errors."""

from __future__ import annotations

import importlib
import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from patchgen.dsl.errors import PatchgenError
from patchgen.dsl.layout import Layout, ensure_importable, load_layout
from patchgen.dsl.patch_spec import PatchConfig


@dataclass(frozen=True)
class LoadedConfig:
    module_name: str
    config: PatchConfig
    config_name: str = "config"  # the module variable holding `config`, as `--config-name` gave it


class ProcessExitRefused(BaseException):
    """A config called `os._exit` while being imported (a BaseException, like SystemExit)."""

    def __init__(self, status: object):
        super().__init__(status)
        self.status = status


def discover_configs(root: Path) -> list[str]:
    """Dotted names of every config module of the project at `root` (`patchgen.dsl.layout`), sorted.

    A file in the configs folders that looks like a config but that the pattern skips is refused
    (`Layout.near_miss_configs`): every command that works on all configs would otherwise leave it out
    without a word, and its generated file would go stale unnoticed.
    """
    layout = load_layout(root)
    near_misses = layout.near_miss_configs()
    if near_misses:
        described = "; ".join(f"{_relative(str(path), layout.root)}: {why}" for path, why in near_misses)
        raise PatchgenError(
            f"{len(near_misses)} file(s) in the configs folders look like configs but do not match "
            f"config-pattern {layout.config_pattern!r}, so they would be skipped: {described}; rename each to "
            f"match the pattern, or move it out of the configs folders ({_folders(layout)})"
        )
    return layout.config_modules()


def _folders(layout: Layout) -> str:
    return ", ".join(_relative(str(folder.path), layout.root) for folder in layout.config_folders)


def to_module_name(spec: str, root: Path) -> str:
    """Accept `models.qwen3.qwen3_gpu_patch_gen_config` or `models/qwen3/qwen3_gpu_patch_gen_config.py`."""
    if spec.endswith(".py") or "/" in spec:
        path = Path(spec)
        absolute = path if path.is_absolute() else (Path.cwd() / path)
        if not absolute.is_file():
            raise PatchgenError(f"{spec}: no such config file")
        layout = load_layout(root)
        if not absolute.resolve().is_relative_to(layout.root):
            raise PatchgenError(f"{spec}: config file is outside the project root {layout.root}")
        return layout.module_name_for_path(absolute)
    return spec


def load_config(spec: str, config_name: str = "config", root: Path | None = None) -> LoadedConfig:
    root = root or Path.cwd()
    ensure_importable(root)
    module_name = to_module_name(spec, root)
    try:
        with _process_exit_refused():
            module = importlib.import_module(module_name)
    except PatchgenError:
        raise
    except (SystemExit, ProcessExitRefused) as exc:
        call = "sys.exit" if isinstance(exc, SystemExit) else "os._exit"
        status = exc.code if isinstance(exc, SystemExit) else exc.status
        raise PatchgenError(
            f"{module_name}: config module called {call}({status!r}) while being imported{_place(exc)}; "
            "a config module must define a PatchConfig, not end the process"
        ) from None
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise PatchgenError(f"{module_name}: no such config module (check the dotted name or the path)") from None
        raise PatchgenError(f"{module_name}: config module failed to import: {_last_line(exc)}") from None
    except SyntaxError as exc:
        raise PatchgenError(
            f"{module_name}: config module has a syntax error at {_relative(exc.filename, root)}:{exc.lineno}: {exc.msg}"
        ) from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - any import-time failure is reported, never skipped
        raise PatchgenError(f"{module_name}: config module failed to import: {_last_line(exc)}") from None
    if not hasattr(module, config_name):
        raise PatchgenError(f"{module_name}: has no variable {config_name!r}; define it or pass --config-name")
    config = getattr(module, config_name)
    if not isinstance(config, PatchConfig):
        raise PatchgenError(f"{module_name}: {config_name!r} is a {type(config).__name__}, not a patchgen PatchConfig")
    return LoadedConfig(module_name, config, config_name)


@contextmanager
def _process_exit_refused() -> Iterator[None]:
    """While a config imports, `os._exit` raises instead of ending the process with no word.

    SystemExit is an exception and is caught like any other; `os._exit` ends the process at once, so
    it is swapped for the time of the import. A process forked meanwhile exits as it asked.
    """
    real_exit, parent = os._exit, os.getpid()

    def refuse(status: int) -> None:
        if os.getpid() != parent:
            real_exit(status)
        raise ProcessExitRefused(status)

    os._exit = refuse
    try:
        yield
    finally:
        os._exit = real_exit


def _relative(filename: str | None, root: Path) -> str:
    """A file name as messages show it: relative to the project root, never this machine's absolute path."""
    if not filename:
        return "<unknown>"
    path = Path(filename)
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.name


def _place(exc: BaseException) -> str:
    """` (file.py:line)` of the innermost frame outside this module (the refusal of `os._exit` is in here)."""
    where = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    return f" ({Path(where[-1].filename).name}:{where[-1].lineno})" if where else ""


def _last_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}{_place(exc)}"
