"""Load and generate many configs as if each ran alone, optionally reusing cached results.

Each config is imported afresh: the project modules one config imports (its patch modules, the
sets and helpers they use) are dropped from `sys.modules` before the next config is imported, so no
config sees state another left behind, and `--all` gives each file the bytes that generating its
config alone gives. torch and transformers stay imported. The outputs of all configs are then
formatted together (`patchgen.commands.codegen.finish`, each file with its own settings).

With a `patchgen.verify.cache.Cache`, a config whose recorded inputs are unchanged is not imported at all.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, nullcontext
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
    jobs: int | None = None,
) -> list[ConfigRun]:
    """Every config in `specs`, in order: loaded, planned and generated as if alone.

    A config that fails has `generation.error` set; two configs writing one file both fail. Configs
    the cache does not answer are generated by up to `jobs` processes (`default_jobs()`; see
    `_generate`); the result does not depend on how many.
    """
    ensure_importable(root)
    runs: dict[int, ConfigRun] = {}
    pending: list[_Pending] = []
    with few_collections(), cache.recording() if cache is not None else nullcontext():
        for index, spec in enumerate(specs):
            key = _cache_key(spec, root, config_name, output_dir, with_diff)
            stored = cache.load("config", key, ConfigRun.from_json) if cache is not None else None
            if stored is not None:
                runs[index] = stored
            else:
                pending.append(_Pending(index, spec, key))
        task = _Task(root, config_name, output_dir, with_diff)
        runs.update(_generate(pending, task, cache, default_jobs() if jobs is None else jobs))
    ordered = [runs[index] for index in range(len(specs))]
    _refuse_shared_targets(ordered)
    return ordered


@dataclass(frozen=True)
class _Pending:
    index: int  # in the specs given to `run_configs`
    spec: str
    key: list  # the cache key


@dataclass(frozen=True)
class _Task:
    root: Path
    config_name: str
    output_dir: Path | None
    with_diff: bool


def default_jobs() -> int:
    """How many processes generate configs: `PATCHGEN_JOBS`, else the CPUs this process may run on."""
    wanted = os.environ.get("PATCHGEN_JOBS", "").strip()
    if wanted:
        if not wanted.isdigit() or int(wanted) < 1:
            raise PatchgenError(f"PATCHGEN_JOBS={wanted!r}: give a whole number of processes, 1 or more")
        return int(wanted)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _generate(pending: list[_Pending], task: _Task, cache: Cache | None, jobs: int) -> dict[int, ConfigRun]:
    """Generate the pending configs, here or in `jobs` forked processes.

    Importing torch and transformers costs a CPU-second or more per process, and each config's own work
    is a fraction of that, so the workers are not fresh interpreters: the first config is generated
    here (importing what every config imports, and filling the per-process parse memos with the
    transformers files every lock reads), then the process forks. Each worker takes whole model
    folders (configs of one family share an upstream file and its parses), generates them as if alone
    (`_run_alone`) and formats its own outputs in one ruff run; the results, and the cache entries,
    are exactly those of a single process. Without `fork` (not POSIX), with one job or one config,
    everything runs here.
    """
    if not pending:
        return {}
    if jobs <= 1 or len(pending) == 1 or "fork" not in multiprocessing.get_all_start_methods():
        return _generate_here(pending, task, cache)
    first, rest = pending[0], pending[1:]
    warmed = _alone(first, task, cache)
    groups = _by_folder(rest)
    _FORKED.update(task=task, cache=cache)
    gc.freeze()  # the workers' collections then leave the inherited objects (and their pages) alone
    try:
        # a worker that dies (a crash in a config's import) breaks the pool with an error, never hangs it
        with ProcessPoolExecutor(min(jobs, len(groups)), mp_context=multiprocessing.get_context("fork")) as pool:
            answers = [pool.submit(_generate_in_worker, group) for group in groups]
            runs = _finish_and_store([warmed], task, cache)  # while the workers run
            for group, answer in zip(groups, answers, strict=True):
                try:
                    runs.update(answer.result())
                except BrokenProcessPool as exc:
                    runs.update({item.index: _died(item, exc, task.root) for item in group})
    finally:
        _FORKED.clear()
        gc.unfreeze()
    return runs


@contextmanager
def few_collections() -> Iterator[None]:
    """Run the block with the cyclic garbage collector called rarely.

    Generating keeps hundreds of thousands of AST nodes alive (parsed upstream files, patch code, the
    outputs) beside everything torch and transformers allocate, and creates many more: at Python's
    default thresholds the collector walks that heap again and again, about a third of a cold
    check's CPU time (measured with `benchmarks/bench_cold_check.py`). Garbage is still collected,
    in fewer, larger batches.
    """
    before = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _died(item: _Pending, exc: BrokenProcessPool, root: Path) -> ConfigRun:
    """The run of a config whose worker process died (a crash in some config's import kills it)."""
    module_name = _module_name(item.spec, root)
    message = (
        f"{module_name}: the process generating it died ({' '.join(str(exc).split())}); a config or patch module "
        "may crash the interpreter on import: run with PATCHGEN_JOBS=1 to generate one config at a time and see which"
    )
    return ConfigRun(module_name, None, Generation(module_name, error=message))


# What a forked worker needs besides its configs: inherited through `fork`, never pickled.
_FORKED: dict[str, object] = {}


def _generate_in_worker(group: list[_Pending]) -> dict[int, ConfigRun]:
    return _generate_here(group, _FORKED["task"], _FORKED["cache"])


def _generate_here(pending: list[_Pending], task: _Task, cache: Cache | None) -> dict[int, ConfigRun]:
    return _finish_and_store([_alone(item, task, cache) for item in pending], task, cache)


def _alone(item: _Pending, task: _Task, cache: Cache | None) -> tuple:
    """(item, run, planned, inputs): one config loaded and planned as if alone (`_run_alone`)."""
    return (item, *_run_alone(item.spec, task.root, task.config_name, task.output_dir, cache))


def _finish_and_store(fresh: list[tuple], task: _Task, cache: Cache | None) -> dict[int, ConfigRun]:
    """Format and check the planned outputs together (one ruff run), then store each clean result."""
    finish([planned for _, _, planned, _ in fresh if planned is not None], with_diff=task.with_diff)
    for item, run, _, inputs in fresh:
        if cache is not None and run.generation.error is None and run.generation.lock_error is None:
            cache.store("config", item.key, inputs, run.to_json())
    return {item.index: run for item, run, _, _ in fresh}


def _by_folder(pending: list[_Pending]) -> list[list[_Pending]]:
    """The configs grouped by the package holding them (a model folder), the largest groups first."""
    groups: dict[str, list[_Pending]] = {}
    for item in pending:
        folder = str(Path(item.spec).parent) if item.spec.endswith(".py") else item.spec.rpartition(".")[0]
        groups.setdefault(folder, []).append(item)
    return sorted(groups.values(), key=len, reverse=True)


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
