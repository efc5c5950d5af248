#!/usr/bin/env python3
"""One training step (forward + backward, bf16) of a random-init model at a grid of shapes: stock HF vs Liger's
monkey patch vs the generated GPU file, plus each op's candidate kernels at the same token counts.

    python3 benchmarks/bench_train_step.py            # the GPU run: Qwen3-0.6B and Llama-3.2-1B shapes
    python3 benchmarks/bench_train_step.py --smoke    # tiny shapes, seconds, runs on CPU (CI keeps it working)

Grid: tokens per step 512, 2048, 8192 and 32768 (`--shapes`, batch x seq, default 1x512,1x2048,1x8192,4x8192)
for two model sizes with different hidden sizes (Qwen3-0.6B: hidden 1024, vocab 151936; Llama-3.2-1B:
hidden 2048, vocab 128256; `--layers` keeps the per-layer shapes with fewer layers). Printed as ONE table:
tokens/s (median of the timed steps), MFU, peak memory, and the generated file's ratios to stock and to
Liger measured side by side in this run, with the goals of issue 14 checked per row; then the largest
sequence that trains at batch 1 per variant; then the per-op table (torch / Liger / torch.compile /
chunked / Cut Cross-Entropy at every token count), which is also the measurement behind the loss's
size threshold (patchgen.runtime.losses.FUSED_LINEAR_CROSS_ENTROPY_MIN_LOGITS).

MFU = tokens/s x FLOPs per token / the GPU's peak dense bf16 FLOP/s, with (PaLM, appendix B)
    FLOPs per token = 6 x N + 12 x L x H x S
N: parameters used in a matmul (all but the input embedding table, plus vocab x hidden for lm_head even when
tied), L layers, H = attention heads x head_dim, S the sequence length (attention counted in full).

Time: `--budget-s` bounds the whole run. Each job (a model x variant, or a model's ops) gets an equal share of
what is left (the ops job twice one) and is killed 10 s past it, so no job starves the next; within its share
a job plans: fewer timed steps first (down to 5, after 2 warm-up steps, 5 for a variant's first shape), then
the largest shapes are skipped, then the max-seq search (one forward + backward per size: 16384, 32768, 65536
with the default grid) stops early; every skip is printed with its reason. Each (model, variant) runs in its own
process: Liger's monkey patch rewrites the transformers module for the whole process. A variant that runs
out of memory, fails or hangs is reported as such; the run always prints its tables.

Needs only torch, transformers, triton, liger-kernel (and cut-cross-entropy for the cce loss candidate): it
imports the generated file and models/common straight from this checkout.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: benchmarks/ is on sys.path, the repo root is not
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.bench_worker import MODELS, OP_CANDIDATES, RESULT_PREFIX, VARIANTS, Plan, log  # noqa: E402


DEFAULT_SHAPES = "1x512,1x2048,1x8192,4x8192"
SMOKE_SHAPES = "1x64,1x128"
# Before anything is skipped, every measured shape gets MIN_STEPS timed steps after at least 2 warm-up steps
# (`--warmup`), and the first shape of each variant FIRST_SHAPE_EXTRA_WARMUP more: its first steps pay for
# Triton's autotuning and cuBLAS's heuristics (GPU run 1 timed Liger after 2 warm-up steps and 5-6 timed ones:
# Qwen3 1x8192 read 39.2k tokens/s against 48.1k the run before).
MIN_STEPS = 5
FIRST_SHAPE_EXTRA_WARMUP = 3
# The max-seq search: batch 1, doubling from twice the grid's longest sequence up to the cap, one forward +
# backward per size, stopping at the first OOM (default grid: 16384, 32768, 65536).
DEFAULT_MAX_SEQ_CAP = 65536
# A worker may run this long past its share before it is killed (a share is a soft deadline the worker plans
# to; the kill only catches hangs): so no job can eat the next one's time.
WORKER_OVERRUN_S = 10.0
OPS_WEIGHT = (
    2.0  # the ops job times ~12 kernels at 4 sizes per model: its share of the budget, relative to a variant's
)
# Peak dense bf16 tensor-core FLOP/s by device name (NVIDIA datasheets); --peak-tflops for any other
PEAK_BF16_TFLOPS = {"H200": 989.4, "H100 PCIe": 756.0, "H100": 989.4, "A100": 312.0}
# Issue 14's goals for the generated file, checked per row of the grid table
GOAL_MEMORY_OVER_LIGER = 1.05  # where seq >= GOAL_MEMORY_MIN_SEQ
GOAL_MEMORY_MIN_SEQ = 8192
GOAL_QWEN3_SPEEDUP_AT_8192 = 1.35


class UsageError(Exception):
    """A bad argument: one line, exit 2, before anything heavy runs."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: one line too, not usage + message
        raise UsageError(message)


