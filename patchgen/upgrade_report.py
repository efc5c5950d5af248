"""Stable alias: `patchgen.upgrade_report` is `patchgen.commands.upgrade_report` (moved in issue 20).

Kept for users; `python -m` runs the command's `main`. Code in this repository imports `patchgen.commands.upgrade_report`.
"""

import sys

from patchgen.commands import upgrade_report as _moved


if __name__ == "__main__":
    from patchgen.commands.cli_errors import run_command

    run_command(_moved.main)
else:
    sys.modules[__name__] = _moved
