"""A cache of checked results, keyed on content hashes of everything that went into them.

Checking every config means importing it for real, and the patch modules import torch and
transformers (seconds on two cores). When nothing a config read has changed, its result cannot
have changed either, so `check_patchgen` and `run_codegen --list` reuse the result recorded the
last time. What "everything it read" means is recorded while the work runs, like a compiler's
depfile, and checked before any reuse:

- **files**: the content hash of every module file in `sys.modules` when the work is done that
  does not belong to the interpreter or to an installed distribution (the config, its patch
  modules, helpers they import, patchgen, a fixture upstream), plus files named explicitly (the
  upstream module, the committed lock file), plus every other file the process opened for reading
  or looked at with `os.stat` (`pyproject.toml`'s `[tool.patchgen]`, the source of a module an
  `add_import` names but nothing imports, a data file a patch module reads while importing). An
  absent file is recorded as absent (creating it is a change), a folder as a folder;
- **lookups**: every module name looked up at the top level or inside such a folder, with what it
  resolved to (a file, or nothing): a new file that would shadow an import, or a module that would
  now be found where none was, is noticed although nothing imported it;
- **environment** (part of the key): the Python build, `sys.path`, every installed distribution
  (name, version and install time), the `.pth` files, and the hash of patchgen's own source. A file
  inside the interpreter or an installed distribution is covered by these.

How reads are seen (`FileReads`). Recording at every read site in patchgen would miss the reads
that matter most, those of the user's code (a patch module opening a data file), and every new read
site would be one more place to forget. So the process records them itself: an audit hook
(`sys.addaudithook`, installed when this module is imported, for the life of the process: hooks
cannot be removed) sees every `open` (`open()`, `Path.read_text()`, `io.open_code`, `os.open`),
whoever calls it. Opens by the import system are left to the module files and lookups above (they
are exact per config, while the reads below are kept for the whole process). Python raises no audit
event for `os.stat`, so while a recording runs (`Cache.recording()`), `os.stat` (what `Path.exists`,
`is_file`, `is_dir` and `os.path.exists`/`isfile`/`isdir` call) is wrapped to note its path.
Reads are kept for the whole process, not per config: patchgen parses a file once per process
(`definitions.parse_file`), so the second config that needs it reads nothing, and an entry must
still depend on it. Ignored: files of the environment, `/proc`, `/sys`, `/dev`, the cache's own
folder, and files this process created that are gone again (its scratch folders).

Any difference is a miss and the work runs for real; so is an entry that does not have the
expected shape (`CacheEntryError`: a hand-edited or truncated file is never a traceback). The
inputs not seen are the process environment a config reads and a `stat` made from C code: results
that depend on those are not reproducible from the committed sources anyway. Entries live under
`.patchgen-cache/` (git-ignored; delete it at will); `--no-cache` bypasses them.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.abc
import json
import os
import platform
import site
import sys
import sysconfig
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TypeVar

from patchgen.render.outputs import WriteError, write_all


CACHE_DIR = ".patchgen-cache"
FORMAT = 2  # bump when the entry layout changes
T = TypeVar("T")


# -- what belongs to the interpreter or to installed distributions --------------------------------


def _site_dirs() -> tuple[str, ...]:
    dirs = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
    if site.ENABLE_USER_SITE:
        dirs.add(site.getusersitepackages())
    # Distributions installed outside the interpreter's own site folders (a `pip install --target`
    # folder on PYTHONPATH, another environment named by a .pth line) belong to the environment too:
    # taken for project source, torch would be dropped from sys.modules after every config.
    dirs.update(entry for entry in sys.path if entry and _holds_distributions(entry))
    return tuple(sorted(os.path.join(os.path.realpath(d), "") for d in dirs if os.path.isdir(d)))


def _holds_distributions(folder: str) -> bool:
    try:
        return any(name.endswith(".dist-info") for name in os.listdir(folder))
    except OSError:
        return False


SITE_DIRS = _site_dirs()
STDLIB_DIRS = tuple(
    sorted({os.path.join(os.path.realpath(sysconfig.get_paths()[k]), "") for k in ("stdlib", "platstdlib")})
)


@functools.cache
def is_environment_file(path: str) -> bool:
    """Whether `path` belongs to an installed distribution or the standard library (covered by the key)."""
    return is_environment_dir(os.path.dirname(os.path.abspath(path)))


@functools.cache
def is_environment_dir(folder: str) -> bool:
    """Whether files in `folder` belong to the environment (asked for every import: remembered)."""
    real = os.path.join(os.path.realpath(folder), "")
    if real.startswith(SITE_DIRS):
        return True
    parts = Path(real).parts
    return real.startswith(STDLIB_DIRS) and "site-packages" not in parts and "dist-packages" not in parts


def environment() -> str:
    """The hash of everything outside the project that results depend on (see the module docstring)."""
    import patchgen

    digest = hashlib.sha256()
    for part in (FORMAT, sys.version, sys.executable, platform.platform(), sys.path, sys.flags):
        digest.update(repr(part).encode())
    for folder in SITE_DIRS:
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name.endswith((".dist-info", ".egg-info")):
                digest.update(f"{entry.name} {entry.stat().st_mtime_ns}\n".encode())
            elif entry.name.endswith(".pth"):
                digest.update(entry.name.encode() + Path(entry.path).read_bytes())
    package = Path(patchgen.__file__).parent
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


# -- files read without being imported -----------------------------------------------------------


_UNRECORDED_ROOTS = ("/proc", "/sys", "/dev")  # and what lies below them


class FileReads:
    """Every path this process opened for reading (audit hook) or stat-ed while recording (see the module
    docstring), and every path it created; filtered when asked (`inputs`), not on each event."""

    def __init__(self) -> None:
        self.read: dict[str, None] = {}  # ordered set
        self.created: set[str] = set()
        self.stat_recording = 0  # nesting depth of `recording_stats()`
        self._real_stat = os.stat

    def audit(self, event: str, args: tuple) -> None:
        if event != "open" or not args or not isinstance(args[0], (str, bytes, os.PathLike)):
            return
        try:  # an exception here would fail the open itself
            path, mode, flags = (*args, None, None)[:3]
            if _writes(mode, flags):
                self.created.add(_absolute(path))
            elif not _in_import_system():
                self.read[_absolute(path)] = None
        except Exception:  # noqa: BLE001, S110 - no current folder for a relative path: the open fails anyway
            pass

    def stat(self, path, *args, **kwargs):
        if isinstance(path, (str, bytes, os.PathLike)) and kwargs.get("dir_fd") is None:
            self.read[_absolute(path)] = None
        return self._real_stat(path, *args, **kwargs)

    @contextmanager
    def recording_stats(self) -> Iterator[None]:
        """`os.stat` notes its path while the block runs (no audit event exists for it)."""
        if self.stat_recording == 0:
            os.stat = self.stat
        self.stat_recording += 1
        try:
            yield
        finally:
            self.stat_recording -= 1
            if self.stat_recording == 0:
                os.stat = self._real_stat

    def inputs(self) -> set[str]:
        """The paths read so far that are inputs: outside the environment, not scratch, not the cache's own."""
        found = set()
        for path in list(self.read):
            if (
                Path(path).parts[1:2] in [(r[1:],) for r in _UNRECORDED_ROOTS]
                or path.endswith(".pyc")
                or CACHE_DIR in Path(path).parts
            ):
                continue
            if path in self.created and not os.path.lexists(path):
                continue  # a scratch file this process wrote and removed (the formatter's folder)
            if not is_environment_file(path) and not is_environment_dir(path):
                found.add(path)
        return found