def parse_shapes(text: str) -> list[tuple[int, int]]:
    shapes = []
    for item in text.split(","):
        batch, x, seq = item.strip().partition("x")
        if not (x and batch.isdigit() and seq.isdigit() and int(batch) > 0 and int(seq) > 0):
            raise UsageError(f"--shapes: {item.strip()!r} is not BATCHxSEQ with positive integers (e.g. 1x2048)")
        shapes.append((int(batch), int(seq)))
    return shapes


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = OneLineParser(
        prog="bench_train_step.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny shapes and few steps: seconds, runs on CPU")
    parser.add_argument("--models", default="qwen3,llama", help="comma-separated, from: " + ", ".join(MODELS))
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS))
    parser.add_argument("--shapes", help=f"batch x seq list (default {DEFAULT_SHAPES}; smoke {SMOKE_SHAPES})")
    parser.add_argument("--layers", type=int, help="num_hidden_layers (default: the model's; same per-layer shapes)")
    parser.add_argument("--warmup", type=int, help="untimed steps per shape (default 2; smoke 1)")
    parser.add_argument("--steps", type=int, help="most timed steps per shape, median reported (default 10; smoke 3)")
    parser.add_argument(
        "--max-seq-cap", type=int, help=f"max-seq search cap, 0 = off (default {DEFAULT_MAX_SEQ_CAP}; smoke 512)"
    )
    parser.add_argument("--no-ops", action="store_true", help="skip the per-op microbenchmark")
    parser.add_argument("--budget-s", type=float, default=300.0, help="wall-clock budget for the whole run (s)")
    parser.add_argument("--peak-tflops", type=float, help="peak bf16 TFLOP/s for MFU (default: by GPU name)")
    args = parser.parse_args(argv)
    validate(args)
    return args


def validate(args: argparse.Namespace) -> None:
    """Every argument checked before any worker starts; the first problem raises UsageError."""
    for flag, names, known in (("--models", args.models, MODELS), ("--variants", args.variants, VARIANTS)):
        unknown = [name for name in names.split(",") if name not in known]
        if unknown:
            raise UsageError(f"{flag}: unknown {unknown[0]!r}; choose from {', '.join(known)}")
    args.shape_list = parse_shapes(args.shapes or (SMOKE_SHAPES if args.smoke else DEFAULT_SHAPES))
    positive = {"--steps": args.steps, "--layers": args.layers, "--budget-s": args.budget_s}
    positive["--peak-tflops"] = args.peak_tflops
    for flag, value in positive.items():
        if value is not None and not value > 0:
            raise UsageError(f"{flag} must be positive, not {value:g}")
    for flag, value in (("--warmup", args.warmup), ("--max-seq-cap", args.max_seq_cap)):
        if value is not None and value < 0:
            raise UsageError(f"{flag} must be 0 or more, not {value}")


