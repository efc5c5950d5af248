"""Stable alias: `patchgen.check_patchgen` is `patchgen.commands.check_patchgen` (moved in issue 20).

Kept for users; `python -m` runs the command's `main`. Code in this repository imports `patchgen.commands.check_patchgen`.
"""

import sys

from patchgen.commands import check_patchgen as _moved


if __name__ == "__main__":
    from patchgen.commands.cli_errors import run_command

    run_command(_moved.main)
else:
    sys.modules[__name__] = _moved
