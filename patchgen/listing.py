"""`run_codegen --list`: every config with its model, variant, base, source, target, patch count and status.

The status says whether the committed output is what the config generates now, so it generates
every config in memory (one ruff run, light imports) exactly as `check_patchgen` does:

- `current`: every output (`.py`, `.diff`, lock) equals the committed file
- `stale`: an output differs; `run_codegen <config> --diff` rewrites it
- `missing`: the generated file is not there
- `base`: an abstract config, generated only through the configs that extend it
- `error`: the config does not load or generate; the message follows the table
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from patchgen.codegen import Generation, default_output_path, generate
from patchgen.discovery import LoadedConfig, discover_configs, load_config
from patchgen.errors import PatchgenError
from patchgen.layout import Layout, load_layout
from patchgen.light_imports import run_light


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


def status_of(layout: Layout, loaded: LoadedConfig, result: Generation | None) -> str:
    if loaded.config.abstract:
        return "base"
    if result is None or result.error:
        return "error"
    target = layout.root / default_output_path(layout, loaded)
    if not target.exists():
        return "missing"
    for output in result.outputs:
        committed = layout.root / output.path
        if output.path.name == "__init__.py":
            continue
        if not committed.exists() or committed.read_text(encoding="utf-8") != output.text:
            return "stale"
    return "current"


def collect(root: Path, config_name: str = "config") -> tuple[list[Row], list[str]]:
    """One row per discovered config (sorted by model, then variant) and the error messages."""
    layout = load_layout(root)

    def load_and_generate():
        loaded, errors = [], []
        for spec in discover_configs(root):
            try:
                loaded.append(load_config(spec, config_name, root))
            except PatchgenError as exc:
                errors.append((spec, str(exc)))
        return loaded, errors, generate(loaded, with_diff=True, layout=layout)

    (loaded, load_errors, results), _ = run_light(
        load_and_generate, succeeded=lambda out: not out[1] and not any(r.error for r in out[2])
    )
    rows, messages = [], []
    for item, result in zip(loaded, results, strict=True):
        config = item.config
        target = "-" if config.abstract else str(default_output_path(layout, item))
        rows.append(
            Row(
                config=item.module_name,
                model=config.model or "-",
                variant=config.variant,
                extends=short_config_name(config.extends),
                source_module=config.source_module,
                target=target,
                patches=str(len(config.patches)),
                status=status_of(layout, item, result),
            )
        )
        if result.error:
            messages.append(result.error)
    for spec, message in load_errors:
        rows.append(Row(spec, "?", "?", "-", "?", "?", "?", "error"))
        messages.append(message)
    rows.sort(key=lambda r: (r.model, r.variant != "base", r.variant))
    return rows, messages


def format_table(rows: list[Row]) -> str:
    table = [
        COLUMNS,
        *((r.config, r.model, r.variant, r.extends, r.source_module, r.target, r.patches, r.status) for r in rows),
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in table)
