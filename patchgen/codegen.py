"""The pipeline: loaded configs -> plans -> rendered texts -> one ruff run -> checked outputs.

`generate` is what both CLIs call, so the checker compares against exactly what `run_codegen`
writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from patchgen.discovery import LoadedConfig
from patchgen.errors import PatchgenError
from patchgen.fingerprints import build_lock, lock_path, refuse_stale_upstream
from patchgen.formatting import format_sources
from patchgen.layout import Layout, project_layout
from patchgen.outputs import unified_diff
from patchgen.plan import Plan, make_plan
from patchgen.render import render
from patchgen.upstream import read_upstream
from patchgen.validation import check_generated_output


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

    @property
    def module_output(self) -> Output | None:
        return next((o for o in self.outputs if o.path.suffix == ".py" and o.path.name != "__init__.py"), None)


def default_output_path(layout: Layout, loaded: LoadedConfig) -> Path:
    """Where the project's layout puts a config's generated file, relative to the project root."""
    config = loaded.config
    return layout.output_file(config.model, config.variant, config.target_file)


def output_label(path: Path) -> str:
    """`b/generated/qwen3/x.py` for the default layout; a custom absolute folder is not named."""
    if path.is_absolute():
        try:
            path = path.relative_to(Path.cwd())
        except ValueError:
            path = Path(path.name)
    return f"b/{path.as_posix()}"


def upstream_label(module_name: str) -> str:
    return "a/" + module_name.replace(".", "/") + ".py"


def generate(
    configs: list[LoadedConfig],
    *,
    output_dir: Path | None = None,
    with_diff: bool = True,
    layout: Layout | None = None,
) -> list[Generation]:
    """Generate every config; a failing config gets `error` set and no outputs, the others proceed.

    Outputs go where `layout` (default: the current directory's project) puts them, or into
    `output_dir` when given.
    """
    if output_dir is None and layout is None:
        layout = project_layout()
    results: list[Generation] = []
    plans: list[tuple[Generation, Plan, Path]] = []
    extended = {loaded.config.extends for loaded in configs}
    for loaded in configs:
        result = Generation(loaded.module_name)
        results.append(result)
        if loaded.config.abstract and loaded.module_name in extended:
            continue  # a base config is checked through the configs extending it, which carry all its patches
        try:
            upstream = read_upstream(loaded.config.source_module)
            plan = make_plan(loaded.config, loaded.module_name, upstream)
        except PatchgenError as exc:
            result.error = _in_config(loaded, str(exc))
            continue
        if loaded.config.abstract:
            continue  # a base config: validated by planning it, written only through the configs extending it
        if output_dir is not None:
            plans.append((result, plan, output_dir / loaded.config.target_file))
        else:
            plans.append((result, plan, default_output_path(layout, loaded)))

    keep = tuple(imp.module for _, plan, _ in plans for imp in plan.config.extra_imports)
    first_party = tuple(plan.upstream.name.split(".", 1)[0] for _, plan, _ in plans)
    texts, problems = format_sources(
        [render(plan) for _, plan, _ in plans], keep_imports=keep, first_party=first_party or ("transformers",)
    )
    for index, ((result, plan, path), text) in enumerate(zip(plans, texts, strict=False)):
        undefined = [p for p in problems if p.file_index == index and p.code in ("F821", "F822")]
        try:
            _check_self_contained(plan, path, text, undefined)
            lock = build_lock(plan.config, plan.config_module, plan.upstream)
            refuse_stale_upstream(plan.config_module, lock, lock_path(_from_cwd(layout, path)))
        except PatchgenError as exc:
            result.error = str(exc)
            continue
        result.outputs.append(Output(path, text))
        if with_diff:
            diff = unified_diff(
                plan.upstream.source.text, text, upstream_label(plan.upstream.name), output_label(path)
            )
            result.outputs.append(Output(path.with_suffix(".diff"), diff))
        if output_dir is None:
            if with_diff:  # the upstream fingerprints, reviewed like the .diff (patchgen.fingerprints)
                result.outputs.append(Output(lock_path(path), lock.text()))
            result.outputs += [Output(init, PACKAGE_INIT) for init in layout.package_inits(path)]
    return results


def _from_cwd(layout: Layout | None, path: Path) -> Path:
    """An output path as the user's shell names it (`generated/x.py` at the root, `../generated/x.py` below)."""
    return Path(os.path.relpath(layout.root / path)) if layout is not None else path


def _in_config(loaded: LoadedConfig, message: str) -> str:
    return message if message.startswith(loaded.module_name) else f"{loaded.module_name}: {message}"


def _check_self_contained(plan: Plan, path: Path, text: str, undefined: list) -> None:
    check_generated_output(plan, path, text, undefined)