# ====================================================================================================
# Scheduling: one worker process per job, each with its share of the budget
# ====================================================================================================
def parse_worker_output(returncode: int, stdout: str, plan: Plan) -> dict:
    """The worker's last result line, or a result saying how the worker died."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    tail = " | ".join(stdout.strip().splitlines()[-3:])
    return {
        "model": plan.model,
        "variant": plan.variant,
        "status": "crashed",
        "reason": f"worker exited with {returncode} and no result{': ' + tail if tail else ''}",
    }


def run_worker(plan: Plan, timeout: float, command: list[str] | None = None) -> dict:
    """Run one worker process; its result, or a result saying it crashed or ran out of time."""
    command = command or [sys.executable, "-m", "benchmarks.bench_worker", json.dumps(asdict(plan))]
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "TOKENIZERS_PARALLELISM": "false",
        # the same allocator for every variant: fewer false OOMs from fragmentation in the max-seq search
        "PYTORCH_CUDA_ALLOC_CONF": os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True"),
    }
    try:
        # stderr is not captured: the worker's warnings show up live; stdout carries progress and the result
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT)
    except OSError as error:
        return {"model": plan.model, "variant": plan.variant, "status": "crashed", "reason": str(error)}
    # A hung worker (a stuck kernel compile, a deadlock) prints nothing: a timer kills it so the loop ends.
    killer = threading.Timer(timeout, process.kill)
    killer.start()
    lines: list[str] = []
    try:
        for line in process.stdout:  # progress lines are echoed as they come
            lines.append(line)
            if not line.startswith(RESULT_PREFIX):
                print(line, end="", flush=True)
        process.wait()
    finally:
        timed_out = not killer.is_alive()
        killer.cancel()
    if timed_out and not any(line.startswith(RESULT_PREFIX) for line in lines):
        return {
            "model": plan.model,
            "variant": plan.variant,
            "status": "timeout",
            "reason": f"no result within {timeout:.0f}s (budget); killed",
        }
    return parse_worker_output(process.returncode, "".join(lines), plan)


def unavailable_before_starting(model: str, variant: str, cuda_available: bool) -> str | None:
    """Reasons a worker would only report a skip: known here without paying for its start-up (imports)."""
    if variant in ("liger", "generated") and cuda_available and importlib.util.find_spec("liger_kernel") is None:
        return "liger_kernel is not installed"
    if variant == "liger" and not cuda_available:
        return "Liger's Triton kernels need CUDA"
    if variant == "generated":
        path = MODELS[model].generated_file("gpu" if cuda_available else "cpu")
        if not path.is_file():
            return f"{path.relative_to(REPO_ROOT)} does not exist (not generated yet)"
    return None


def make_plan(args: argparse.Namespace, model: str, variant: str, dtype: str, deadline: float) -> Plan:
    shapes = sorted(args.shape_list, key=lambda shape: shape[0] * shape[1])  # largest last: skipped first
    steps = args.steps if args.steps is not None else (3 if args.smoke else 10)
    cap = args.max_seq_cap if args.max_seq_cap is not None else (512 if args.smoke else DEFAULT_MAX_SEQ_CAP)
    warmup = args.warmup if args.warmup is not None else (1 if args.smoke else 2)
    return Plan(
        model=model,
        variant=variant,
        smoke=args.smoke,
        shapes=shapes,
        warmup=warmup,
        first_warmup=warmup + (0 if args.smoke else FIRST_SHAPE_EXTRA_WARMUP),
        steps=steps,
        min_steps=min(MIN_STEPS, steps),
        max_seq_start=2 * max(seq for _, seq in shapes),  # the grid measured the longest one already
        max_seq_cap=cap,
        dtype=dtype,
        soft_deadline=deadline,
        layers=args.layers,
        ops_tokens=sorted({batch * seq for batch, seq in shapes}),
    )


def run_jobs(args: argparse.Namespace, cuda_available: bool, started: float) -> list[dict]:
    dtype = "bfloat16" if cuda_available else "float32"
    models = args.models.split(",")
    jobs = [(model, variant) for model in models for variant in args.variants.split(",")]
    if not args.no_ops:
        jobs.append((args.models, "ops"))  # one process for every model's ops; last: the grid comes first
    results = []
    for index, (model, variant) in enumerate(jobs):
        remaining = args.budget_s - (time.time() - started)
        reason = None if variant == "ops" else unavailable_before_starting(model, variant, cuda_available)
        if reason or remaining < 10:
            reason = reason or "time budget spent"
            results.append({"model": model, "variant": variant, "status": "skipped", "reason": reason})
            log(f"[{index + 1}/{len(jobs)}] {model}/{variant}: skipped, {reason}")
            continue
        weights = [OPS_WEIGHT if v == "ops" else 1.0 for _, v in jobs[index:]]
        share = remaining * weights[0] / sum(weights)
        plan = make_plan(args, model, variant, dtype, time.time() + share)
        log(f"[{index + 1}/{len(jobs)}] {model}/{variant} (t={time.time() - started:.0f}s, share {share:.0f}s)")
        result = run_worker(plan, timeout=min(remaining, share + WORKER_OVERRUN_S))
        if result["status"] != "ok":
            log(f"  [{model}/{variant}] {result['status']}: {result.get('reason', '')}")
        results.append(result)
    return results


# ====================================================================================================
# Tables
# ====================================================================================================
def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    line = lambda row: "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator and denominator else None


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def peak_flops(device: str, override_tflops: float | None) -> float | None:
    if override_tflops:
        return override_tflops * 1e12
    for name, tflops in PEAK_BF16_TFLOPS.items():  # ordered: "H100 PCIe" before "H100"
        if name in device:
            return tflops * 1e12
    return None


def mfu(result: dict, run: dict, peak: float | None) -> str:
    formula = result.get("flops_per_token")
    if not peak or not formula:
        return "n/a"
    per_token = formula["dense"] + formula["attention_per_position"] * run["seq"]
    return f"{100 * run['tokens_per_s'] * per_token / peak:.1f}%"


def goal_check(model: str, run: dict, stock: dict | None, liger: dict | None) -> str:
    """Issue 14's goals at this grid point: speed >= best of stock and Liger; memory; Qwen3 at 8192 tokens."""
    verdicts = []
    best = max((r["tokens_per_s"] for r in (stock, liger) if r), default=None)
    if best:
        verdicts.append(f"speed {'ok' if run['tokens_per_s'] >= best else 'MISS'}")
    if run["seq"] >= GOAL_MEMORY_MIN_SEQ and liger and run["peak_gib"] and liger["peak_gib"]:
        fits = run["peak_gib"] <= GOAL_MEMORY_OVER_LIGER * liger["peak_gib"]
        verdicts.append(f"mem {'ok' if fits else 'MISS'}")
    if model == "qwen3" and run["batch"] * run["seq"] == 8192 and stock:
        fast = run["tokens_per_s"] >= GOAL_QWEN3_SPEEDUP_AT_8192 * stock["tokens_per_s"]
        verdicts.append(f">={GOAL_QWEN3_SPEEDUP_AT_8192}x stock {'ok' if fast else 'MISS'}")
    return ", ".join(verdicts)


