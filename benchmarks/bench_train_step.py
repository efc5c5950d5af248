#!/usr/bin/env python3
"""One training step (forward + backward) of a random-init model: stock HF vs Liger's monkey patch vs the
generated GPU file, plus a per-op microbenchmark (torch vs Liger) at the same shapes.

    python3 benchmarks/bench_train_step.py            # the GPU run: Qwen3-0.6B and Llama-3.2-1B shapes, bf16
    python3 benchmarks/bench_train_step.py --smoke    # tiny shapes, seconds, runs on CPU (CI keeps it working)

Each (model, variant) runs in its own subprocess: Liger's monkey patch rewrites the transformers module for
the whole process, so stock numbers measured after it would not be stock. A variant that runs out of memory,
fails or hangs is reported as such; the run always goes on and always prints its tables.

Needs only torch, transformers, triton and liger-kernel (for the Liger and generated variants): it imports
the generated file straight from this checkout.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[1]
RESULT_PREFIX = "BENCH_RESULT "
VARIANTS = ("stock", "liger", "generated")


def log(message: str) -> None:
    print(message, flush=True)


# ====================================================================================================
# Model shapes
# ====================================================================================================
@dataclass(frozen=True)
class ModelShape:
    name: str  # the directory under generated/, and transformers.models.<name>
    config_class: str
    causal_lm_class: str
    liger_patch: str  # the liger_kernel.transformers function that monkey-patches this architecture
    config_kwargs: dict

    @property
    def prefix(self) -> str:
        return self.causal_lm_class.removesuffix("ForCausalLM")  # Qwen3, Llama: names of the stock modules

    def generated_file(self, variant: str) -> Path:
        return REPO_ROOT / "generated" / self.name / f"patched_modeling_{self.name}_{variant}.py"


MODELS = {
    # Qwen3-0.6B
    "qwen3": ModelShape(
        "qwen3",
        "Qwen3Config",
        "Qwen3ForCausalLM",
        "apply_liger_kernel_to_qwen3",
        dict(
            hidden_size=1024,
            intermediate_size=3072,
            num_hidden_layers=28,
            num_attention_heads=16,
            num_key_value_heads=8,
            head_dim=128,
            vocab_size=151936,
            tie_word_embeddings=True,
            max_position_embeddings=131072,
            rms_norm_eps=1e-6,
        ),
    ),
    # Llama-3.2-1B
    "llama": ModelShape(
        "llama",
        "LlamaConfig",
        "LlamaForCausalLM",
        "apply_liger_kernel_to_llama",
        dict(
            hidden_size=2048,
            intermediate_size=8192,
            num_hidden_layers=16,
            num_attention_heads=32,
            num_key_value_heads=8,
            head_dim=64,
            vocab_size=128256,
            tie_word_embeddings=True,
            max_position_embeddings=131072,
            rms_norm_eps=1e-5,
        ),
    ),
}
SMOKE_SHAPE = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    vocab_size=256,
)


@dataclass
class Plan:
    """What one worker measures; the parent writes it as JSON on the worker's command line."""

    model: str  # for the "ops" job: comma-separated, all models in one process
    variant: str  # stock, liger, generated; or "ops" for the per-op microbenchmark
    smoke: bool
    shapes: list[tuple[int, int]]  # (batch, seq)
    warmup: int
    steps: int
    max_seq_start: int
    max_seq_cap: int  # 0: no search
    ops_tokens: int
    dtype: str  # bfloat16; float32 for a CPU smoke run (CPU bf16 kernels spend seconds in JIT warm-up)
    soft_deadline: float  # time.time() after which the optional max-seq search stops

    def config_kwargs(self, model: str | None = None) -> dict:
        kwargs = dict(MODELS[model or self.model].config_kwargs)
        if self.smoke:
            kwargs.update(SMOKE_SHAPE)
        return kwargs


# ====================================================================================================
# Worker side: runs in a fresh process per (model, variant)
# ====================================================================================================
@dataclass
class Guarded:
    status: str  # ok, OOM, error
    value: object = None
    message: str = ""


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:200]


