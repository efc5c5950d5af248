"""benchmarks/bench_train_step.py keeps working on CPU (`--smoke`) and survives failing variants.

The GPU numbers come from the lead's one GPU run; here we check the script end to end with tiny shapes, and
the parts that make that run robust: the max-seq search, OOM capture, crashed and hung workers.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from benchmarks import bench_train_step as bench
from tests.equivalence.runner import PROJECT_ROOT


SCRIPT = PROJECT_ROOT / "benchmarks" / "bench_train_step.py"


@pytest.fixture(scope="module")
def smoke_output() -> str:
    # qwen3 only: each worker process pays ~5 s of imports, and llama runs the same code with another shape dict
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--models", "qwen3"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed.stdout


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else [""]


def _rows(output: str, model: str, variant: str) -> list[list[str]]:
    return [cells for cells in map(_cells, output.splitlines()) if cells[:2] == [model, variant]]


@pytest.mark.slow
def test_smoke_measures_stock_and_generated_for_every_shape(smoke_output: str):
    for variant in ("stock", "generated"):
        steps = [row for row in _rows(smoke_output, "qwen3", variant) if row[2] in ("1x64", "1x128")]
        assert [row[2] for row in steps] == ["1x64", "1x128"], smoke_output
        for row in steps:
            assert row[3] == "ok" and float(row[4].replace(",", "")) > 0
    generated = _rows(smoke_output, "qwen3", "generated")[0]
    assert generated[6].endswith(" mem") and "x speed" in generated[6]  # generated/stock ratio is printed


@pytest.mark.slow
def test_smoke_reports_unrunnable_variants_with_a_reason_instead_of_failing(smoke_output: str):
    liger = _rows(smoke_output, "qwen3", "liger")
    if torch.cuda.is_available():
        assert liger and liger[0][3] in ("ok", "skipped")
    else:
        assert liger[0][3] == "skipped" and "need CUDA" in liger[0][-1]


@pytest.mark.slow
def test_smoke_prints_max_seq_search_and_per_op_table(smoke_output: str):
    assert "## Largest sequence length per variant" in smoke_output
    assert _rows(smoke_output, "qwen3", "stock")[-1][2:] == ["512", "-", "fits the cap (512)"]
    ops_section = smoke_output.split("## Per-op microbenchmark", 1)[1]
    rows = {row[1]: row for row in (_cells(line) for line in ops_section.splitlines()) if row[0] == "qwen3"}
    assert set(rows) == {"rms_norm", "swiglu", "rope", "loss"}, ops_section
    assert all(row[3].endswith(" ms") for row in rows.values())  # the torch side always runs
    assert "SMOKE run" in smoke_output


def _fake_try(fits_up_to: int, calls: list[int]):
    def try_seq(seq: int) -> bench.Guarded:
        calls.append(seq)
        return bench.Guarded("ok", 0.01) if seq <= fits_up_to else bench.Guarded("OOM", message="CUDA out of memory")

    return try_seq


def test_max_seq_search_doubles_until_the_first_oom():
    calls: list[int] = []
    found = bench.find_max_seq_len(_fake_try(40000, calls), 8192, 131072, time.time() + 60, known={8192: "ok"})
    assert (found.largest_fit, found.first_oom) == (32768, 65536)
    assert calls == [16384, 32768, 65536]  # 8192 was already measured; nothing runs past the first OOM


def test_max_seq_search_stops_at_the_cap_and_at_the_deadline():
    found = bench.find_max_seq_len(_fake_try(10**9, []), 8192, 32768, time.time() + 60)
    assert (found.largest_fit, found.first_oom, found.note) == (32768, None, "fits the cap (32768)")
    slow = lambda seq: bench.Guarded("ok", 100.0)  # noqa: E731 - a step that would pass the deadline next time
    found = bench.find_max_seq_len(slow, 8192, 65536, time.time() + 60)
    assert (found.largest_fit, found.note) == (8192, "time budget: stopped before 16384")


def test_oom_and_other_failures_become_statuses():
    def out_of_memory():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    assert bench.run_guarded(out_of_memory).status == "OOM"
    failed = bench.run_guarded(lambda: 1 / 0)
    assert (failed.status, failed.message) == ("error", "ZeroDivisionError: division by zero")
    assert bench.run_guarded(lambda: 7).value == 7


PLAN = bench.Plan(
    model="qwen3",
    variant="stock",
    smoke=True,
    shapes=[(1, 64)],
    warmup=1,
    steps=1,
    max_seq_start=64,
    max_seq_cap=0,
    ops_tokens=64,
    soft_deadline=0.0,
    dtype="float32",
)


def test_a_crashed_worker_is_reported_and_the_run_goes_on():
    result = bench.run_worker(
        PLAN, timeout=60, command=[sys.executable, "-c", "print('loading'); raise SystemExit(3)"]
    )
    assert result["status"] == "crashed"
    assert result["reason"] == "worker exited with 3 and no result: loading"


def test_a_hung_worker_is_killed_at_its_timeout():
    result = bench.run_worker(PLAN, timeout=1, command=[sys.executable, "-c", "import time; time.sleep(60)"])
    assert result["status"] == "timeout"


def test_variants_that_cannot_run_are_skipped_with_a_reason_before_starting_a_worker(monkeypatch):
    missing = bench.ModelShape("nosuchmodel", "Qwen3Config", "Qwen3ForCausalLM", "apply_liger_kernel_to_qwen3", {})
    monkeypatch.setitem(bench.MODELS, "nosuchmodel", missing)
    reason = bench.unavailable_before_starting("nosuchmodel", "generated", cuda_available=False)
    assert reason == "generated/nosuchmodel/patched_modeling_nosuchmodel_cpu.py does not exist (not generated yet)"
    assert bench.unavailable_before_starting("qwen3", "liger", cuda_available=False) == (
        "Liger's Triton kernels need CUDA"
    )
    assert bench.unavailable_before_starting("qwen3", "stock", cuda_available=False) is None


def test_a_worker_killed_after_measuring_keeps_its_last_reported_result():
    partial = {"model": "qwen3", "variant": "stock", "status": "ok", "runs": [], "max_seq": {"note": "cut short"}}
    script = f"import json, time; print({bench.RESULT_PREFIX!r} + json.dumps({partial!r}), flush=True); time.sleep(60)"
    result = bench.run_worker(PLAN, timeout=2, command=[sys.executable, "-c", script])
    assert result == partial
