"""Format generated texts the way `transformers` formats its own source, with the pinned ruff.

Each text is formatted with its own settings (`FormatSettings`: the first-party package of its
upstream, the imports its config keeps), so a file's bytes depend on its own config only, never on
which configs were generated alongside it. Still one ruff process for many files: every text sits in
its own folder next to its own `ruff.toml`, and ruff uses the closest settings file for each file.
`ruff check --fix` (import sorting, unused imports) runs first, then `ruff format`. The same
settings let untouched upstream lines come out byte-identical. The check run also reports undefined
names (F821/F822), which the generator turns into errors.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


RUFF_SETTINGS = """\
line-length = 119
target-version = "py310"

[lint]
select = ["I", "F401", "F821", "F822"]

[lint.isort]
lines-after-imports = 2
"""

FIXABLE = ("I", "F401")


@dataclass(frozen=True)
class FormatSettings:
    """What may differ between two generated files' formatting: both come from the file's own config.

    `first_party` are the top-level packages of the upstream source (`transformers`): upstream
    sorts its own imports as first-party, so the generated file must too. Imports of the modules in
    `keep_imports` (those the config asked for with `add_import`) are never removed as unused.
    """

    first_party: tuple[str, ...] = ("transformers",)
    keep_imports: tuple[str, ...] = ()

    def ruff_toml(self) -> str:
        text = RUFF_SETTINGS + f"known-first-party = {json.dumps(sorted(set(self.first_party)))}\n"
        if self.keep_imports:
            text += f"\n[lint.pyflakes]\nallowed-unused-imports = {json.dumps(sorted(set(self.keep_imports)))}\n"
        return text


@dataclass(frozen=True)
class UndefinedName:
    file_index: int
    code: str
    message: str
    line: int


def ruff_binary() -> str:
    from ruff.__main__ import find_ruff_bin

    return str(find_ruff_bin())


def format_sources(jobs: list[tuple[str, FormatSettings]]) -> tuple[list[str], list[UndefinedName]]:
    """Format every (text, settings) job; return the formatted texts and the undefined names ruff found."""
    if not jobs:
        return [], []
    ruff = ruff_binary()
    with tempfile.TemporaryDirectory(prefix="patchgen-fmt-") as tmp:
        root = Path(tmp)
        files = [_stage(root / str(index), text, settings) for index, (text, settings) in enumerate(jobs)]
        common = ["--no-cache", "--quiet"]
        fix = subprocess.run(
            [ruff, "check", "--fix", "--exit-zero", "--output-format", "json", *common, *map(str, files)],
            capture_output=True,
            text=True,
            cwd=root,
        )
        if fix.returncode != 0:
            raise RuntimeError(f"ruff check failed: {fix.stderr.strip()}")
        problems = []
        for item in json.loads(fix.stdout or "[]"):
            index = int(Path(item["filename"]).parent.name)
            problems.append(UndefinedName(index, item["code"], item["message"], item["location"]["row"]))
        fmt = subprocess.run([ruff, "format", *common, *map(str, files)], capture_output=True, text=True, cwd=root)
        if fmt.returncode != 0:
            raise RuntimeError(f"ruff format failed: {fmt.stderr.strip()}")
        return [path.read_text(encoding="utf-8") for path in files], problems


def _stage(folder: Path, text: str, settings: FormatSettings) -> Path:
    """`folder/ruff.toml` with the file's own settings and `folder/module.py` with its text."""
    folder.mkdir()
    (folder / "ruff.toml").write_text(settings.ruff_toml(), encoding="utf-8")
    path = folder / "module.py"
    path.write_text(text, encoding="utf-8")
    return path