def run_guarded(function: Callable[[], object]) -> Guarded:
    """Run one measurement; an OOM or any other failure becomes a status, and the memory is given back."""
    import torch

    try:
        return Guarded("ok", function())
    except torch.OutOfMemoryError as error:
        outcome = Guarded("OOM", message=_one_line(error))
    except Exception as error:  # noqa: BLE001 - a failing variant is reported, never fatal to the run
        outcome = Guarded("error", message=f"{type(error).__name__}: {_one_line(error)}")
    release_memory()  # after the except block: the traceback (and the tensors its frames hold) is gone
    return outcome


def release_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def reset_peak_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gib() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


class VariantUnavailable(Exception):
    """The variant cannot run here (no Liger, no CUDA, no generated file): reported as skipped with why."""


def liger_unavailable_reason() -> str | None:
    import torch

    try:
        importlib.import_module("liger_kernel.transformers")
    except ImportError as error:
        return f"liger_kernel not importable ({_one_line(error)})"
    if not torch.cuda.is_available():
        return "Liger's Triton kernels need CUDA"
    return None


def model_class_for(plan: Plan):
    """The causal-LM class this variant trains; applies Liger's monkey patch first for the liger variant."""
    import torch

    shape = MODELS[plan.model]
    if plan.variant == "stock":
        module = importlib.import_module(f"transformers.models.{shape.name}.modeling_{shape.name}")
        return getattr(module, shape.causal_lm_class), "stock transformers"
    if plan.variant == "liger":
        reason = liger_unavailable_reason()
        if reason:
            raise VariantUnavailable(reason)
        getattr(importlib.import_module("liger_kernel.transformers"), shape.liger_patch)()
        module = importlib.import_module(f"transformers.models.{shape.name}.modeling_{shape.name}")
        return getattr(module, shape.causal_lm_class), f"{shape.liger_patch}() defaults"
    # generated: the GPU file; on a machine without CUDA (smoke only) its pure-torch CPU sibling
    file_variant = "gpu" if torch.cuda.is_available() else "cpu"
    path = shape.generated_file(file_variant)
    if not path.is_file():
        raise VariantUnavailable(f"{path.relative_to(REPO_ROOT)} does not exist (not generated yet)")
    if file_variant == "gpu" and liger_unavailable_reason():
        raise VariantUnavailable(f"{path.name} imports Liger: {liger_unavailable_reason()}")
    sys.path.insert(0, str(REPO_ROOT))
    module = importlib.import_module(".".join(path.relative_to(REPO_ROOT).with_suffix("").parts))
    return getattr(module, shape.causal_lm_class), str(path.relative_to(REPO_ROOT))


def build_model(plan: Plan, model_class):
    import torch
    import transformers

    torch.manual_seed(0)
    config = getattr(transformers, MODELS[plan.model].config_class)(**plan.config_kwargs())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = model_class._from_config(config, attn_implementation="sdpa", dtype=getattr(torch, plan.dtype))
    return model.train()


def describe_ops(model) -> str:
    """Which implementation each op resolved to: proof of what was benchmarked."""
    base = model.model
    layer = base.layers[0]
    rope = getattr(sys.modules[type(layer.self_attn).__module__], "apply_rotary_pos_emb", None)
    forward = type(model).forward
    return (
        f"norm={type(base.norm).__name__} mlp={type(layer.mlp).__name__} "
        f"rope={getattr(rope, '__module__', '?')}.{getattr(rope, '__name__', '?')} "
        f"lm_forward={forward.__module__}.{forward.__qualname__}"
    )


def training_step(model, input_ids) -> None:
    loss = model(input_ids=input_ids, labels=input_ids).loss
    loss.backward()
    model.zero_grad(set_to_none=True)


