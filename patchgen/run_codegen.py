"""Stable alias: `patchgen.run_codegen` is `patchgen.commands.run_codegen` (moved in issue 20).

Kept for users; `python -m` runs the command's `main`. Code in this repository imports `patchgen.commands.run_codegen`.
"""

import sys

from patchgen.commands import run_codegen as _moved


if __name__ == "__main__":
    from patchgen.commands.cli_errors import run_command

    run_command(_moved.main)
else:
    sys.modules[__name__] = _moved
