"""Import generated files for real, in one fresh subprocess, with the patch package blocked.

The static checks (ruff F821/F822, no `import models...`) cannot see everything: a name bound only
at run time, an import that fails, a patch module pulled in indirectly. Importing the file is the
proof. It costs one interpreter start plus the imports of torch/transformers (seconds), so every
file is imported in the same subprocess, and only `check_patchgen` and `run_codegen
--verify-import` do it.

`check_patchgen` starts the subprocess first (`ImportCheck`), on the committed files, so that
torch imports there while the parent generates; the answer counts only if the parent then finds
every committed file equal to its fresh regeneration (the child reports the hash of each file it
imported, and the parent compares). A passing answer is cached with the inputs the child read
(`patchgen.verify.cache`): the generated files, `patchgen.runtime`, the environment.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from patchgen.dsl.layout import SHIPPED_SETS
from patchgen.verify.cache import Cache, CacheEntryError


# Runs in the child: block the patch package, import each file under a unique name, report failures,
# the hash of each file as imported, and what was read (for the cache).
_CHILD = r"""
import gc, hashlib, importlib.abc, importlib.util, json, sys, traceback

gc.set_threshold(100_000, 50, 100)  # as patchgen.commands.config_runs.few_collections: a third less CPU

root, blocked, files = sys.argv[1], set(json.loads(sys.argv[2])), json.loads(sys.argv[3])
sys.path.insert(0, root)
from patchgen.verify.cache import FILE_READS, ImportRecorder, module_files


class BlockPatchPackage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == top or name.startswith(top + ".") for top in blocked):
            raise ImportError(f"generated code imported {name} from the patch package", name=name)
        return None


recorder = ImportRecorder()
sys.meta_path.insert(0, BlockPatchPackage())
sys.meta_path.insert(0, recorder)
failures, hashes = {}, {}
FILE_READS.recording_stats().__enter__()  # and opens, always: a generated module reading a data file
for index, path in enumerate(files):
    name = f"_patchgen_import_check_{index}"
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        hashes[path] = hashlib.sha256(data).hexdigest()
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        exec(compile(data, path, "exec"), module.__dict__)
    except BaseException as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
        own = [f for f in frames if f.filename == path]
        where = f"line {own[-1].lineno}" if own else ""
        if frames and frames[-1].filename != path:  # raised further down, e.g. in a module it imports
            where += f"{', ' if where else ''}via {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}"
        where = f" ({where})" if where else ""
        failures[path] = f"{type(exc).__name__}: {' '.join(str(exc).split())}{where}"
read = sorted(module_files(list(sys.modules.values())) | FILE_READS.inputs())
lookups = sorted([name, list(path) if path else None] for name, path in recorder.lookups)
print(json.dumps({"failures": failures, "sha256": hashes, "files": read, "lookups": lookups}), flush=True)
sys.stderr.flush()
import os
os._exit(0)  # without tearing down torch and every module imported (seconds): the answer is printed
"""


def _passed(result: object) -> bool:
    """A stored import check: only `true` is ever stored."""
    if result is not True:
        raise CacheEntryError("an import check entry holds true")
    return True


@dataclass(frozen=True)
class ImportFailure:
    path: Path
    reason: str  # `NameError: name 'foo' is not defined (line 12)`

    def __str__(self) -> str:
        return f"{self.path} does not import: {self.reason}"


class ImportCheck:
    """The import check of `files`, started now in a child process (or answered by the cache)."""

    def __init__(self, files: list[Path], root: Path, blocked_packages: set[str], cache: Cache | None = None):
        self.files, self.root, self.cache = sorted(files), root, cache
        self.blocked = sorted({*blocked_packages, SHIPPED_SETS})  # the shipped sets are patch code too
        self.absolute = [str(f if f.is_absolute() else root / f) for f in self.files]
        self.key = [self.absolute, self.blocked]
        self.passed_before = cache is not None and cache.load("imports", self.key, _passed) is True
        self.process = None
        if self.files and not self.passed_before:
            command = [sys.executable, "-c", _CHILD, str(root.resolve()), json.dumps(self.blocked)]
            self.process = subprocess.Popen(
                [*command, json.dumps(self.absolute)],
                cwd=root,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )

    def failures(self, expected: dict[Path, str] | None = None) -> list[ImportFailure]:
        """The files that do not import. `expected`: the texts the files must have had when imported."""
        if self.passed_before or not self.files:
            return []
        stdout, stderr = self.process.communicate()
        lines = stdout.strip().splitlines()
        if self.process.returncode != 0 or not lines:
            tail = (stderr.strip().splitlines() or ["no output"])[-1]
            return [ImportFailure(self.files[0], f"the import check itself failed: {tail}")]
        report = json.loads(lines[-1])
        if expected is not None and not self._imported(report["sha256"], expected):
            return import_generated(list(expected), self.root, set(self.blocked))  # a file changed meanwhile
        failures = [
            ImportFailure(f, report["failures"][a])
            for f, a in zip(self.files, self.absolute, strict=True)
            if a in report["failures"]
        ]
        if not failures and self.cache is not None:
            lookups = [(name, tuple(path) if path else None) for name, path in report["lookups"]]
            self.cache.store("imports", self.key, self.cache.probe.record(report["files"], lookups), True)
        return failures

    def _imported(self, hashes: dict[str, str], expected: dict[Path, str]) -> bool:
        """Whether exactly the `expected` texts were imported."""
        if sorted(expected) != self.files:
            return False
        return all(
            hashes.get(a) == hashlib.sha256(expected[f].encode("utf-8")).hexdigest()
            for f, a in zip(self.files, self.absolute, strict=True)
        )

    def cancel(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def import_generated(files: list[Path], root: Path, blocked_packages: set[str]) -> list[ImportFailure]:
    """Import every file in one child process; the failures, one per file that does not import."""
    check = ImportCheck(files, root, blocked_packages)
    try:
        return check.failures()
    finally:
        check.cancel()


def import_texts(texts: dict[Path, str], root: Path, blocked_packages: set[str]) -> list[ImportFailure]:
    """Import generated texts before they are written: each goes to a temp file of the same name."""
    with tempfile.TemporaryDirectory(prefix="patchgen-import-") as tmp:
        staged = {}
        for index, (path, text) in enumerate(sorted(texts.items())):
            folder = Path(tmp) / str(index)
            folder.mkdir()
            (folder / path.name).write_text(text, encoding="utf-8")
            staged[folder / path.name] = path
        failures = import_generated(list(staged), root, blocked_packages)
        return [ImportFailure(staged[f.path], f.reason) for f in failures if f.path in staged] + [
            f for f in failures if f.path not in staged
        ]