def measure_shape(model, plan: Plan, batch: int, seq: int) -> dict:
    """Median tokens/s over `plan.steps` timed steps after `plan.warmup`, and the peak memory of those steps."""
    import torch

    vocab = model.config.vocab_size
    input_ids = torch.randint(3, vocab, (batch, seq), device=model.device)
    for _ in range(plan.warmup):
        training_step(model, input_ids)
    synchronize()
    reset_peak_memory()
    seconds = []
    for _ in range(plan.steps):
        started = time.perf_counter()
        training_step(model, input_ids)
        synchronize()
        seconds.append(time.perf_counter() - started)
    median = statistics.median(seconds)
    return {"tokens_per_s": batch * seq / median, "step_ms": median * 1e3, "peak_gib": peak_memory_gib()}


def fits_one_step(model, seq: int) -> float:
    """One forward + backward at batch 1; returns its wall time. Raises OOM if it does not fit."""
    import torch

    release_memory()  # blocks cached by the previous (shorter) step would fragment this one into a false OOM
    input_ids = torch.randint(3, model.config.vocab_size, (1, seq), device=model.device)
    started = time.perf_counter()
    training_step(model, input_ids)
    synchronize()
    return time.perf_counter() - started


@dataclass
class MaxSeq:
    largest_fit: int | None = None
    first_oom: int | None = None
    note: str = ""


def find_max_seq_len(
    try_seq: Callable[[int], Guarded], start: int, cap: int, deadline: float, known: dict[int, str] | None = None
) -> MaxSeq:
    """Double the sequence length from `start` until a step runs out of memory or `cap` is reached.

    `known` holds statuses already measured (the timed shapes), so those lengths are not run twice. Stops
    early, saying so, when the next (longer) step would likely pass `deadline`.
    """
    known = known or {}
    found = MaxSeq()
    seq, last_seconds = start, 0.0
    while seq <= cap:
        # attention is quadratic: a doubled length costs up to 4x; a step measured in `known` costs ~0 here
        if time.time() + 4 * last_seconds > deadline:
            found.note = f"time budget: stopped before {seq}"
            return found
        if seq in known:
            status, message = known[seq], ""
        else:
            outcome = try_seq(seq)
            status, message = outcome.status, outcome.message
            last_seconds = outcome.value if outcome.status == "ok" else last_seconds
        if status == "OOM":
            found.first_oom = seq
            return found
        if status != "ok":
            found.note = f"error at {seq}: {message}"
            return found
        found.largest_fit = seq
        seq *= 2
    found.note = f"fits the cap ({cap})"
    return found