def _absolute(path: str | bytes | os.PathLike) -> str:
    return os.path.abspath(os.fsdecode(path))


def _writes(mode: str | None, flags: int | None) -> bool:
    if mode is not None:
        return any(c in mode for c in "wax+")
    return flags is not None and bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))


def _in_import_system() -> bool:
    """Whether the open being audited comes from the import system (covered by module files and lookups)."""
    frame = sys._getframe(2)  # 0: this function, 1: the hook, 2: whoever called open
    return frame.f_code.co_filename.startswith("<frozen importlib")  # a stack that shallow raises: read


FILE_READS = FileReads()
sys.addaudithook(FILE_READS.audit)


# -- recording what work read ---------------------------------------------------------------------


class ImportRecorder(importlib.abc.MetaPathFinder):
    """First on `sys.meta_path`: notes each module name looked up, then lets the real finders answer."""

    def __init__(self) -> None:
        self.lookups: set[tuple[str, tuple[str, ...] | None]] = set()

    def find_spec(self, fullname, path=None, target=None):
        if path is None or not all(is_environment_dir(p) for p in path):
            self.lookups.add((fullname, None if path is None else tuple(path)))
        return None

    @contextmanager
    def installed(self) -> Iterator[ImportRecorder]:
        """Record while the block runs (nested blocks share the one recording)."""
        if self in sys.meta_path:
            yield self
            return
        sys.meta_path.insert(0, self)
        try:
            yield self
        finally:
            sys.meta_path.remove(self)


