"""Import generated files for real, in one fresh subprocess, with the patch package blocked.

The static checks (ruff F821/F822, no `import models...`) cannot see everything: a name bound only
at run time, an import that fails, a patch module pulled in indirectly. Importing the file is the
proof. It costs one interpreter start plus the imports of torch/transformers (about 5 s), so every
file is imported in the same subprocess, and only `check_patchgen` and `run_codegen
--verify-import` do it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


# Runs in the child: block the patch package, import each file under a unique name, report failures.
_CHILD = r"""
import importlib.abc, importlib.util, json, sys, traceback

root, blocked, files = sys.argv[1], set(json.loads(sys.argv[2])), json.loads(sys.argv[3])
sys.path.insert(0, root)


class BlockPatchPackage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".", 1)[0] in blocked:
            raise ImportError(f"generated code imported {name} from the patch package", name=name)
        return None


sys.meta_path.insert(0, BlockPatchPackage())
failures = {}
for index, path in enumerate(files):
    name = f"_patchgen_import_check_{index}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
        own = [f for f in frames if f.filename == path]
        where = f"line {own[-1].lineno}" if own else ""
        if frames and frames[-1].filename != path:  # raised further down, e.g. in a module it imports
            where += f"{', ' if where else ''}via {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}"
        where = f" ({where})" if where else ""
        failures[path] = f"{type(exc).__name__}: {' '.join(str(exc).split())}{where}"
print(json.dumps(failures))
"""


@dataclass(frozen=True)
class ImportFailure:
    path: Path
    reason: str  # `NameError: name 'foo' is not defined (line 12)`

    def __str__(self) -> str:
        return f"{self.path} does not import: {self.reason}"


def import_generated(files: list[Path], root: Path, blocked_packages: set[str]) -> list[ImportFailure]:
    """Import every file in one child process; the failures, one per file that does not import."""
    if not files:
        return []
    absolute = [str(f if f.is_absolute() else root / f) for f in files]
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            str(root.resolve()),
            json.dumps(sorted(blocked_packages)),
            json.dumps(absolute),
        ],
        capture_output=True,
        text=True,
        cwd=root,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return [ImportFailure(files[0], f"the import check itself failed: {tail}")]
    failures = json.loads(lines[-1])
    return [ImportFailure(f, failures[a]) for f, a in zip(files, absolute, strict=True) if a in failures]


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
