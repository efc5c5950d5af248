"""The cold check, this layout against earlier ones, measured side by side in one run.

    python benchmarks/bench_cold_check.py [--runs N] [--rev REV ...] [--cpus 0,1]

Each revision (default: `9bc870b`, the layout before issue 20, and `HEAD`) is checked out with
`git worktree add --detach` into a temporary folder and checked there as a user runs it:
`python -m patchgen.check_patchgen --no-cache` in a fresh interpreter of this environment (the same
torch, transformers and ruff for every revision, so every revision reads the same inputs; the
worktree's own `patchgen/` comes first on `sys.path`). That is every config imported for real,
generated, formatted, compared with its committed files, its lock and the upgrade report, and every
generated module imported in the subprocess the check starts first.

The runs alternate between the revisions (A B A B ...) so that a neighbour's load falls on both
alike; the median wall time counts, min and max show the spread, and the CPU time (user + system of
the check and its children) is printed beside it because on a shared machine wall time also measures
the neighbours. A run that does not say OK is reported and not counted. `--cpus` pins the checks to
those cores (`os.sched_setaffinity`), to measure a 2-core budget on a larger machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REVS = ["9bc870b", "HEAD"]
CHECK = ["-m", "patchgen.check_patchgen", "--no-cache"]
TARGET_SECONDS = 8.0


@dataclass
class Series:
    rev: str
    commit: str
    folder: Path
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    configs: int = 0  # as the check's OK line counts them

    def line(self) -> str:
        if not self.walls:
            return f"  {self.label():28s} no successful run ({len(self.failures)} failed)"
        return (
            f"  {self.label():28s} median {statistics.median(self.walls):6.2f} s wall "
            f"(min {min(self.walls):6.2f}, max {max(self.walls):6.2f})  "
            f"median {statistics.median(self.cpus):6.2f} s cpu  n={len(self.walls)}  "
            f"{self.configs} configs, {statistics.median(self.walls) / max(self.configs, 1):.3f} s wall per config"
            + (f"  ({len(self.failures)} failed)" if self.failures else "")
        )

    def label(self) -> str:
        return f"{self.rev} ({self.commit[:9]})"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def run_once(series: Series, cpus: set[int] | None) -> None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, *CHECK],
        cwd=series.folder,
        capture_output=True,
        text=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    output = (result.stdout + result.stderr).strip()
    last = output.splitlines()[-1] if output else ""
    if result.returncode != 0 or ": OK (" not in last:
        series.failures.append(f"exit {result.returncode}: {output[-400:]}")
        print(f"    {series.label()}: FAILED ({result.returncode}) {wall:.2f} s", flush=True)
        return
    series.walls.append(wall)
    series.cpus.append(cpu)
    series.configs = int(last.split(": OK (", 1)[1].split(" ", 1)[0])
    print(f"    {series.label()}: {wall:6.2f} s wall {cpu:6.2f} s cpu", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each revision (alternated)")
    parser.add_argument("--rev", action="append", help=f"a revision to measure (repeatable; default {DEFAULT_REVS})")
    parser.add_argument("--cpus", help="pin the checks to these cores, e.g. 0,1")
    args = parser.parse_args()
    revs = args.rev or DEFAULT_REVS
    cpus = {int(c) for c in args.cpus.split(",")} if args.cpus else None
    with tempfile.TemporaryDirectory(prefix="patchgen-bench-") as tmp:
        all_series = []
        try:
            for index, rev in enumerate(revs):
                commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
                folder = Path(tmp) / f"{index}-{commit[:9]}"
                git("worktree", "add", "--detach", "--quiet", str(folder), commit)
                all_series.append(Series(rev, commit, folder))
            for series in all_series:  # warm the page cache and the .pyc files, not counted
                run_once(series, cpus)
                series.walls.clear(), series.cpus.clear(), series.failures.clear()
            for round_ in range(args.runs):
                print(f"  round {round_ + 1}/{args.runs}", flush=True)
                for series in all_series if round_ % 2 == 0 else reversed(all_series):
                    run_once(series, cpus)
        finally:
            for series in all_series:
                git("worktree", "remove", "--force", str(series.folder))
        report(all_series, cpus, args.runs)


def report(all_series: list[Series], cpus: set[int] | None, runs: int) -> None:
    cores = len(cpus) if cpus else os.cpu_count()
    print()
    print(
        f"cold check (`python -m patchgen.check_patchgen --no-cache`), {runs} alternated runs each, "
        f"{cores} CPU cores{' (pinned)' if cpus else ''}, {date.today().isoformat()}, "
        f"{platform.machine()} Python {platform.python_version()}, load average at the end: "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    for series in all_series:
        print(series.line())
    base, *others = all_series
    for other in others:
        if base.walls and other.walls:
            ratio = statistics.median(base.walls) / statistics.median(other.walls)
            cpu_ratio = statistics.median(base.cpus) / statistics.median(other.cpus)
            print(f"  ratio {base.rev} / {other.rev}: {ratio:.2f} x wall, {cpu_ratio:.2f} x cpu (medians)")
            if base.configs and other.configs:
                per_config = (statistics.median(base.walls) / base.configs) / (
                    statistics.median(other.walls) / other.configs
                )
                print(f"  ratio per config {base.rev} / {other.rev}: {per_config:.2f} x wall")
    newest = all_series[-1]
    if newest.walls:
        median = statistics.median(newest.walls)
        verdict = "met" if median <= TARGET_SECONDS else "NOT met"
        print(
            f"  target (issue 20): the cold check of every config <= {TARGET_SECONDS:.0f} s on 2 cores: {verdict} "
            f"({newest.rev}: {median:.2f} s for {newest.configs} configs on {cores} cores)"
        )
    for series in all_series:
        for failure in series.failures[:1]:
            print(f"  {series.label()} failed: {failure}")


if __name__ == "__main__":
    main()