def grid_table(results: list[dict], peak: float | None) -> str:
    by_key = {(r["model"], r["variant"]): r for r in results if r["variant"] != "ops"}

    def ok_run(model: str, variant: str, batch: int, seq: int) -> dict | None:
        for run in by_key.get((model, variant), {}).get("runs") or []:
            if (run["batch"], run["seq"]) == (batch, seq) and run["status"] == "ok":
                return run
        return None

    rows = []
    for (model, variant), result in by_key.items():
        if result["status"] != "ok":
            rows.append([model, "-", variant, result["status"], *[""] * 6, result.get("reason", "")])
            continue
        for run in result["runs"]:
            batch, seq = run["batch"], run["seq"]
            shape = f"{batch}x{seq}"
            if run["status"] != "ok":
                rows.append([model, shape, variant, run["status"], *[""] * 6, run.get("message", "")])
                continue
            stock, liger = ok_run(model, "stock", batch, seq), ok_run(model, "liger", batch, seq)
            versus = []
            for baseline in (stock, liger):
                speed = _ratio(run["tokens_per_s"], baseline and baseline["tokens_per_s"])
                memory = _ratio(run["peak_gib"], baseline and baseline["peak_gib"])
                versus.append("" if baseline is run or not baseline else f"{_x(speed)} speed, {_x(memory)} mem")
            peak_gib = "n/a" if run["peak_gib"] is None else f"{run['peak_gib']:.2f}"
            goal = goal_check(model, run, stock, liger) if variant == "generated" else ""
            note = run.get("path", "")
            rows.append(
                [model, shape, variant, "ok", f"{run['tokens_per_s']:,.0f}", mfu(result, run, peak), peak_gib]
                + [*versus, goal, note]
            )
    rows.sort(key=lambda row: (row[0], _tokens(row[1]), VARIANTS.index(row[2]) if row[2] in VARIANTS else 9))
    headers = ["model", "batch x seq", "variant", "status", "tokens/s", "MFU", "peak GiB", "vs stock", "vs liger"]
    return _table([*headers, "goal (generated)", "note"], rows)


def _tokens(shape: str) -> int:
    batch, _, seq = shape.partition("x")
    return int(batch) * int(seq) if batch.isdigit() and seq.isdigit() else 0


def max_seq_table(results: list[dict]) -> str:
    found = {(r["model"], r["variant"]): r["max_seq"] for r in results if r.get("max_seq")}
    rows = []
    for (model, variant), search in found.items():
        goal = ""
        liger = found.get((model, "liger"))
        if variant == "generated" and liger and liger["largest_fit"] and search["largest_fit"]:
            goal = "ok" if search["largest_fit"] >= liger["largest_fit"] else "MISS"
        rows.append(
            [
                model,
                variant,
                str(search["largest_fit"] or "none"),
                str(search["first_oom"] or "-"),
                goal,
                search["note"],
            ]
        )
    return _table(["model", "variant", "largest seq that fits (batch 1)", "first OOM", "goal >= liger", "note"], rows)


