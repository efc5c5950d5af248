"""Load and generate many configs as if each ran alone, optionally reusing cached results.

Each config is imported afresh: the project modules one config imports (its patch modules, the
sets and helpers they use) are dropped from `sys.modules` before the next config is imported, so no
config sees state another left behind, and `--all` gives each file the bytes that generating its
config alone gives. torch and transformers stay imported. The outputs of all configs are then
formatted together (`patchgen.commands.codegen.finish`, each file with its own settings).

With a `patchgen.verify.cache.Cache`, a config whose recorded inputs are unchanged is not imported at all.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

from patchgen.commands.codegen import (
    Generation,
    Output,
    Planned,
    finish,
    plan_config,
    shared_target_errors,
    target_path,
)
from patchgen.commands.upgrade_report import mentions
from patchgen.dsl.errors import PatchgenError
from patchgen.load.discovery import LoadedConfig, ensure_importable, load_config, to_module_name
from patchgen.load.upstream import read_upstream
from patchgen.upgrade.fingerprints import lock_path
from patchgen.verify.cache import Cache, CacheEntryError, Inputs, is_source_module


@dataclass(frozen=True)
class ConfigSummary:
    """What the CLIs need to know about a config besides its outputs (kept in the cache with them)."""

    module_name: str
    model: str
    variant: str
    extends: str | None
    abstract: bool
    source_module: str
    target: str | None  # the generated module's path; None for a base config
    patches: tuple[str, ...]  # `function_replacement: scale  (models/toy/toy_gpu_patch_gen_config.py:7)`
    mentions: tuple[str, ...]  # upstream names the config deals with (for the upgrade report)

    @classmethod
    def of(cls, loaded: LoadedConfig, output_dir: Path | None) -> ConfigSummary:
        config = loaded.config
        return cls(
            module_name=loaded.module_name,
            model=config.model or "",
            variant=config.variant,
            extends=config.extends,
            abstract=config.abstract,
            source_module=config.source_module,
            target=None if config.abstract else target_path(loaded, output_dir).as_posix(),
            patches=tuple(f"{p.kind.value}: {p.target}  ({p.defined_at})" for p in config.patches),
            mentions=tuple(sorted(mentions(config))),
        )


@dataclass
class ConfigRun:
    """One config: its summary (None when it does not load) and what generating it gave."""

    module_name: str
    summary: ConfigSummary | None
    generation: Generation
    cached: bool = False

    def to_json(self) -> dict:
        outputs = [[o.path.as_posix(), o.text] for o in self.generation.outputs]
        return {"summary": asdict(self.summary), "outputs": outputs}

    @classmethod
    def from_json(cls, data: object) -> ConfigRun:
        """A run as `to_json` stored it; `CacheEntryError` for anything of another shape."""
        if not isinstance(data, dict) or not isinstance(fields := data.get("summary"), dict):
            raise CacheEntryError("a config result needs a summary")
        if set(fields) != set(_SUMMARY_TYPES) or not all(
            isinstance(fields[name], kind) for name, kind in _SUMMARY_TYPES.items()
        ):
            raise CacheEntryError("the summary's fields differ")
        if not all(isinstance(item, str) for name in ("patches", "mentions") for item in fields[name]):
            raise CacheEntryError("patches and mentions must be lists of strings")
        outputs = data.get("outputs")
        if not isinstance(outputs, list) or not all(
            isinstance(o, list) and len(o) == 2 and all(isinstance(part, str) for part in o) for o in outputs
        ):
            raise CacheEntryError("outputs must be [path, text] pairs")
        summary = ConfigSummary(
            **{**fields, "patches": tuple(fields["patches"]), "mentions": tuple(fields["mentions"])}
        )
        generation = Generation(summary.module_name, [Output(Path(p), text) for p, text in outputs])
        return cls(summary.module_name, summary, generation, cached=True)


# ConfigSummary's fields as JSON types (what `ConfigRun.from_json` accepts)
_SUMMARY_TYPES = {
    "module_name": str,
    "model": str,
    "variant": str,
    "extends": (str, type(None)),
    "abstract": bool,
    "source_module": str,
    "target": (str, type(None)),
    "patches": list,
    "mentions": list,
}


def run_configs(
    root: Path,
    specs: list[str],
    config_name: str = "config",
    *,
    output_dir: Path | None = None,
    with_diff: bool = True,
    cache: Cache | None = None,
) -> list[ConfigRun]:
    """Every config in `specs`, in order: loaded, planned and generated as if alone.

    A config that fails has `generation.error` set; two configs writing one file both fail.
    """
    ensure_importable(root)
    runs: list[ConfigRun] = []
    fresh: list[tuple[ConfigRun, Planned | None, Inputs, object]] = []
    with cache.recording() if cache is not None else nullcontext():
        for spec in specs:
            key = _cache_key(spec, root, config_name, output_dir, with_diff)
            stored = cache.load("config", key, ConfigRun.from_json) if cache is not None else None
            if stored is not None:
                runs.append(stored)
                continue
            run, planned, inputs = _run_alone(spec, root, config_name, output_dir, cache)
            runs.append(run)
            fresh.append((run, planned, inputs, key))
    finish([planned for _, planned, _, _ in fresh if planned is not None], with_diff=with_diff)
    if cache is not None:
        for run, _, inputs, key in fresh:
            if run.generation.error is None and run.generation.lock_error is None:
                cache.store("config", key, inputs, run.to_json())
    _refuse_shared_targets(runs)
    return runs


def _run_alone(
    spec: str, root: Path, config_name: str, output_dir: Path | None, cache: Cache | None
) -> tuple[ConfigRun, Planned | None, Inputs | None]:
    """Load and plan one config, record what it read, then drop the project modules it imported."""
    before = set(sys.modules)
    try:
        try:
            loaded = load_config(spec, config_name, root)
        except PatchgenError as exc:
            module_name = _module_name(spec, root)
            return ConfigRun(module_name, None, Generation(module_name, error=str(exc))), None, None
        generation = Generation(loaded.module_name)
        planned = plan_config(loaded, generation, output_dir)
        run = ConfigRun(loaded.module_name, ConfigSummary.of(loaded, output_dir), generation)
        inputs = None
        if cache is not None and generation.error is None:
            inputs = _inputs(loaded, root, output_dir, cache)
        return run, planned, inputs
    finally:
        _forget_modules([name for name in set(sys.modules) - before if is_source_module(sys.modules.get(name))])


def _forget_modules(names: list[str]) -> None:
    """Drop project modules so the next config imports them afresh, and the attributes their parent
    packages hold for them: `from models.common import fused_loss` reads the package attribute first, and
    would otherwise hand the next config the dropped module (whose objects sys.modules no longer knows)."""
    dropped = {name: sys.modules.pop(name, None) for name in names}
    for name, module in dropped.items():
        parent_name, _, child = name.rpartition(".")
        parent = sys.modules.get(parent_name)
        if parent is not None and module is not None and getattr(parent, child, None) is module:
            delattr(parent, child)


def _inputs(loaded: LoadedConfig, root: Path, output_dir: Path | None, cache: Cache) -> Inputs:
    """The config's depfile: every module file not covered by the environment, the upstream, the lock."""
    files = [str(read_upstream(loaded.config.source_module).path)]
    if not loaded.config.abstract:
        files.append(str(root / lock_path(target_path(loaded, output_dir))))
    return cache.inputs_now(files)


def _cache_key(spec: str, root: Path, config_name: str, output_dir: Path | None, with_diff: bool) -> list:
    return [spec, str(root.resolve()), config_name, None if output_dir is None else str(output_dir), with_diff]


def _module_name(spec: str, root: Path) -> str:
    try:
        return to_module_name(spec, root)
    except PatchgenError:
        return spec


def _refuse_shared_targets(runs: list[ConfigRun]) -> None:
    targets = [(r.module_name, Path(r.summary.target)) for r in runs if r.summary and r.summary.target]
    for module_name, message in shared_target_errors(targets).items():
        for run in runs:
            if run.module_name == module_name:
                run.generation.error, run.generation.outputs = message, []
