"""`python -m patchgen.run_codegen`: generate patched modeling files from patch configs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from patchgen.commands import listing
from patchgen.commands.cli_errors import EXIT_BAD_INPUT, one_line_errors, run_command
from patchgen.commands.codegen import Output
from patchgen.commands.config_runs import ConfigRun, run_configs
from patchgen.dsl.errors import PatchgenError
from patchgen.dsl.layout import Layout, enter_project, is_path_spec
from patchgen.load.discovery import discover_configs
from patchgen.render.outputs import display_path, read_committed, write_all
from patchgen.verify.import_check import import_texts


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
    success, 2 on bad input (nothing is written then), 130 when interrupted (nothing is written then
    either).
    """
    typed_in = Path.cwd()
    with one_line_errors():
        layout = enter_project()
        root = layout.root
        if output_dir is not None:
            output_dir = layout.user_path(output_dir, typed_in)
        if config_module and is_path_spec(config_module):
            config_module = str(layout.user_path(Path(config_module), typed_in))
        if list_configs:
            _print_list(root, config_name)
            return
        specs = _specs(layout, config_module, all_configs, output_dir)
        runs = run_configs(root, specs, config_name, output_dir=output_dir, with_diff=with_diff)
        failures = _failures(runs, root, verify_import)
        if failures:
            for failure in failures:
                click.echo(f"error: {failure}", err=True)
            click.echo("nothing written", err=True)
            sys.exit(EXIT_BAD_INPUT)
        _write(runs, dry_run=dry_run, verbose=verbose)


def _specs(layout: Layout, config_module: str | None, all_configs: bool, output_dir: Path | None) -> list[str]:
    if all_configs == bool(config_module):
        raise click.UsageError("give exactly one of CONFIG_MODULE or --all")
    if not all_configs:
        return [config_module]
    if output_dir is not None:
        raise click.UsageError("--output-dir works with one config, not with --all")
    specs = discover_configs(layout.root)
    if not specs:
        raise PatchgenError(f"no config matching {layout.config_pattern} in the configs folders of {layout.root}")
    return specs


def _failures(runs: list[ConfigRun], root: Path, verify_import: bool) -> list[str]:
    failures = [r.generation.error or r.generation.lock_error for r in runs]
    failures = [f for f in failures if f]
    if verify_import and not failures:
        texts = {
            r.generation.module_output.path: r.generation.module_output.text for r in runs if r.generation.outputs
        }
        blocked = {r.module_name.split(".", 1)[0] for r in runs}
        failures = [str(f) for f in import_texts(texts, root, blocked)]
    return failures


def _write(runs: list[ConfigRun], *, dry_run: bool, verbose: bool) -> None:
    """Write every changed output in one all-or-nothing step, then say what happened to each."""
    outputs = _unique_outputs(runs)
    changed = {o.path: o.text for o in outputs if not _is_current(o)}
    if dry_run:
        for output in outputs:
            if output.path in changed:
                click.echo(f"would write {display_path(output.path)} ({len(output.text.splitlines())} lines)")
        return
    write_all(changed)
    for output in outputs:
        if output.path.name != "__init__.py":
            click.echo(f"{'wrote' if output.path in changed else 'unchanged'} {display_path(output.path)}")
    for run in runs:
        if run.summary and run.summary.abstract and len(runs) == 1:
            click.echo(f"skipped {run.module_name}: a base config, written only through the configs extending it")
        if verbose:
            _print_patches(run)


def _unique_outputs(runs: list[ConfigRun]) -> list[Output]:
    """Every output once (configs of one model share the package `__init__.py` files)."""
    seen: dict[Path, Output] = {}
    for run in runs:
        for output in run.generation.outputs:
            seen.setdefault(output.path, output)
    return list(seen.values())


def _is_current(output: Output) -> bool:
    """Whether the file already holds this text (a package `__init__.py` is never rewritten)."""
    if not output.path.exists():
        return False
    return output.path.name == "__init__.py" or read_committed(output.path) == output.text


def _print_patches(run: ConfigRun) -> None:
    for patch in run.summary.patches if run.summary else ():
        click.echo(f"  {patch}")


def _print_list(root: Path, config_name: str) -> None:
    """The table of `patchgen.commands.listing`; a config that fails is listed as `error` and exits 2."""
    rows, errors = listing.collect(root, config_name)
    click.echo(listing.format_table(rows))
    for message in errors:
        click.echo(f"error: {message}", err=True)
    if errors:
        sys.exit(EXIT_BAD_INPUT)


if __name__ == "__main__":
    run_command(main)
