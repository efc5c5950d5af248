"""How long does the upgrade report take for an upstream jump? Old code beside new, in one run.

    python benchmarks/bench_upgrade_report.py [--upstream /tmp/tf525] [--old 9f1d4fc] [--old-cap 120]

Run from the project root with the old upstream's locks committed (`generated/*/*.lock.json`) and the
new upstream unpacked at `--upstream` (put first on `PYTHONPATH`, as `PYTHONPATH=/tmp/tf525 python -m
patchgen.commands.upgrade_report` does). Each command runs in a fresh interpreter, as a user runs it:

- new, cold: `python -m patchgen.upgrade_report --no-cache` (every lock compared, every hunk classified)
- new, warm: `python -m patchgen.upgrade_report` twice, the second timed (the stored report, after its
  recorded inputs are found unchanged)
- new, check: `python -m patchgen.check_patchgen --no-import --no-cache`'s upgrade part is not timed
  here (it regenerates every config); `--with-check` adds it
- old: the same report from commit `--old` (its `patchgen/`, `generated/`, `models/` copied to a temp
  dir with `git archive`), capped at `--old-cap` seconds: it is killed there, and shown as `>cap`

Wall time and CPU time (user + system of the child) are shown side by side: on a shared machine wall
time also measures the neighbours. This is a script, not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent


def timed(command: list[str], cwd: Path, env: dict[str, str], cap: float | None = None) -> tuple[str, str, int]:
    """(wall, cpu, exit status) of one command; wall is `>cap` when it was killed at the cap."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, err = process.communicate(timeout=cap)
        wall = f"{time.monotonic() - started:.1f}s"
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        wall = f">{cap:.0f}s (killed)"
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, f"{cpu:.1f}s", process.returncode


def old_tree(commit: str, folder: Path) -> None:
    archive = subprocess.run(
        ["git", "archive", commit, "patchgen", "generated", "models", "pyproject.toml"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", default="/tmp/tf525", help="the new upstream, first on PYTHONPATH")
    parser.add_argument("--old", default="9f1d4fc", help="the commit whose report is the baseline")
    parser.add_argument("--old-cap", type=float, default=120.0, help="seconds before the old report is killed")
    parser.add_argument("--with-check", action="store_true", help="also time check_patchgen --no-import --no-cache")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    python = sys.executable
    rows = []

    def run(label: str, command: list[str], cwd: Path, pythonpath: str, cap: float | None = None) -> None:
        wall, cpu, status = timed(command, cwd, {**env, "PYTHONPATH": pythonpath}, cap)
        rows.append((label, wall, cpu, status))
        print(f"{label:<34} wall {wall:<18} cpu {cpu:<8} exit {status}", file=sys.stderr)

    report = [python, "-m", "patchgen.commands.upgrade_report"]
    run("new, cold (--no-cache)", [*report, "--no-cache"], ROOT, args.upstream)
    subprocess.run(report, cwd=ROOT, env={**env, "PYTHONPATH": args.upstream}, capture_output=True)
    run("new, warm", report, ROOT, args.upstream)
    if args.with_check:
        check = [python, "-m", "patchgen.commands.check_patchgen", "--no-import", "--no-cache", "-q"]
        run("new, check (upgrade found)", check, ROOT, args.upstream, args.old_cap)
    with tempfile.TemporaryDirectory() as folder:
        old_tree(args.old, Path(folder))
        run(f"old {args.old}, cold", report, Path(folder), f"{args.upstream}:{folder}", args.old_cap)
    print()
    print(f"{'upgrade report':<34} {'wall':<18} {'cpu':<8} exit")
    for label, wall, cpu, status in rows:
        print(f"{label:<34} {wall:<18} {cpu:<8} {status}")


if __name__ == "__main__":
    main()
