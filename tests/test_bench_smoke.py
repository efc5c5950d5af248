"""benchmarks/bench_train_step.py keeps working on CPU (`--smoke`), survives failing variants, fits its budget.

The GPU numbers come from the lead's one GPU run; here we check the script end to end with tiny shapes, and
the parts that make that run robust: argument checks before any work, the time planning (fewer steps, then
skipped shapes), the max-seq search, OOM capture, crashed and hung workers.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from benchmarks import bench_train_step as bench
from benchmarks import bench_worker as worker
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


def _section(output: str, title: str) -> str:
    return output.split(title, 1)[1].split("\n## ", 1)[0]


def _grid_rows(output: str, variant: str) -> list[list[str]]:
    section = _section(output, "## Training step")
    return [cells for cells in map(_cells, section.splitlines()) if cells[0] == "qwen3" and cells[2] == variant]


@pytest.mark.slow
def test_smoke_measures_stock_and_generated_for_every_shape_in_one_table(smoke_output: str):
    for variant in ("stock", "generated"):
        rows = _grid_rows(smoke_output, variant)
        assert [row[1] for row in rows] == ["1x64", "1x128"], smoke_output
        for row in rows:
            assert row[3] == "ok" and float(row[4].replace(",", "")) > 0
    generated = _grid_rows(smoke_output, "generated")[0]
    assert "x speed" in generated[7] and generated[7].endswith(" mem")  # generated/stock, side by side
    assert generated[9].startswith("speed ")  # the goal column judges the generated rows
    assert generated[10] == "loss: upstream"  # 64 tokens x vocab 256: below the fused-loss threshold


@pytest.mark.slow
def test_smoke_reports_unrunnable_variants_with_a_reason_instead_of_failing(smoke_output: str):
    section = _section(smoke_output, "## Training step")
    liger = [cells for cells in map(_cells, section.splitlines()) if cells[:1] == ["qwen3"] and cells[2] == "liger"]
    if torch.cuda.is_available():
        assert liger and liger[0][3] in ("ok", "skipped")
    else:
        assert liger[0][3] == "skipped" and "need CUDA" in liger[0][-1]


@pytest.mark.slow
def test_smoke_prints_max_seq_search_per_op_table_and_loss_threshold(smoke_output: str):
    max_seq = [_cells(line) for line in _section(smoke_output, "## Largest sequence").splitlines()]
    assert ["qwen3", "stock", "512", "-", "", "fits the cap (512)"] in max_seq
    ops = [_cells(line) for line in _section(smoke_output, "## Per-op microbenchmark").splitlines()]
    measured = {(row[1], row[2]) for row in ops if row[0] == "qwen3"}
    assert measured == {(op, tokens) for op in ("rms_norm", "swiglu", "rope", "loss") for tokens in ("64", "128")}
    loss_rows = [row for row in ops if row[:2] == ["qwen3", "loss"]]
    assert all(row[3] and row[6] for row in loss_rows)  # torch and chunked losses run anywhere
    assert "threshold in use: FUSED_LINEAR_CROSS_ENTROPY_MIN_LOGITS = 536,870,912" in smoke_output
    assert "SMOKE run" in smoke_output


# -- arguments: one line, exit 2, before any work ---------------------------------------------------

BAD_ARGUMENTS = {
    ("--shapes", "1xabc"): "--shapes: '1xabc' is not BATCHxSEQ with positive integers (e.g. 1x2048)",
    ("--shapes", "0x2048"): "--shapes: '0x2048' is not BATCHxSEQ with positive integers (e.g. 1x2048)",
    ("--shapes", "2048"): "--shapes: '2048' is not BATCHxSEQ with positive integers (e.g. 1x2048)",
    ("--steps", "0"): "--steps must be positive, not 0",
    ("--budget-s", "0"): "--budget-s must be positive, not 0",
    ("--layers", "-1"): "--layers must be positive, not -1",
    ("--warmup", "-1"): "--warmup must be 0 or more, not -1",
    ("--max-seq-cap", "-8"): "--max-seq-cap must be 0 or more, not -8",
    ("--peak-tflops", "0"): "--peak-tflops must be positive, not 0",
    ("--models", "qwen3,gpt2"): "--models: unknown 'gpt2'; choose from qwen3, llama",
    ("--variants", "fast"): "--variants: unknown 'fast'; choose from stock, liger, generated",
    ("--steps", "ten"): "argument --steps: invalid int value: 'ten'",
    ("--batch-size", "0"): "unrecognized arguments: --batch-size 0",
}


@pytest.mark.parametrize("argv, message", list(BAD_ARGUMENTS.items()), ids=[" ".join(a) for a in BAD_ARGUMENTS])
def test_bad_arguments_give_one_line_and_exit_2(capsys, argv, message):
    assert bench.main(list(argv)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"bench_train_step.py: error: {message}\n"


def test_bad_arguments_are_refused_before_torch_is_imported():
    code = (
        "import sys\nfrom benchmarks import bench_train_step as bench\n"
        "code = bench.main(['--steps', '0'])\nprint(code, 'torch' in sys.modules)"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert completed.stdout.split() == ["2", "False"], completed.stderr[-2000:]
    assert completed.stderr == "bench_train_step.py: error: --steps must be positive, not 0\n"


# -- time planning ------------------------------------------------------------------------------------

PLAN = worker.Plan(
    model="qwen3",
    variant="stock",
    smoke=True,
    shapes=[(1, 64)],
    warmup=2,
    first_warmup=5,
    steps=10,
    min_steps=3,
    max_seq_start=64,
    max_seq_cap=0,
    soft_deadline=0.0,
    dtype="float32",
)


def test_step_estimates_follow_the_measured_fixed_and_per_token_costs():
    # one point: in proportion to tokens (an overestimate for steps dominated by fixed costs)
    assert worker.estimate_step_seconds([(512, 0.06)], 2048) == pytest.approx(0.24)
    # two points: 50 ms fixed + 10 us per token, extrapolated to 32768 tokens
    assert worker.estimate_step_seconds([(1000, 0.06), (3000, 0.08)], 32768) == pytest.approx(0.05 + 0.32768)


def test_steps_shrink_to_fit_the_time_left_but_not_below_the_minimum():
    assert worker.steps_that_fit(PLAN, 100.0, 0.1, [0.2, 0.4]) == 10  # plenty of time: the most steps
    # 5 s left; later shapes' warm-ups take 2 x 0.6 s; each round (this shape + later ones) takes 0.7 s
    assert worker.steps_that_fit(PLAN, 5.0, 0.1, [0.2, 0.4]) == int((5.0 - 1.2) / 0.7) == 5
    assert worker.steps_that_fit(PLAN, 1.0, 0.1, [0.2, 0.4]) == 3  # short: the minimum, skipping comes later


def test_the_grid_skips_the_largest_shapes_when_time_runs_out(monkeypatch):
    """A tight share: the first shapes are measured with few steps, the largest are skipped and say why."""
    plan = worker.Plan(**{**PLAN.__dict__, "shapes": [(1, 64), (1, 128), (4, 4096)], "soft_deadline": time.time() + 2})
    calls, warmups = [], []

    class Model:
        config = None

        def named_parameters(self):
            return []

    def fake_measure(model, warmup, batch, seq, timed_steps):
        calls.append((batch, seq, timed_steps(0.01 * batch * seq / 64)))
        warmups.append(warmup)
        return {"tokens_per_s": 1.0, "step_ms": 10.0 * batch * seq / 64, "peak_gib": None, "timed_steps": 3}

    monkeypatch.setattr(worker, "model_class_for", lambda plan: (None, "fake"))
    monkeypatch.setattr(worker, "build_model", lambda plan, cls: Model())
    monkeypatch.setattr(worker, "describe_ops", lambda model: "fake")
    monkeypatch.setattr(worker, "loss_path", lambda model, b, s: "")
    monkeypatch.setattr(worker, "flops_per_token_formula", lambda config, params: {})
    monkeypatch.setattr(worker, "measure_shape", fake_measure)
    result = worker.run_variant(plan)
    statuses = [(run["batch"], run["seq"], run["status"]) for run in result["runs"]]
    assert statuses == [(1, 64, "ok"), (1, 128, "ok"), (4, 4096, "skipped")]
    assert result["runs"][2]["message"].startswith("time budget: ~")
    assert [steps for *_, steps in calls] == [3, 3]  # the time left allowed only the minimum
    assert warmups == [5, 2]  # the first shape warms up longer (autotuning)


def test_the_gpu_plan_keeps_warm_ups_and_five_timed_steps_and_searches_three_lengths():
    args = bench.parse_args(["--shapes", "1x512,4x8192,1x2048"])
    plan = bench.make_plan(args, "qwen3", "liger", "bfloat16", deadline=time.time() + 30)
    assert plan.shapes == [(1, 512), (1, 2048), (4, 8192)]
    assert (plan.warmup, plan.first_warmup, plan.min_steps, plan.steps) == (2, 5, 5, 10)
    calls: list[int] = []
    found = worker.find_max_seq_len(_fake_try(10**9, calls), plan.max_seq_start, plan.max_seq_cap, time.time() + 60)
    assert calls == [16384, 32768, 65536] and found.note == "fits the cap (65536)"


def test_jobs_share_the_budget_and_are_skipped_when_it_is_spent(monkeypatch, capsys):
    args = bench.parse_args(["--smoke", "--models", "qwen3", "--variants", "stock", "--budget-s", "50"])
    shares = []

    def fake_worker(plan, timeout):
        shares.append((plan.variant, round(plan.soft_deadline - time.time()), round(timeout)))
        return {"model": plan.model, "variant": plan.variant, "status": "ok", "runs": [], "ops": []}

    monkeypatch.setattr(bench, "run_worker", fake_worker)
    bench.run_jobs(args, cuda_available=False, started=time.time())
    # stock gets 1 / 3 of 50 s, the ops job (weight 2) the rest; each is killed 10 s past its share
    assert shares == [("stock", 17, 27), ("ops", 50, 50)]
    results = bench.run_jobs(args, cuda_available=False, started=time.time() - 45)
    assert [r["status"] for r in results] == ["skipped", "skipped"] and results[0]["reason"] == "time budget spent"


# -- robustness: the max-seq search, OOMs, crashed and hung workers ----------------------------------


def _fake_try(fits_up_to: int, calls: list[int]):
    def try_seq(seq: int) -> worker.Guarded:
        calls.append(seq)
        return worker.Guarded("ok", 0.01) if seq <= fits_up_to else worker.Guarded("OOM", message="CUDA out of memory")

    return try_seq


def test_max_seq_search_doubles_until_the_first_oom():
    calls: list[int] = []
    found = worker.find_max_seq_len(_fake_try(40000, calls), 8192, 131072, time.time() + 60, known={8192: "ok"})
    assert (found.largest_fit, found.first_oom) == (32768, 65536)
    assert calls == [16384, 32768, 65536]  # 8192 was already measured; nothing runs past the first OOM


def test_max_seq_search_stops_at_the_cap_and_at_the_deadline():
    found = worker.find_max_seq_len(_fake_try(10**9, []), 8192, 32768, time.time() + 60)
    assert (found.largest_fit, found.first_oom, found.note) == (32768, None, "fits the cap (32768)")
    slow = lambda seq: worker.Guarded("ok", 100.0)  # noqa: E731 - a step that would pass the deadline next time
    found = worker.find_max_seq_len(slow, 8192, 65536, time.time() + 60)
    assert (found.largest_fit, found.note) == (8192, "time budget: stopped before 16384")


def test_oom_and_other_failures_become_statuses():
    def out_of_memory():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    assert worker.run_guarded(out_of_memory).status == "OOM"
    failed = worker.run_guarded(lambda: 1 / 0)
    assert (failed.status, failed.message) == ("error", "ZeroDivisionError: division by zero")
    assert worker.run_guarded(lambda: 7).value == 7


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
    missing = worker.ModelShape("nosuchmodel", "Qwen3Config", "Qwen3ForCausalLM", "apply_liger_kernel_to_qwen3", {})
    monkeypatch.setitem(bench.MODELS, "nosuchmodel", missing)
    reason = bench.unavailable_before_starting("nosuchmodel", "generated", cuda_available=False)
    assert reason == "generated/nosuchmodel/patched_modeling_nosuchmodel_cpu.py does not exist (not generated yet)"
    assert bench.unavailable_before_starting("qwen3", "liger", cuda_available=False) == (
        "Liger's Triton kernels need CUDA"
    )
    assert bench.unavailable_before_starting("qwen3", "stock", cuda_available=False) is None


def test_a_worker_killed_after_measuring_keeps_its_last_reported_result():
    partial = {"model": "qwen3", "variant": "stock", "status": "ok", "runs": [], "max_seq": {"note": "cut short"}}
    script = (
        f"import json, time; print({worker.RESULT_PREFIX!r} + json.dumps({partial!r}), flush=True); time.sleep(60)"
    )
    result = bench.run_worker(PLAN, timeout=2, command=[sys.executable, "-c", script])
    assert result == partial


# -- the table's arithmetic ---------------------------------------------------------------------------


def test_mfu_uses_the_stated_formula():
    result = {"flops_per_token": {"dense": 6 * 1000, "attention_per_position": 12 * 2 * 4}}
    run = {"seq": 100, "tokens_per_s": 1e6}
    # (6 N + 12 L H S) x tokens/s / peak = (6000 + 9600) x 1e6 / 1e12
    assert bench.mfu(result, run, peak=1e12) == f"{100 * 15600e6 / 1e12:.1f}%"
    assert bench.peak_flops("NVIDIA H100 PCIe", None) == 756e12 and bench.peak_flops("NVIDIA H200", None) == 989.4e12
    assert bench.peak_flops("some GPU", None) is None and bench.peak_flops("some GPU", 100.0) == 1e14


def test_goals_are_judged_per_grid_point():
    stock = {"tokens_per_s": 100.0, "peak_gib": 30.0}
    liger = {"tokens_per_s": 120.0, "peak_gib": 10.0}
    fast = {"batch": 1, "seq": 8192, "tokens_per_s": 140.0, "peak_gib": 10.4}
    assert bench.goal_check("qwen3", fast, stock, liger) == "speed ok, mem ok, >=1.35x stock ok"
    slow = {**fast, "tokens_per_s": 110.0, "peak_gib": 11.0}
    assert bench.goal_check("qwen3", slow, stock, liger) == "speed MISS, mem MISS, >=1.35x stock MISS"
    short = {**fast, "seq": 2048}  # no memory goal below 8192 tokens, no 1.35x goal off 8192 tokens
    assert bench.goal_check("llama", short, stock, liger) == "speed ok"
