"""How a CLI run that cannot finish ends: one line on stderr and an exit status, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

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
