"""The `patchgen` console script: one entry point whose subcommands are the module CLIs themselves.

    patchgen generate ...        is  python -m patchgen.run_codegen ...
    patchgen check ...           is  python -m patchgen.check_patchgen ...
    patchgen upgrade-report ...  is  python -m patchgen.upgrade_report ...
    patchgen list [-c NAME]      is  python -m patchgen.run_codegen --list [-c NAME]
    patchgen new-model TYPE      is  python -m patchgen.new_model TYPE
    patchgen survey ...          is  python -m patchgen.commands.survey ...

Each subcommand is the very click command object of its module (same options, same help, same exit
statuses), so the two spellings cannot drift apart. Every subcommand finds its project by walking up
from the current directory (`patchgen.dsl.layout`).
"""

from __future__ import annotations

import click

from patchgen.commands import check_patchgen, new_model, run_codegen, survey, upgrade_report
from patchgen.commands.cli_errors import run_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="patchgen", message="%(prog)s %(version)s")
def main() -> None:
    """Generate, check and upgrade patched transformers modeling files from declarative patch configs.

    Run inside a project: a folder whose pyproject.toml has a [tool.patchgen] table (or that has a
    models/ package, this repository's layout). Exit status 2 on bad input or outside a project.
    """


@click.pass_context
def _list(ctx: click.Context, config_name: str) -> None:
    ctx.invoke(run_codegen.main, list_configs=True, config_name=config_name)


main.add_command(run_codegen.main, "generate")
main.add_command(check_patchgen.main, "check")
main.add_command(upgrade_report.main, "upgrade-report")
main.add_command(
    click.Command(
        "list",
        callback=_list,
        params=[param for param in run_codegen.main.params if param.name == "config_name"],
        help="List every config: model, variant, base, source, target, patch count, and whether its output is "
        "current (`run_codegen --list`).",
    )
)
main.add_command(new_model.main, "new-model")
main.add_command(survey.main, "survey")


def run() -> None:
    """The `patchgen` console script: `main`, ended without tearing the interpreter down (`run_command`)."""
    run_command(main)


if __name__ == "__main__":
    run_command(main)
