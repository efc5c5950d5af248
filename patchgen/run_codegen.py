"""`python -m patchgen.run_codegen`: generate patched modeling files from patch configs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from patchgen import listing
from patchgen.codegen import Generation, generate
from patchgen.discovery import LoadedConfig, discover_configs, load_config
from patchgen.errors import PatchgenError
from patchgen.import_check import import_texts
from patchgen.layout import project_layout
from patchgen.light_imports import run_light
from patchgen.outputs import write_atomic


EXIT_BAD_INPUT = 2


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("config_module", required=False)
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write into. Default: the project's layout (generated/<model>/ unless [tool.patchgen] differs).",
)
@click.option("-c", "--config-name", default="config", show_default=True, help="Variable holding the PatchConfig.")
@click.option("--all", "all_configs", is_flag=True, help="Generate every config (models/**/*_patch_gen_config.py).")
@click.option(
    "--list",
    "list_configs",
    is_flag=True,
    help="List every config (model, variant, base, source, target, patch count, whether the output is current).",
)
@click.option("--dry-run", is_flag=True, help="Report what would be written; write nothing.")
@click.option("--diff", "with_diff", is_flag=True, help="Also write <target>.diff: upstream file vs generated file.")
@click.option("-v", "--verbose", is_flag=True, help="Print every patch applied.")
@click.option("--verify-import", is_flag=True, help="Import each generated module in a subprocess before writing.")
def main(
    config_module, output_dir, config_name, all_configs, list_configs, dry_run, with_diff, verbose, verify_import
):
    """Generate a patched copy of a transformers modeling file from CONFIG_MODULE.

    CONFIG_MODULE is a dotted module name (models.qwen3.qwen3_gpu_patch_gen_config) or a path to
    the config file. Run anywhere inside the project (see [tool.patchgen]). Exit status: 0 on
    success, 2 on bad input (nothing is written then).
    """
    try:
        layout = project_layout()
        root = layout.root
        if list_configs:
            _print_list(root, config_name)
            return
        if all_configs == bool(config_module):
            raise click.UsageError("give exactly one of CONFIG_MODULE or --all")
        specs = discover_configs(root) if all_configs else [config_module]
        if all_configs and not specs:
            raise PatchgenError(f"no config matching {layout.config_pattern} in the configs folders of {root}")
        if output_dir is not None and len(specs) > 1:
            raise click.UsageError("--output-dir works with one config, not with --all")
        if output_dir is not None:
            output_dir = layout.relative_to_root(output_dir)

        def load_and_generate() -> tuple[list[LoadedConfig], list[Generation]]:
            loaded = [load_config(spec, config_name, root) for spec in specs]
            return loaded, generate(loaded, output_dir=output_dir, with_diff=with_diff, layout=layout)

        # configs load against stubbed torch/transformers when that gives the same answer (patchgen.light_imports)
        (loaded, results), _ = run_light(load_and_generate, succeeded=lambda out: not any(r.error for r in out[1]))
    except PatchgenError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    failures = [r.error for r in results if r.error]
    if verify_import and not failures:
        texts = {r.module_output.path: r.module_output.text for r in results if r.module_output}
        failures = [str(f) for f in import_texts(texts, root, {i.module_name.split(".", 1)[0] for i in loaded})]
    for failure in failures:
        click.echo(f"error: {failure}", err=True)
    if failures:
        click.echo("nothing written", err=True)
        sys.exit(EXIT_BAD_INPUT)
    _write(results, loaded, root, dry_run=dry_run, verbose=verbose)


def _write(results: list[Generation], loaded: list[LoadedConfig], root: Path, *, dry_run: bool, verbose: bool) -> None:
    written: set[Path] = set()
    for result, item in zip(results, loaded, strict=False):
        for output in result.outputs:
            if output.path in written:
                continue
            written.add(output.path)
            target = root / output.path  # output paths are relative to the project root (or absolute)
            is_init = output.path.name == "__init__.py"
            if is_init and target.exists():
                continue
            if dry_run:
                click.echo(f"would write {output.path} ({len(output.text.splitlines())} lines)")
                continue
            unchanged = target.exists() and target.read_text(encoding="utf-8") == output.text
            if not unchanged:
                write_atomic(target, output.text)
            if not is_init:
                click.echo(f"{'unchanged' if unchanged else 'wrote'} {output.path}")
        if item.config.abstract and len(loaded) == 1:
            click.echo(f"skipped {item.module_name}: a base config, written only through the configs extending it")
        if verbose:
            for patch in item.config.patches:
                click.echo(f"  {patch.kind.value}: {patch.target}  ({patch.defined_at})")


def _print_list(root: Path, config_name: str) -> None:
    """The table of `patchgen.listing`; a config that fails is listed as `error` and exits 2."""
    rows, errors = listing.collect(root, config_name)
    click.echo(listing.format_table(rows))
    for message in errors:
        click.echo(f"error: {message}", err=True)
    if errors:
        sys.exit(EXIT_BAD_INPUT)


if __name__ == "__main__":
    main()
