"""Writing outputs all-or-nothing, diffing them against upstream, and comparing with committed files."""

from __future__ import annotations

import difflib
import os
import signal
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


TEMP_SUFFIX = ".tmp"


class WriteError(Exception):
    """An output could not be written (read-only folder, a file where a folder should be, ...)."""


def write_atomic(path: Path, text: str) -> None:
    """Write through a temp file in the same folder and rename: never a half-written file."""
    write_all({path: text})


def write_all(texts: dict[Path, str]) -> None:
    """Write every file or none: stage each beside its target, then rename them all.

    Any failure while staging (a read-only folder, a path under a file, a full disk) removes what
    was staged and the folders made for it, and raises `WriteError` with one line. The renames that
    follow are not interrupted by Ctrl-C (it takes effect after them).
    """
    made: list[Path] = []
    staged: dict[Path, Path] = {}
    try:
        for path, text in texts.items():
            made += _make_parents(path.parent)
            staged[path] = _stage(path, text)
    except OSError as exc:
        _discard(staged.values(), made)
        raise WriteError(f"cannot write {display_path(path)}: {exc.strerror or type(exc).__name__}") from None
    except BaseException:
        _discard(staged.values(), made)
        raise
    with _interrupts_deferred():
        for path, tmp in staged.items():
            os.replace(tmp, path)


def read_committed(path: Path) -> str:
    """A file's text exactly (no newline translation; bytes that are not UTF-8 show up in a diff)."""
    return path.read_bytes().decode("utf-8", errors="replace")


def is_leftover_temp(path: Path) -> bool:
    """A temp file `write_all` stages (`.<name>.<random>.tmp`), left behind by a killed run."""
    return path.name.startswith(".") and path.name.endswith(TEMP_SUFFIX)


def _stage(path: Path, text: str) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        os.fchmod(fd, _mode_for(path))
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _mode_for(path: Path) -> int:
    """The mode of the file being replaced, else what the umask gives a new file (mkstemp makes 0600)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _make_parents(folder: Path) -> list[Path]:
    """Create `folder` and missing parents; the ones created, outermost first (to undo on failure)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    made = []
    for item in reversed(missing):
        item.mkdir()
        made.append(item)
    return made


def _discard(temps, folders: list[Path]) -> None:
    for tmp in temps:
        Path(tmp).unlink(missing_ok=True)
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            pass


def describe_os_error(exc: OSError) -> str:
    """`cannot read generated/x.py: Permission denied`: one line, no absolute path of this machine."""
    where = f" {display_path(Path(exc.filename))}" if exc.filename else ""
    return f"cannot access{where}: {exc.strerror or type(exc).__name__}"


def display_path(path: Path) -> str:
    """A path as messages show it: relative to the working directory, never this machine's absolute path."""
    if path.is_absolute():
        try:
            path = path.relative_to(Path.cwd())
        except ValueError:
            path = Path(path.name)
    return path.as_posix()


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C until the block is done, so a rename loop never stops halfway (main thread only)."""
    received: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    except ValueError:  # not the main thread: signals cannot be handled here anyway
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def unified_diff(old: str, new: str, old_label: str, new_label: str) -> str:
    """A unified diff with stable labels and no timestamps."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=old_label, tofile=new_label, n=3
    )
    out = []
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)
