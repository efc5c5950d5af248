"""How a CLI run that cannot finish ends: one line on stderr and an exit status, never a traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import click

from patchgen.dsl.errors import PatchgenError
from patchgen.render.outputs import WriteError, describe_os_error


EXIT_BAD_INPUT, EXIT_INTERRUPTED = 2, 130


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Bad input, an unwritable or unreadable file: exit 2; Ctrl-C: exit 130. Writes are all-or-nothing."""
    try:
        yield
    except PatchgenError as exc:
        fail(str(exc))
    except WriteError as exc:
        fail(str(exc), "nothing written")
    except OSError as exc:  # a file that cannot be read (a generated file, a config folder)
        fail(describe_os_error(exc))
    except KeyboardInterrupt:
        click.echo("error: interrupted; nothing written", err=True)
        sys.exit(EXIT_INTERRUPTED)


def fail(*lines: str) -> None:
    """`error: <first line>`, then the other lines as they are; exit status 2."""
    click.echo(f"error: {lines[0]}", err=True)
    for line in lines[1:]:
        click.echo(line, err=True)
    sys.exit(EXIT_BAD_INPUT)


def run_command(command: click.Command) -> NoReturn:
    """Run a click command as the program (`python -m ...`, the `patchgen` script) and end the process with its
    exit status, without tearing the interpreter down.

    A run that imported torch and transformers and parsed hundreds of files holds millions of objects, and
    Python's shutdown frees them one by one: a third of a cold check's CPU time (6 of 18 s, measured with
    `benchmarks/bench_cold_check.py`). By the time the command returns, every file it writes is written and
    renamed, its worker processes are joined and its import-check child is waited for or killed; stdout and
    stderr are flushed here. An uncaught exception still ends the usual way, with its traceback.
    """
    try:
        command.main(standalone_mode=True)
        status = 0
    except SystemExit as exc:
        status = _exit_status(exc.code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _exit_status(code: object) -> int:
    """What `sys.exit(code)` would make the exit status (a message is printed to stderr, as Python does)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