def emit(result: dict) -> None:
    """Hand the parent a result line; the last one counts, so a worker killed later keeps what it measured."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_variant(plan: Plan) -> dict:
    result = {"model": plan.model, "variant": plan.variant, "device": device_name(), "runs": [], "max_seq": None}
    try:
        model_class, source = model_class_for(plan)
    except VariantUnavailable as error:
        return {**result, "status": "skipped", "reason": str(error)}
    built = run_guarded(lambda: build_model(plan, model_class))
    if built.status != "ok":
        return {**result, "status": built.status, "reason": f"building the model: {built.message}"}
    model = built.value
    result.update(
        status="ok", source=source, ops=describe_ops(model), params_m=sum(p.numel() for p in model.parameters()) / 1e6
    )
    log(f"  [{plan.model}/{plan.variant}] built ({result['params_m']:.0f}M params) from {source}; {result['ops']}")
    known: dict[int, str] = {}
    for batch, seq in plan.shapes:
        log(f"  [{plan.model}/{plan.variant}] {batch}x{seq}: {plan.warmup} warm-up + {plan.steps} timed steps")
        measured = run_guarded(lambda b=batch, s=seq: measure_shape(model, plan, b, s))
        run = {"batch": batch, "seq": seq, "status": measured.status, "message": measured.message}
        run.update(measured.value or {})
        result["runs"].append(run)
        if batch == 1:
            known[seq] = measured.status
        log(f"  [{plan.model}/{plan.variant}] {batch}x{seq}: {_run_summary(run)}")
    if plan.max_seq_cap:
        unfinished = MaxSeq(note="search cut short: worker killed at its time limit")
        emit({**result, "max_seq": asdict(unfinished)})
        log(f"  [{plan.model}/{plan.variant}] max seq search from {plan.max_seq_start} up to {plan.max_seq_cap}")
        found = find_max_seq_len(
            lambda seq: run_guarded(lambda: fits_one_step(model, seq)),
            plan.max_seq_start,
            plan.max_seq_cap,
            plan.soft_deadline,
            known,
        )
        result["max_seq"] = asdict(found)
        log(
            f"  [{plan.model}/{plan.variant}] max seq: fits {found.largest_fit}, OOM at {found.first_oom} {found.note}"
        )
    return result


def _run_summary(run: dict) -> str:
    if run["status"] != "ok":
        return f"{run['status']} {run.get('message', '')}"
    peak = "" if run["peak_gib"] is None else f", peak {run['peak_gib']:.2f} GiB"
    return f"{run['tokens_per_s']:,.0f} tokens/s ({run['step_ms']:.1f} ms/step{peak})"


# -- per-op microbenchmark ---------------------------------------------------------------------------
@dataclass
class OpTiming:
    model: str
    op: str
    shape: str
    torch_ms: float | None = None
    liger_ms: float | None = None
    torch_peak_mib: float | None = None
    liger_peak_mib: float | None = None
    note: str = ""


def time_forward_backward(run: Callable[[], None], warmup: int, iters: int) -> tuple[float, float | None]:
    """Median milliseconds of one forward + backward, and the peak memory above what was allocated before."""
    import torch

    for _ in range(warmup):
        run()
    synchronize()
    cuda = torch.cuda.is_available()
    before = torch.cuda.memory_allocated() if cuda else 0
    reset_peak_memory()
    times = []
    for _ in range(iters):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            end.record()
            times.append((start, end))
        else:
            started = time.perf_counter()
            run()
            times.append((time.perf_counter() - started) * 1e3)
    synchronize()
    if cuda:
        times = [start.elapsed_time(end) for start, end in times]
    peak = (torch.cuda.max_memory_allocated() - before) / 2**20 if cuda else None
    return statistics.median(times), peak


def op_benchmarks(
    plan: Plan, model: str
) -> list[tuple[str, str, Callable[[], Callable[[], None]], Callable[[], Callable[[], None]]]]:
    """(op, shape, make torch step, make liger step) at this model's shapes; each step is forward + backward."""
    import torch
    import torch.nn.functional as F
    import transformers

    shape = MODELS[model]
    config = getattr(transformers, shape.config_class)(**plan.config_kwargs(model))
    stock = importlib.import_module(f"transformers.models.{shape.name}.modeling_{shape.name}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = getattr(torch, plan.dtype)
    tokens, hidden = plan.ops_tokens, config.hidden_size
    heads, kv_heads, head_dim = config.num_attention_heads, config.num_key_value_heads, config.head_dim

    def leaf(*size):
        return torch.randn(*size, device=device, dtype=dtype).requires_grad_()

    def step(module_or_fn, inputs, grads=None):
        def run():
            for tensor in inputs:
                tensor.grad = None
            outputs = module_or_fn(*inputs)
            outputs = outputs if isinstance(outputs, tuple) else (outputs,)
            torch.autograd.backward(outputs, grads)

        return run

    def rms_norm(liger: bool):
        if liger:
            from liger_kernel.transformers.rms_norm import LigerRMSNorm

            norm = LigerRMSNorm(hidden, eps=config.rms_norm_eps)
        else:
            norm = getattr(stock, f"{shape.prefix}RMSNorm")(hidden, eps=config.rms_norm_eps)
        norm = norm.to(device=device, dtype=dtype)
        return step(norm, [leaf(tokens, hidden)], [torch.randn(tokens, hidden, device=device, dtype=dtype)])

    def swiglu(liger: bool):
        if liger:
            from liger_kernel.transformers.swiglu import LigerSwiGLUMLP

            mlp = LigerSwiGLUMLP(config)
        else:
            mlp = getattr(stock, f"{shape.prefix}MLP")(config)
        mlp = mlp.to(device=device, dtype=dtype)
        return step(mlp, [leaf(1, tokens, hidden)], [torch.randn(1, tokens, hidden, device=device, dtype=dtype)])

    def rope(liger: bool):
        rotary = getattr(stock, f"{shape.prefix}RotaryEmbedding")(config).to(device)
        # HF layout: projections viewed as (batch, seq, heads, dim), then transposed to (batch, heads, seq, dim)
        q, k = leaf(1, tokens, heads, head_dim), leaf(1, tokens, kv_heads, head_dim)
        cos, sin = rotary(q, torch.arange(tokens, device=device)[None])
        if liger:
            from liger_kernel.transformers.rope import liger_rotary_pos_emb as rotate
        else:
            rotate = stock.apply_rotary_pos_emb
        grads = [
            torch.randn(1, heads, tokens, head_dim, device=device, dtype=dtype),
            torch.randn(1, kv_heads, tokens, head_dim, device=device, dtype=dtype),
        ]
        return step(lambda q, k: rotate(q.transpose(1, 2), k.transpose(1, 2), cos, sin), [q, k], grads)

    def loss(liger: bool):
        x, weight = leaf(tokens, hidden), leaf(config.vocab_size, hidden)
        target = torch.randint(config.vocab_size, (tokens,), device=device)
        if liger:
            from liger_kernel.transformers.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyLoss

            fused = LigerFusedLinearCrossEntropyLoss()
            return step(lambda x, weight: fused(weight, x, target), [x, weight])
        # what HF's ForCausalLMLoss does: full logits, upcast to fp32, cross-entropy
        return step(lambda x, weight: F.cross_entropy(F.linear(x, weight).float(), target), [x, weight])

    return [
        ("rms_norm", f"{tokens}x{hidden}", lambda: rms_norm(False), lambda: rms_norm(True)),
        ("swiglu", f"{tokens}x{hidden}->{config.intermediate_size}", lambda: swiglu(False), lambda: swiglu(True)),
        (
            "rope",
            f"q {heads}x{tokens}x{head_dim}, k {kv_heads}x{tokens}x{head_dim}",
            lambda: rope(False),
            lambda: rope(True),
        ),
        ("loss", f"{tokens}x{hidden} @ vocab {config.vocab_size}", lambda: loss(False), lambda: loss(True)),
    ]


def run_ops(plan: Plan) -> dict:
    liger_reason = liger_unavailable_reason()
    warmup, iters = (3, 5) if plan.smoke else (3, 20)  # CPU autograd/oneDNN set-up costs ~40 ms per shape
    timings = []
    benchmarks = [(model, *benchmark) for model in plan.model.split(",") for benchmark in op_benchmarks(plan, model)]
    for model, op, shape, make_torch, make_liger in benchmarks:
        timing = OpTiming(model, op, shape)
        for side, make in (("torch", make_torch), ("liger", make_liger)):
            if side == "liger" and liger_reason:
                timing.note = liger_reason
                continue
            measured = run_guarded(lambda make=make: time_forward_backward(make(), warmup, iters))
            if measured.status == "ok":
                setattr(timing, f"{side}_ms", measured.value[0])
                setattr(timing, f"{side}_peak_mib", measured.value[1])
            else:
                timing.note += f"{side}: {measured.status} {measured.message} "
        log(f"  [{model}/ops] {op}: torch {_ms(timing.torch_ms)}, liger {_ms(timing.liger_ms)} {timing.note}")
        timings.append(asdict(timing))
    return {"model": plan.model, "variant": "ops", "status": "ok", "device": device_name(), "ops": timings}


def worker_main(plan_json: str) -> int:
    plan = Plan(**json.loads(plan_json))
    plan.shapes = [tuple(shape) for shape in plan.shapes]
    try:
        result = run_ops(plan) if plan.variant == "ops" else run_variant(plan)
    except Exception as error:  # noqa: BLE001 - still hand the parent a result it can print
        result = {
            "model": plan.model,
            "variant": plan.variant,
            "status": "error",
            "reason": f"{type(error).__name__}: {_one_line(error)}",
        }
    emit(result)
    return 0


# ====================================================================================================
# Parent side: schedules workers, keeps the time budget, prints the tables
# ====================================================================================================
def parse_worker_output(returncode: int, stdout: str, plan: Plan) -> dict:
    """The worker's result line, or a result saying how the worker died."""
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
    command = command or [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(asdict(plan))]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
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


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} ms"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    line = lambda row: "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def _ratio(numerator: float | None, denominator: float | None) -> str:
    return "n/a" if not numerator or not denominator else f"{numerator / denominator:.2f}x"


