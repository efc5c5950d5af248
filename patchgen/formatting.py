"""Format generated texts the way `transformers` formats its own source, with the pinned ruff.

One ruff run handles many files: `ruff check --fix` (import sorting, unused imports) then
`ruff format`. The same settings let untouched upstream lines come out byte-identical. The check
run also reports undefined names (F821/F822), which the generator turns into errors.
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
class UndefinedName:
    file_index: int
    code: str
    message: str
    line: int


def ruff_binary() -> str:
    from ruff.__main__ import find_ruff_bin

    return str(find_ruff_bin())


def format_sources(
    texts: list[str], keep_imports: tuple[str, ...] = (), first_party: tuple[str, ...] = ("transformers",)
) -> tuple[list[str], list[UndefinedName]]:
    """Format every text; return the formatted texts and the undefined names ruff found.

    `first_party` are the top-level packages of the upstream sources (`transformers`): upstream
    sorts its own imports as first-party, so the generated files must too. Imports of the modules in
    `keep_imports` (those a config asked for with `add_import`) are never removed as unused.
    """
    if not texts:
        return [], []
    ruff = ruff_binary()
    with tempfile.TemporaryDirectory(prefix="patchgen-fmt-") as tmp:
        root = Path(tmp)
        config = root / "ruff.toml"
        settings = RUFF_SETTINGS + f"known-first-party = {json.dumps(sorted(set(first_party)))}\n"
        if keep_imports:
            settings += f"\n[lint.pyflakes]\nallowed-unused-imports = {json.dumps(sorted(set(keep_imports)))}\n"
        config.write_text(settings)
        files = []
        for i, text in enumerate(texts):
            path = root / f"f{i}.py"
            path.write_text(text, encoding="utf-8")
            files.append(path)
        common = ["--config", str(config), "--no-cache", "--quiet"]
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
            index = int(Path(item["filename"]).stem[1:])
            problems.append(UndefinedName(index, item["code"], item["message"], item["location"]["row"]))
        fmt = subprocess.run([ruff, "format", *common, *map(str, files)], capture_output=True, text=True, cwd=root)
        if fmt.returncode != 0:
            raise RuntimeError(f"ruff format failed: {fmt.stderr.strip()}")
        return [path.read_text(encoding="utf-8") for path in files], problems
