"""The pipeline: loaded configs -> plans -> rendered texts -> ruff -> checked outputs.

`generate` is what both CLIs call (through `patchgen.commands.config_runs`), so the checker compares against
exactly what `run_codegen` writes. It runs in two steps so that many configs share one ruff
process while each output depends on its own config only: `plan_config` for each config (the step
that reads patch modules), then `finish` for all of them (formatting with each file's own
settings, the self-containment check, the lock, the diff).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from patchgen.dsl.errors import PatchgenError
from patchgen.dsl.layout import load_layout
from patchgen.load.discovery import LoadedConfig
from patchgen.load.native_code import with_native_model_code
from patchgen.load.upstream import read_upstream
from patchgen.plan.plan import Plan, make_plan
from patchgen.plan.validation import check_generated_output
from patchgen.render.formatting import FormatSettings, format_sources
from patchgen.render.outputs import display_path, unified_diff
from patchgen.render.render import render
from patchgen.upgrade.fingerprints import Lock, build_lock, checked_against_recorded, lock_path, read_lock


PACKAGE_INIT = "# Generated modeling files: written by patchgen, never edited by hand.\n"


@dataclass(frozen=True)
class Output:
    path: Path  # relative to the project root (or absolute for a custom output dir)
    text: str


@dataclass
class Generation:
    config_module: str
    outputs: list[Output] = field(default_factory=list)
    error: str | None = None
    #: the committed lock file beside the output cannot be read; the outputs are still there to compare
    lock_error: str | None = None

    @property
    def module_output(self) -> Output | None:
        return next((o for o in self.outputs if o.path.suffix == ".py" and o.path.name != "__init__.py"), None)


@dataclass(frozen=True)
class Planned:
    """One config planned and waiting for `finish`: where it goes and how it is formatted."""

    result: Generation
    plan: Plan
    path: Path
    config_name: str
    custom_dir: bool  # written to --output-dir: no lock file, no package `__init__.py`
    lock: Lock  # the upstream fingerprints, taken while planning

    @property
    def settings(self) -> FormatSettings:
        return FormatSettings(
            first_party=(self.plan.upstream.name.split(".", 1)[0],),
            keep_imports=tuple(imp.module for imp in self.plan.config.extra_imports),
        )


def target_path(loaded: LoadedConfig, output_dir: Path | None = None) -> Path:
    """Where a config's file goes: into `output_dir`, or where the project's layout puts it (relative to
    the root, which the commands make the current directory: `patchgen.dsl.layout.enter_project`)."""
    config = loaded.config
    if output_dir is not None:
        return output_dir / config.target_file
    return load_layout(Path.cwd()).output_file(config.model, config.variant, config.target_file)


def output_label(path: Path) -> str:
    """`b/generated/qwen3/x.py` for the default layout; a custom absolute folder is not named."""
    return f"b/{display_path(path)}"


def upstream_label(module_name: str) -> str:
    return "a/" + module_name.replace(".", "/") + ".py"


def generate(
    configs: list[LoadedConfig], *, output_dir: Path | None = None, with_diff: bool = True
) -> list[Generation]:
    """Generate every config; a failing config gets `error` set and no outputs, the others proceed."""
    results = [Generation(loaded.module_name) for loaded in configs]
    planned = [
        p for loaded, result in zip(configs, results, strict=True) if (p := plan_config(loaded, result, output_dir))
    ]
    for module_name, message in shared_target_errors([(p.plan.config_module, p.path) for p in planned]).items():
        next(r for r in results if r.config_module == module_name).error = message
    finish([p for p in planned if p.result.error is None], with_diff=with_diff)
    return results


def plan_config(loaded: LoadedConfig, result: Generation, output_dir: Path | None = None) -> Planned | None:
    """Validate and plan one config; None when it fails (`result.error` says why) or is a base config."""
    try:
        upstream = read_upstream(loaded.config.source_module)
        config = with_native_model_code(loaded.config, upstream)
        plan = make_plan(config, loaded.module_name, upstream)
        if loaded.config.abstract:
            return None  # a base config: validated by planning it, written only through the configs extending it
        # fingerprinted now, while the config's patch modules are imported (`config_runs` drops them after)
        lock = build_lock(config, loaded.module_name, upstream)
    except PatchgenError as exc:
        result.error = _in_config(loaded, str(exc))
        return None
    return Planned(result, plan, target_path(loaded, output_dir), loaded.config_name, output_dir is not None, lock)


def shared_target_errors(targets: list[tuple[str, Path]]) -> dict[str, str]:
    """An error for each config whose target file another config also writes, naming both."""
    owners: dict[Path, list[str]] = {}
    for module_name, path in targets:
        owners.setdefault(path, []).append(module_name)
    errors = {}
    for path, names in owners.items():
        for name in names if len(names) > 1 else ():
            others = " and ".join(n for n in names if n != name)
            errors[name] = (
                f"{name}: writes {display_path(path)}, which {others} also writes; "
                "give one of them another target_file (or another model)"
            )
    return errors


def finish(planned: list[Planned], *, with_diff: bool) -> None:
    """Format every planned output (one ruff run, each file with its own settings), check and record it."""
    texts, problems = format_sources([(render(p.plan, config_name=p.config_name), p.settings) for p in planned])
    for index, (item, text) in enumerate(zip(planned, texts, strict=True)):
        undefined = [p for p in problems if p.file_index == index and p.code in ("F821", "F822")]
        try:
            check_generated_output(item.plan, item.path, text, undefined)
            lock = item.lock
            # a lock is kept only in the project's layout; a file written to --output-dir has none to check against
            # (and what lies around that folder, `/` for `-o /sys`, is not the project's to scan for other locks)
            if not item.custom_dir:
                item.result.lock_error = _unreadable_lock(lock_path(item.path))
                if item.result.lock_error is None:
                    lock = checked_against_recorded(item.plan.config_module, lock, lock_path(item.path))
        except PatchgenError as exc:
            item.result.error = str(exc)
            continue
        item.result.outputs.extend(_outputs(item, text, lock.text(), with_diff))


def _outputs(item: Planned, text: str, lock_text: str, with_diff: bool) -> list[Output]:
    path = item.path
    outputs = [Output(path, text)]
    if with_diff:
        diff = unified_diff(
            item.plan.upstream.source.text, text, upstream_label(item.plan.upstream.name), output_label(path)
        )
        outputs.append(Output(path.with_suffix(".diff"), diff))
    if not item.custom_dir:
        if with_diff:  # the upstream fingerprints, reviewed like the .diff (patchgen.upgrade.fingerprints)
            outputs.append(Output(lock_path(path), lock_text))
        outputs += [Output(init, PACKAGE_INIT) for init in load_layout(Path.cwd()).package_inits(path)]
    return outputs


def _unreadable_lock(path: Path) -> str | None:
    """Why the committed lock at `path` cannot be read, or None (readable, or not there)."""
    if not path.exists():
        return None
    try:
        read_lock(path)
    except PatchgenError as exc:
        return str(exc)
    return None


def _in_config(loaded: LoadedConfig, message: str) -> str:
    return message if message.startswith(loaded.module_name) else f"{loaded.module_name}: {message}"