def step_table(results: list[dict]) -> str:
    by_key = {(r["model"], r["variant"]): r for r in results if r["variant"] != "ops"}

    def run_of(model: str, variant: str, batch: int, seq: int) -> dict | None:
        for run in by_key.get((model, variant), {}).get("runs") or []:
            if (run["batch"], run["seq"]) == (batch, seq) and run["status"] == "ok":
                return run
        return None

    rows = []
    for (model, variant), result in by_key.items():
        if result["status"] != "ok":
            rows.append([model, variant, "-", result["status"], "", "", "", "", result.get("reason", "")])
            continue
        for run in result["runs"]:
            batch, seq = run["batch"], run["seq"]
            if run["status"] != "ok":
                rows.append([model, variant, f"{batch}x{seq}", run["status"], "", "", "", "", run["message"]])
                continue
            peak = "n/a" if run["peak_gib"] is None else f"{run['peak_gib']:.2f}"
            ratios = ["", ""]
            if variant == "generated":
                for i, baseline in enumerate(("stock", "liger")):
                    other = run_of(model, baseline, batch, seq)
                    ratios[i] = (
                        f"{_ratio(run['tokens_per_s'], other and other['tokens_per_s'])} speed, "
                        f"{_ratio(run['peak_gib'], other and other['peak_gib'])} mem"
                    )
            rows.append([model, variant, f"{batch}x{seq}", "ok", f"{run['tokens_per_s']:,.0f}", peak, *ratios, ""])
    return _table(
        [
            "model",
            "variant",
            "batch x seq",
            "status",
            "tokens/s (median)",
            "peak GiB",
            "generated/stock",
            "generated/liger",
            "note",
        ],
        rows,
    )