def resolve(name: str, path: tuple[str, ...] | None) -> str | None:
    """What the import system finds for `name` in `path` now, without importing it."""
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if isinstance(finder, ImportRecorder) or find is None:
            continue
        spec = find(name, None if path is None else list(path))
        if spec is not None:
            if spec.origin is not None:
                return spec.origin
            return "namespace:" + os.pathsep.join(spec.submodule_search_locations or ())
    return None


def _own(module: ModuleType, name: str) -> object:
    """`module.<name>` read from its namespace: a lazy module's `__getattr__` would import things."""
    try:
        return object.__getattribute__(module, "__dict__").get(name)
    except (AttributeError, TypeError):
        return None


def module_files(modules: Iterable[ModuleType]) -> set[str]:
    """Files of the given modules that the environment does not cover."""
    files = set()
    for module in modules:
        file = _own(module, "__file__")
        if isinstance(file, str) and not is_environment_file(file):
            files.add(os.path.abspath(file))
    return files


def is_source_module(module: ModuleType) -> bool:
    """A module whose content the cache hashes (the project's, a fixture's): imported afresh per config."""
    file = _own(module, "__file__")
    if isinstance(file, str):
        return not is_environment_file(file)
    path = _own(module, "__path__")  # a namespace package
    return path is not None and not all(is_environment_dir(p) for p in path)


@dataclass
class Inputs:
    """A depfile: file -> sha256 (None: absent), and lookups -> what they resolved to."""

    files: dict[str, str | None] = field(default_factory=dict)
    lookups: list[tuple[str, tuple[str, ...] | None, str | None]] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"files": self.files, "lookups": [[n, list(p) if p else None, o] for n, p, o in self.lookups]}

    @classmethod
    def from_json(cls, data: object) -> Inputs:
        """The inputs of a stored entry; `CacheEntryError` for anything of another shape."""
        files, lookups = _field(data, "files", dict), _field(data, "lookups", list)
        if not all(isinstance(f, str) and (h is None or isinstance(h, str)) for f, h in files.items()):
            raise CacheEntryError("files must map paths to hashes")
        parsed = []
        for item in lookups:
            if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)):
                raise CacheEntryError("a lookup must be [name, path, origin]")
            name, path, origin = item
            if not (path is None or (isinstance(path, list) and all(isinstance(p, str) for p in path))):
                raise CacheEntryError("a lookup's path must be a list of folders or null")
            if not (origin is None or isinstance(origin, str)):
                raise CacheEntryError("a lookup's origin must be a string or null")
            parsed.append((name, tuple(path) if path else None, origin))
        return cls(files, parsed)


class CacheEntryError(ValueError):
    """A stored entry (or its result) is not of the shape this version writes: a miss."""


def _field(data: object, name: str, kind: type) -> object:
    if not isinstance(data, dict) or not isinstance(data.get(name), kind):
        raise CacheEntryError(f"{name!r} must be a {kind.__name__}")
    return data[name]


