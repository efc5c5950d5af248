"""`run_codegen --list`: every config with its model, variant, base, source, target, patch count and status.

The status says whether the committed output is what the config generates now, so it generates
every config in memory exactly as `check_patchgen` does (and reuses its cache, `patchgen.verify.cache`):

- `current`: every output (`.py`, `.diff`, lock) equals the committed file
- `stale`: an output differs; `run_codegen <config> --diff` rewrites it
- `missing`: the generated file is not there
- `base`: an abstract config, generated only through the configs that extend it
- `error`: the config does not load or generate; the message follows the table
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from patchgen.commands.config_runs import ConfigRun, run_configs
from patchgen.load.discovery import discover_configs
from patchgen.render.outputs import read_committed
from patchgen.verify.cache import Cache


COLUMNS = ("CONFIG", "MODEL", "VARIANT", "EXTENDS", "SOURCE MODULE", "TARGET", "PATCHES", "STATUS")


@dataclass(frozen=True)
class Row:
    config: str  # the dotted module name run_codegen takes
    model: str
    variant: str
    extends: str
    source_module: str
    target: str
    patches: str
    status: str


def short_config_name(module_name: str | None) -> str:
    """`llama_base` for `models.llama.llama_base_patch_gen_config` (the EXTENDS column)."""
    if not module_name:
        return "-"
    return module_name.rsplit(".", 1)[-1].removesuffix("_patch_gen_config")


def status_of(root: Path, run: ConfigRun) -> str:
    if run.summary is None or run.generation.error or run.generation.lock_error:
        return "error"
    if run.summary.abstract:
        return "base"
    if not (root / run.summary.target).exists():
        return "missing"
    for output in run.generation.outputs:
        committed = root / output.path
        if output.path.name == "__init__.py":
            continue
        if not committed.exists() or read_committed(committed) != output.text:
            return "stale"
    return "current"


def collect(root: Path, config_name: str = "config", *, use_cache: bool = True) -> tuple[list[Row], list[str]]:
    """One row per discovered config (sorted by model, then variant) and the error messages."""
    runs = run_configs(root, discover_configs(root), config_name, cache=Cache(root) if use_cache else None)
    rows, messages = [], []
    for run in runs:
        summary = run.summary
        if summary is None:
            rows.append(Row(run.module_name, "?", "?", "-", "?", "?", "?", "error"))
        else:
            rows.append(
                Row(
                    config=run.module_name,
                    model=summary.model or "-",
                    variant=summary.variant,
                    extends=short_config_name(summary.extends),
                    source_module=summary.source_module,
                    target=summary.target or "-",
                    patches=str(len(summary.patches)),
                    status=status_of(root, run),
                )
            )
        if run.generation.error or run.generation.lock_error:
            messages.append(run.generation.error or run.generation.lock_error)
    rows.sort(key=lambda r: (r.model, r.variant != "base", r.variant))
    return rows, messages


def format_table(rows: list[Row]) -> str:
    table = [
        COLUMNS,
        *((r.config, r.model, r.variant, r.extends, r.source_module, r.target, r.patches, r.status) for r in rows),
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in table)
