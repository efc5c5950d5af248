"""How fast is patchgen itself? The check over all configs against its floor, `ruff format` on the same files.

    python benchmarks/bench_codegen.py [--repeat N] [--skip-reference]

Run from the project root. Each command runs as a user would run it (a fresh interpreter), `--repeat`
times; the best wall time counts, and the CPU time (user + system of the child) is shown beside it
because on a shared machine wall time also measures the neighbours. Measured:

- check: `python -m patchgen.check_patchgen -q --no-import` (every config, in memory, compared with
  the committed files; the light-import path of `patchgen.light_imports`)
- codegen: `python -m patchgen.run_codegen --all --diff --dry-run`
- ruff floor: `ruff format` (pinned ruff, line length 119) on copies of the generated `.py` files,
  the one step every check must do
- for reference, once each: the check with real imports (`PATCHGEN_REAL_IMPORTS=1`) and the default
  check, which also imports every generated module in a subprocess
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float

    def __str__(self) -> str:
        return f"{self.wall:7.3f} s wall  {self.cpu:7.3f} s cpu"


def timed(command: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> Timing:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(wall, cpu)


def best(command: list[str], repeat: int, env: dict[str, str] | None = None, cwd: Path = ROOT) -> Timing:
    runs = [timed(command, env, cwd) for _ in range(repeat)]
    return min(runs, key=lambda t: t.wall)


def ruff_binary() -> str:
    from ruff.__main__ import find_ruff_bin

    return str(find_ruff_bin())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measured command (best wall time counts)")
    parser.add_argument("--skip-reference", action="store_true", help="skip the slow real-import reference runs")
    args = parser.parse_args()

    python = sys.executable
    generated = sorted(p for p in (ROOT / "generated").glob("*/patched_modeling_*.py"))
    configs = sorted((ROOT / "models").glob("**/*_patch_gen_config.py"))
    env = {k: v for k, v in os.environ.items() if k != "PATCHGEN_REAL_IMPORTS"}

    check = best([python, "-m", "patchgen.check_patchgen", "-q", "--no-import"], args.repeat, env)
    codegen = best([python, "-m", "patchgen.run_codegen", "--all", "--diff", "--dry-run"], args.repeat, env)
    with tempfile.TemporaryDirectory(prefix="bench-ruff-") as tmp:
        copies = []
        for i, path in enumerate(generated):
            copy = Path(tmp) / f"f{i}.py"
            shutil.copyfile(path, copy)
            copies.append(str(copy))
        ruff = best(
            [ruff_binary(), "format", "--no-cache", "--quiet", "--line-length", "119", *copies],
            args.repeat,
            cwd=Path(tmp),
        )

    print(f"patchgen benchmark: {len(configs)} configs, {len(generated)} generated files, {os.cpu_count()} CPU cores")
    rows = [
        ("check_patchgen -q --no-import", check),
        ("run_codegen --all --diff --dry-run", codegen),
        ("ruff format alone (the floor)", ruff),
    ]
    for label, timing in rows:
        print(f"  {label:<36} {timing}")
    print(f"  {'ratio check / floor':<36} {check.wall / ruff.wall:6.1f} x wall  {check.cpu / ruff.cpu:6.1f} x cpu")
    if not args.skip_reference:
        real = timed(
            [python, "-m", "patchgen.check_patchgen", "-q", "--no-import"], {**env, "PATCHGEN_REAL_IMPORTS": "1"}
        )
        full = timed([python, "-m", "patchgen.check_patchgen", "-q"], env)
        print("  for reference, one run each:")
        print(f"  {'check, real imports (no stubs)':<36} {real}")
        print(f"  {'check_patchgen -q (imports files)':<36} {full}")


if __name__ == "__main__":
    main()