class Probe:
    """Hashes files and resolves lookups once per run (many entries share most of their inputs)."""

    def __init__(self) -> None:
        self._hashes: dict[str, str | None] = {}
        self._resolved: dict[tuple[str, tuple[str, ...] | None], str | None] = {}

    def file_hash(self, path: str) -> str | None:
        if path not in self._hashes:
            try:
                self._hashes[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            except IsADirectoryError:
                self._hashes[path] = "folder"
            except OSError:
                self._hashes[path] = None
        return self._hashes[path]

    def resolved(self, name: str, path: tuple[str, ...] | None) -> str | None:
        key = (name, path)
        if key not in self._resolved:
            try:
                self._resolved[key] = resolve(name, path)
            except Exception as exc:  # noqa: BLE001 - a finder that fails now differs from one that answered
                self._resolved[key] = f"error: {type(exc).__name__}"
        return self._resolved[key]

    def record(self, files: Iterable[str], lookups: Iterable[tuple[str, tuple[str, ...] | None]]) -> Inputs:
        return Inputs(
            {f: self.file_hash(f) for f in sorted(files)},
            [(n, p, self.resolved(n, p)) for n, p in sorted(lookups, key=lambda item: (item[0], item[1] or ()))],
        )

    def unchanged(self, inputs: Inputs) -> bool:
        return all(self.file_hash(f) == h for f, h in inputs.files.items()) and all(
            self.resolved(n, p) == o for n, p, o in inputs.lookups
        )


# -- the store ------------------------------------------------------------------------------------


class Cache:
    """Entries `<root>/.patchgen-cache/<kind>/<key>.json`: the inputs recorded, and the result."""

    def __init__(self, root: Path):
        self.folder = root / CACHE_DIR
        self.environment = environment()
        self.probe = Probe()
        self.recorder = ImportRecorder()

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Record module lookups and stats while the block runs: every entry stored later includes them all
        (opens are recorded for the whole process, see `FileReads`)."""
        with self.recorder.installed(), FILE_READS.recording_stats():
            yield

    def inputs_now(self, extra_files: Iterable[str] = ()) -> Inputs:
        """What the work so far read: the files of every module loaded now, `extra_files`, every file read
        (`FileReads`), every lookup."""
        files = module_files(list(sys.modules.values())) | {os.path.abspath(f) for f in extra_files}
        return self.probe.record(files | FILE_READS.inputs(), self.recorder.lookups)

    def _path(self, kind: str, key: object) -> Path:
        name = hashlib.sha256(json.dumps([self.environment, key], sort_keys=True).encode()).hexdigest()
        return self.folder / kind / f"{name}.json"

    def load(self, kind: str, key: object, parse: Callable[[object], T] = lambda result: result) -> T | None:
        """The result stored under `key`, turned into an object by `parse`, if every input recorded with it
        is unchanged. None (a miss) too when the entry cannot be read or `parse` finds a result of another
        shape: `parse` should raise `CacheEntryError`, and any exception it raises counts as a miss."""
        try:
            entry = json.loads(self._path(kind, key).read_text(encoding="utf-8"))
            inputs = Inputs.from_json(_field(entry, "inputs", dict))
            if "result" not in entry:
                raise CacheEntryError("no result")
        except (OSError, ValueError):  # unreadable, not JSON, or CacheEntryError
            return None
        if not self.probe.unchanged(inputs):
            return None
        try:
            return parse(entry["result"])
        except Exception:  # noqa: BLE001 - a result of another shape (KeyError, TypeError...) is a miss
            return None

    def store(self, kind: str, key: object, inputs: Inputs, result: object) -> None:
        entry = json.dumps({"inputs": inputs.to_json(), "result": result}, sort_keys=True)
        try:  # the folder ignores itself, wherever the project keeps it
            write_all({self.folder / ".gitignore": "*\n", self._path(kind, key): entry})
        except WriteError:
            pass  # a cache that cannot be written is only slower
