"""How fast is patchgen itself? The check over all configs, cold and warm, against its floor (`ruff format`).

    python benchmarks/bench_codegen.py [--repeat N] [--warm-only]

Run from the project root. Each command runs as a user would run it (a fresh interpreter), `--repeat`
times; the median wall time counts, and the CPU time (user + system of the child and its own
children) is shown beside it, because on a shared machine wall time also measures the neighbours.
Measured:

- check, cold: `python -m patchgen.check_patchgen -q` with `.patchgen-cache/` deleted before each
  run: every config imported for real (torch, transformers), generated and compared, and every
  generated module imported in a subprocess that starts first and runs beside the generation
- check, cold, `--no-import`: the same without the import check
- check, warm: `python -m patchgen.check_patchgen -q` when nothing changed since the last check
  (every result comes from the cache, after its recorded inputs are found unchanged)
- codegen: `python -m patchgen.run_codegen --all --diff --dry-run` (never cached)
- ruff floor: `ruff format` (pinned ruff, line length 119) on copies of the generated `.py` files,
  the one step every check must do
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".patchgen-cache"


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float

    def __str__(self) -> str:
        return f"{self.wall:7.3f} s wall  {self.cpu:7.3f} s cpu"


def timed(command: list[str], cwd: Path = ROOT) -> Timing:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(wall, cpu)


def median(command: list[str], repeat: int, before: Callable[[], None] = lambda: None, cwd: Path = ROOT) -> Timing:
    runs = []
    for _ in range(repeat):
        before()
        runs.append(timed(command, cwd))
    return Timing(statistics.median(t.wall for t in runs), statistics.median(t.cpu for t in runs))


def drop_cache() -> None:
    shutil.rmtree(CACHE, ignore_errors=True)


def ruff_binary() -> str:
    from ruff.__main__ import find_ruff_bin

    return str(find_ruff_bin())


def ruff_floor(generated: list[Path], repeat: int) -> Timing:
    with tempfile.TemporaryDirectory(prefix="bench-ruff-") as tmp:
        copies = []
        for i, path in enumerate(generated):
            copy = Path(tmp) / f"f{i}.py"
            shutil.copyfile(path, copy)
            copies.append(str(copy))
        command = [ruff_binary(), "format", "--no-cache", "--quiet", "--line-length", "119", *copies]
        return median(command, repeat, cwd=Path(tmp))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measured command (the median counts)")
    parser.add_argument("--warm-only", action="store_true", help="only the warm check and the floor (seconds)")
    args = parser.parse_args()

    python = sys.executable
    generated = sorted(p for p in (ROOT / "generated").glob("*/patched_modeling_*.py"))
    configs = sorted((ROOT / "models").glob("**/*_patch_gen_config.py"))
    check = [python, "-m", "patchgen.commands.check_patchgen", "-q"]
    rows = []
    if not args.warm_only:
        rows.append(("check, cold cache", median(check, args.repeat, drop_cache)))
        rows.append(("check --no-import, cold cache", median([*check, "--no-import"], args.repeat, drop_cache)))
        codegen = [python, "-m", "patchgen.commands.run_codegen", "--all", "--diff", "--dry-run"]
        rows.append(("run_codegen --all --diff --dry-run", median(codegen, args.repeat)))
    timed(check)  # fills the cache when it is cold
    warm = median(check, args.repeat)
    rows.append(("check, warm cache", warm))
    floor = ruff_floor(generated, args.repeat)
    rows.append(("ruff format alone (the floor)", floor))

    print(f"patchgen benchmark: {len(configs)} configs, {len(generated)} generated files, {os.cpu_count()} CPU cores")
    for label, timing in rows:
        print(f"  {label:<36} {timing}")
    print(
        f"  {'ratio warm check / floor':<36} {warm.wall / floor.wall:7.1f} x wall  {warm.cpu / floor.cpu:7.1f} x cpu"
    )


if __name__ == "__main__":
    main()