def max_seq_table(results: list[dict]) -> str:
    rows = []
    for result in results:
        if result["variant"] == "ops" or not result.get("max_seq"):
            continue
        found = result["max_seq"]
        rows.append(
            [
                result["model"],
                result["variant"],
                str(found["largest_fit"] or "none"),
                str(found["first_oom"] or "-"),
                found["note"],
            ]
        )
    return _table(["model", "variant", "largest seq that fits (batch 1)", "first OOM", "note"], rows)


def ops_table(results: list[dict]) -> str:
    rows = []
    for result in results:
        if result["variant"] != "ops":
            continue
        if result["status"] != "ok":
            rows.append([result["model"], "-", "-", result["status"], "", "", "", result.get("reason", "")])
            continue
        for op in result["ops"]:
            torch_ms, liger_ms = op["torch_ms"], op["liger_ms"]
            if torch_ms and liger_ms:
                winner = "liger" if liger_ms < torch_ms else "torch"
                speedup = f"{torch_ms / liger_ms:.2f}x"
            else:
                winner, speedup = "n/a", "n/a"
            memory = f"{_mib(op['torch_peak_mib'])} / {_mib(op['liger_peak_mib'])}"
            rows.append(
                [
                    op["model"],
                    op["op"],
                    op["shape"],
                    _ms(torch_ms),
                    _ms(liger_ms),
                    speedup,
                    memory,
                    winner + (f" ({op['note'].strip()})" if op["note"].strip() else ""),
                ]
            )
    return _table(
        ["model", "op (fwd+bwd)", "shape", "torch", "liger", "liger speedup", "peak MiB torch/liger", "winner"], rows
    )


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def parse_shapes(text: str) -> list[tuple[int, int]]:
    shapes = []
    for item in text.split(","):
        batch, _, seq = item.strip().partition("x")
        shapes.append((int(batch), int(seq)))
    return shapes


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny shapes and few steps: seconds, runs on CPU")
    parser.add_argument("--models", default="qwen3,llama", help="comma-separated, from: " + ", ".join(MODELS))
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS))
    parser.add_argument("--shapes", help="batch x seq list (default 1x2048,1x8192; smoke 1x64,1x128)")
    parser.add_argument("--warmup", type=int, help="untimed steps per shape (default 2)")
    parser.add_argument("--steps", type=int, help="timed steps per shape, median reported (default 10; smoke 3)")
    parser.add_argument("--max-seq-cap", type=int, help="max-seq search cap, 0 = off (default 65536; smoke 512)")
    parser.add_argument("--no-ops", action="store_true", help="skip the per-op microbenchmark")
    parser.add_argument("--budget-s", type=float, default=330.0, help="wall-clock budget for the whole run")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = [m for m in args.models.split(",") if m not in MODELS] + [
        v for v in args.variants.split(",") if v not in VARIANTS
    ]
    if unknown:
        parser.error(f"unknown model/variant {unknown}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.worker:
        return worker_main(args.worker)
    started = time.time()
    smoke = args.smoke
    shapes = parse_shapes(args.shapes or ("1x64,1x128" if smoke else "1x2048,1x8192"))
    cap = args.max_seq_cap if args.max_seq_cap is not None else (512 if smoke else 65536)
    longest = max(seq for _, seq in shapes)
    import torch  # only to ask whether CUDA is there; the measuring happens in the workers

    cuda_available = torch.cuda.is_available()
    dtype = "bfloat16" if cuda_available else "float32"
    jobs = [(model, variant) for model in args.models.split(",") for variant in args.variants.split(",")]
    if not args.no_ops:
        jobs.append((args.models, "ops"))
    log(
        f"bench_train_step: {'SMOKE (tiny shapes) ' if smoke else ''}models {args.models}, variants "
        f"{args.variants}, shapes {shapes}, {dtype}, max-seq search {longest}..{cap}, budget {args.budget_s:.0f}s"
    )
    results = []
    for index, (model, variant) in enumerate(jobs):
        remaining = args.budget_s - (time.time() - started)
        jobs_left = len(jobs) - index
        reason = None if variant == "ops" else unavailable_before_starting(model, variant, cuda_available)
        if reason:
            results.append({"model": model, "variant": variant, "status": "skipped", "reason": reason})
            log(f"[{index + 1}/{len(jobs)}] {model}/{variant}: skipped, {reason}")
            continue
        if remaining < 10:
            results.append({"model": model, "variant": variant, "status": "skipped", "reason": "time budget spent"})
            log(f"[{index + 1}/{len(jobs)}] {model}/{variant}: skipped, time budget spent")
            continue
        share = remaining / jobs_left
        plan = Plan(
            model=model,
            variant=variant,
            smoke=smoke,
            shapes=shapes,
            warmup=args.warmup if args.warmup is not None else 2,
            steps=args.steps if args.steps is not None else (3 if smoke else 10),
            max_seq_start=longest,
            max_seq_cap=cap,
            ops_tokens=longest,
            dtype=dtype,
            soft_deadline=time.time() + 1.5 * share,
        )
        log(f"[{index + 1}/{len(jobs)}] {model}/{variant} (t={time.time() - started:.0f}s, share {share:.0f}s)")
        result = run_worker(plan, timeout=min(remaining, max(3 * share, 60.0)))
        if result["status"] != "ok":
            log(f"  [{model}/{variant}] {result['status']}: {result.get('reason', '')}")
        results.append(result)
    device = next((r["device"] for r in results if r.get("device")), "unknown")
    log(f"\n## Training step (forward + backward), {dtype}, sdpa, on {device}; tokens/s: median of the timed steps")
    log(step_table(results))
    log("\n## Largest sequence length per variant (batch 1, doubling; a step is forward + backward)")
    log(max_seq_table(results))
    if not args.no_ops:
        log(f"\n## Per-op microbenchmark, forward + backward, {dtype}, median (pick the winner per op in GPU configs)")
        log(ops_table(results))
    if smoke:
        log("\nSMOKE run: tiny shapes check that the script works; its numbers are not a benchmark.")
    log(f"\ntotal {time.time() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
