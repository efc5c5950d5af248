"""Checks on the arguments of every DSL call, so bad input fails where it is written, in one line.

`add_import("math", names="sqrt")` would otherwise iterate the string and write
`from math import q, r, s, t`; a list given to `exclude_from_output` or a class object given as a
target would fail deep inside the generator. Each check names the call, the argument, what it got
(by type and name, never a repr with a memory address) and what it needs.
"""

from __future__ import annotations

import keyword
from typing import Any


def describe(value: Any) -> str:
    """`a list`, `class Qwen3MLP`, `function f`, `'text'`: how a message names what it was given."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    if isinstance(name, str):
        kind = "class" if isinstance(value, type) else type(value).__name__
        return f"{kind} {name}"
    article = "an" if type(value).__name__[:1] in "aeiou" else "a"
    return f"{article} {type(value).__name__}"


def is_identifier(text: Any) -> bool:
    return isinstance(text, str) and text.isidentifier() and not keyword.iskeyword(text)


def is_dotted(text: Any) -> bool:
    return isinstance(text, str) and bool(text) and all(is_identifier(part) for part in text.split("."))


def require_text(value: Any, what: str, call: str, *, optional: bool = False) -> None:
    """A description or reason: a string (None only when `optional`)."""
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise TypeError_(f"{call}: {what} must be a string, got {describe(value)}")


def require_name(value: Any, what: str, call: str, *, dotted: bool = False, hint: str = "") -> None:
    """An upstream or Python name given as a string: `"Qwen3MLP"` (or `"a.b"` when `dotted`)."""
    ok = is_dotted(value) if dotted else is_identifier(value)
    if not ok:
        need = "a dotted name like 'package.module'" if dotted else "a name like 'Qwen3MLP'"
        extra = f"; {hint}" if hint else ""
        if not isinstance(value, str):
            extra += (
                " (pass the upstream name as a string, not the object)"
                if not isinstance(value, (list, tuple))
                else " (pass several names as separate arguments)"
            )
        raise TypeError_(f"{call}: {what} must be {need}, got {describe(value)}{extra}")


def require_flag(value: Any, what: str, call: str) -> None:
    if not isinstance(value, bool):
        raise TypeError_(f"{call}: {what} must be True or False, got {describe(value)}")


def import_names(names: Any, call: str) -> tuple[str, ...]:
    """`names` of `add_import`: a list or tuple of `"name"` / `"name as alias"` strings."""
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise TypeError_(
            f"{call}: names must be a list of names, e.g. names=[{names!r}], got {describe(names)}"
            if isinstance(names, str)
            else f"{call}: names must be a list of names, got {describe(names)}"
        )
    for entry in names:
        if not isinstance(entry, str):
            raise TypeError_(f"{call}: each name must be a string, got {describe(entry)}")
        name, separator, alias = (part.strip() for part in entry.partition(" as "))
        if not is_identifier(name) or (separator and not is_identifier(alias)):
            raise TypeError_(f"{call}: {entry!r} is not 'name' or 'name as alias'")
    return tuple(names)


class TypeError_(Exception):
    """Raised by the checks above; the DSL turns it into a `PatchgenError` with the caller's location."""