def ops_table(results: list[dict]) -> str:
    candidates = list(dict.fromkeys(c for names in OP_CANDIDATES.values() for c in names))
    rows = []
    for result in results:
        if result["variant"] != "ops":
            continue
        if result["status"] != "ok":
            rows.append(
                [result["model"], "-", "-", *[""] * len(candidates), result["status"], result.get("reason", "")]
            )
            continue
        for op in result["ops"]:
            cells = []
            for candidate in candidates:
                ms, mib = op["ms"].get(candidate), op["peak_mib"].get(candidate)
                cells.append("" if ms is None else f"{ms:.3f}" + ("" if mib is None else f" / {mib:.0f}"))
            fastest = min(op["ms"], key=op["ms"].get) if op["ms"] else "n/a"
            notes = "; ".join(f"{c}: {n}" for c, n in op["notes"].items())
            rows.append([op["model"], op["op"], str(op["tokens"]), *cells, fastest, notes])
        for tokens in result.get("skipped_tokens", []):
            rows.append([result["model"], "-", str(tokens), *[""] * len(candidates), "skipped", "time budget"])
    return _table(["model", "op (fwd+bwd)", "tokens", *(f"{c} ms / MiB" for c in candidates), "fastest", "note"], rows)


def loss_threshold_summary(results: list[dict]) -> list[str]:
    """Where the generated file's fused kernel (chunked) starts to beat upstream's materialised loss, per model."""
    from patchgen.runtime.losses import FUSED_LINEAR_CROSS_ENTROPY_MIN_LOGITS as threshold

    lines = [f"threshold in use: FUSED_LINEAR_CROSS_ENTROPY_MIN_LOGITS = {threshold:,} logits (tokens x vocab)"]
    points: dict[str, list[str]] = {}
    for result in results:
        if result["variant"] != "ops" or result["status"] != "ok":
            continue
        for op in result["ops"]:
            plain, fused = op["ms"].get("torch"), op["ms"].get("chunked")
            if op["op"] == "loss" and fused is not None:
                faster = "chunked" if plain is None or fused <= plain else "upstream"
                logits = op["tokens"] * op["vocab"]
                side = "fused" if logits >= threshold else "upstream"
                points.setdefault(op["model"], []).append(
                    f"{op['tokens']} tokens ({logits:.2e} logits, file takes {side}): {faster} faster"
                )
    lines += [f"  {model}: " + "; ".join(found) for model, found in points.items()]
    return lines


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as error:
        print(f"bench_train_step.py: error: {error}", file=sys.stderr)
        return 2
    started = time.time()
    import torch  # only to ask whether CUDA is there; the measuring happens in the workers

    cuda_available = torch.cuda.is_available()
    log(
        f"bench_train_step: {'SMOKE (tiny shapes) ' if args.smoke else ''}models {args.models}, variants "
        f"{args.variants}, shapes {args.shape_list}, {'bfloat16' if cuda_available else 'float32'}, "
        f"layers {args.layers or 'as the model'}, budget {args.budget_s:.0f}s"
    )
    results = run_jobs(args, cuda_available, started)
    device = next((r["device"] for r in results if r.get("device")), "unknown")
    peak = peak_flops(device, args.peak_tflops)
    log(f"\n## Training step (forward + backward), sdpa, on {device}; tokens/s: median of the timed steps")
    log(
        "MFU: tokens/s x (6 N + 12 L H S) / "
        + (f"{peak / 1e12:.1f} TFLOP/s peak bf16" if peak else "n/a (unknown GPU: pass --peak-tflops)")
        + f"; goals (generated rows): speed >= max(stock, liger); peak <= {GOAL_MEMORY_OVER_LIGER}x liger where seq >= "
        f"{GOAL_MEMORY_MIN_SEQ}; qwen3 at 8192 tokens >= {GOAL_QWEN3_SPEEDUP_AT_8192}x stock"
    )
    log(grid_table(results, peak))
    log("\n## Largest sequence length per variant (batch 1, doubling; a step is forward + backward)")
    log(max_seq_table(results))
    if not args.no_ops:
        log(
            "\n## Per-op microbenchmark, forward + backward, median ms / peak MiB above inputs, at each grid token count"
        )
        log(ops_table(results))
        log("\n## Loss: upstream's materialised logits vs the chunked kernel, by size")
        log("\n".join(loss_threshold_summary(results)))
    if args.smoke:
        log("\nSMOKE run: tiny shapes check that the script works; its numbers are not a benchmark.")
    log(f"\ntotal {time.time() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
