"""The measuring side of benchmarks/bench_train_step.py: one process per (model, variant), or per model for the ops.

    python -m benchmarks.bench_worker '<Plan as JSON>'      # started by bench_train_step.py, from the repo root

A worker builds one model (stock HF, Liger's monkey patch, or the generated GPU file), times training
steps at each shape within its time share, searches the largest sequence that fits, and prints its
result as one `BENCH_RESULT {json}` line after every shape, so a worker killed at its time limit keeps
what it measured. The "ops" worker times each op (RMSNorm, gated MLP, rope, loss) per candidate kernel
at every token count of the grid. Nothing here imports torch at module level: the parent imports
`Plan` and `MODELS` without paying for it.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
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
    # Qwen3-0.6B: hidden 1024, vocab 151936
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
    # Llama-3.2-1B: hidden 2048, vocab 128256
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

    model: str
    variant: str  # stock, liger, generated; or "ops" for the per-op microbenchmark
    smoke: bool
    shapes: list[tuple[int, int]]  # (batch, seq), measured in order of tokens per step, largest last
    warmup: int  # untimed steps before each shape's timed ones
    first_warmup: int  # the same for the first (smallest) shape: Triton autotuning, cuBLAS heuristics warm up there
    steps: int  # the most timed steps per shape; fewer when the time share is short
    min_steps: int  # the fewest timed steps that make a median; a shape that cannot get them is skipped
    max_seq_start: int  # the first length the max-seq search tries (then doubling)
    max_seq_cap: int  # 0: no search
    dtype: str  # bfloat16; float32 for a CPU smoke run (CPU bf16 kernels spend seconds in JIT warm-up)
    soft_deadline: float  # time.time() by which this worker should be done; it plans its steps to fit
    layers: int | None = None  # num_hidden_layers override (same per-layer shapes, fewer layers)
    ops_tokens: list[int] = field(default_factory=list)  # the "ops" worker: token counts to time each op at

    def config_kwargs(self, model: str | None = None) -> dict:
        kwargs = dict(MODELS[model or self.model].config_kwargs)
        if self.smoke:
            kwargs.update(SMOKE_SHAPE)
        if self.layers:
            kwargs["num_hidden_layers"] = self.layers
        return kwargs


# ====================================================================================================
# Guarded measurements
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


def emit(result: dict) -> None:
    """Hand the parent a result line; the last one counts, so a worker killed later keeps what it measured."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# ====================================================================================================
# Training steps
# ====================================================================================================
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
    loss = getattr(sys.modules[type(model).__module__], "linear_cross_entropy", None)

    def name(module) -> str:
        if hasattr(type(module), "compiled_forward"):
            return f"{type(module).__name__} (torch.compile)"
        if hasattr(type(module), "torch_forward"):  # patchgen/sets/kernels/switched_kernels.py
            return f"{type(module).__name__} (torch or Liger by size)"
        return type(module).__name__

    return (
        f"norm={name(base.norm)} mlp={name(layer.mlp)} "
        f"rope={getattr(rope, '__module__', '?')}.{getattr(rope, '__name__', '?')} "
        f"lm_forward={forward.__module__}.{forward.__qualname__}"
        + (f" fused_loss_kernel={loss.__module__}.{loss.__name__}" if loss else "")
    )


def norm_mlp_path(model, batch: int, seq: int) -> str:
    """Which RMSNorm / MLP kernels a size-switched generated file runs at this shape, '' for other files.

    Asks the file's own rule (`use_liger_norm_mlp`) about an empty `[batch, seq, 0]` tensor on the model's device.
    """
    module = sys.modules[type(model).__module__]
    if not hasattr(module, "use_liger_norm_mlp"):
        return ""
    import torch

    probe = torch.empty(batch, seq, 0, device=model.lm_head.weight.device)
    return f"norm/mlp: {'liger' if module.use_liger_norm_mlp(probe) else 'torch'}"


def loss_path(model, batch: int, seq: int) -> str:
    """Which loss the generated forward takes at this shape (its run-time switch), '' for other variants."""
    module = sys.modules[type(model).__module__]
    if not hasattr(module, "use_fused_linear_cross_entropy"):
        return ""
    import torch

    from patchgen.runtime import losses

    weight = model.lm_head.weight
    hidden = torch.empty(batch, seq, 1, device="meta")
    if not module.use_fused_linear_cross_entropy(hidden, weight):
        return "loss: upstream"
    kernel = module.linear_cross_entropy
    if kernel is losses.fastest_linear_cross_entropy and weight.is_cuda:  # its choice at this shape
        kernel = losses.linear_cross_entropy_kernel_for(batch * seq, weight.shape[0], weight.shape[1])
    return f"loss: {kernel.__name__}"


def training_step(model, input_ids) -> None:
    loss = model(input_ids=input_ids, labels=input_ids).loss
    loss.backward()
    model.zero_grad(set_to_none=True)


def timed_step(model, input_ids) -> float:
    started = time.perf_counter()
    training_step(model, input_ids)
    synchronize()
    return time.perf_counter() - started


def estimate_step_seconds(measured: list[tuple[int, float]], tokens: int) -> float:
    """A step's seconds at `tokens`, from the steps measured so far (tokens, seconds), smallest first.

    From two or more: the line through the last two (a fixed cost plus a cost per token). From one: in
    proportion to tokens, an overestimate (small steps are mostly fixed costs: launches, Python).
    """
    last_tokens, last_seconds = measured[-1]
    if len(measured) >= 2 and measured[-2][0] != last_tokens:
        previous_tokens, previous_seconds = measured[-2]
        per_token = (last_seconds - previous_seconds) / (last_tokens - previous_tokens)
        if per_token > 0:
            return last_seconds + per_token * (tokens - last_tokens)
    return last_seconds * tokens / last_tokens


def steps_that_fit(plan: Plan, seconds_left: float, step_seconds: float, later_steps: list[float]) -> int:
    """Timed steps for this shape, the same number for the larger shapes to come, all within `seconds_left`.

    `later_steps`: the estimated seconds of one step of each larger shape; their warm-ups are set aside first.
    """
    per_round = step_seconds + sum(later_steps)
    rounds = (seconds_left - plan.warmup * sum(later_steps)) / per_round if per_round > 0 else plan.steps
    return max(plan.min_steps, min(plan.steps, int(rounds)))


def measure_shape(model, warmup: int, batch: int, seq: int, timed_steps: Callable[[float], int]) -> dict:
    """Median tokens/s over the timed steps after `warmup` untimed ones, and the peak memory of those steps.

    `timed_steps(step_seconds)` says how many steps to time, given the first timed step's seconds.
    """
    import torch

    input_ids = torch.randint(3, model.config.vocab_size, (batch, seq), device=model.device)
    for _ in range(warmup):
        timed_step(model, input_ids)
    reset_peak_memory()
    seconds = [timed_step(model, input_ids)]
    seconds += [timed_step(model, input_ids) for _ in range(timed_steps(seconds[0]) - 1)]
    median = statistics.median(seconds)
    return {
        "tokens_per_s": batch * seq / median,
        "step_ms": median * 1e3,
        "peak_gib": peak_memory_gib(),
        "timed_steps": len(seconds),
    }


def fits_one_step(model, seq: int) -> float:
    """One forward + backward at batch 1; returns its wall time. Raises OOM if it does not fit."""
    import torch

    release_memory()  # blocks cached by the previous (shorter) step would fragment this one into a false OOM
    input_ids = torch.randint(3, model.config.vocab_size, (1, seq), device=model.device)
    return timed_step(model, input_ids)


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


# The share of a worker's time kept for the max-seq search: the timed grid comes first.
MAX_SEQ_SHARE = 0.25


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
    params = {name: p.numel() for name, p in model.named_parameters()}
    result.update(
        status="ok",
        source=source,
        ops=describe_ops(model),
        params_m=sum(params.values()) / 1e6,
        flops_per_token=flops_per_token_formula(model.config, params),
    )
    log(f"  [{plan.model}/{plan.variant}] built ({result['params_m']:.0f}M params) from {source}; {result['ops']}")
    reserve = MAX_SEQ_SHARE * (plan.soft_deadline - time.time()) if plan.max_seq_cap else 0.0
    known: dict[int, str] = {}
    measured: list[tuple[int, float]] = []  # (tokens, seconds) of each shape measured, smallest first
    deadline = plan.soft_deadline - reserve
    for index, (batch, seq) in enumerate(plan.shapes):
        tokens = batch * seq
        if measured:
            needed = (plan.warmup + plan.min_steps) * estimate_step_seconds(measured, tokens)
            if needed > deadline - time.time():
                message = f"time budget: ~{needed:.0f}s needed, {max(deadline - time.time(), 0):.0f}s left"
                for b, s in plan.shapes[index:]:
                    result["runs"].append({"batch": b, "seq": s, "status": "skipped", "message": message})
                skipped = ", ".join(f"{b}x{s}" for b, s in plan.shapes[index:])
                log(f"  [{plan.model}/{plan.variant}] skipped {skipped}: {message}")
                break
        later = [b * s for b, s in plan.shapes[index + 1 :]]

        def timed_steps(step_seconds: float, tokens=tokens, later=later) -> int:
            with_this = [*measured, (tokens, step_seconds)]
            estimates = [estimate_step_seconds(with_this, t) for t in later]
            return steps_that_fit(plan, deadline - time.time(), step_seconds, estimates)

        warmup = plan.first_warmup if index == 0 else plan.warmup
        outcome = run_guarded(lambda w=warmup, b=batch, s=seq, f=timed_steps: measure_shape(model, w, b, s, f))
        run = {"batch": batch, "seq": seq, "status": outcome.status, "message": outcome.message}
        run.update(outcome.value or {})
        run["path"] = ", ".join(
            path for path in (norm_mlp_path(model, batch, seq), loss_path(model, batch, seq)) if path
        )
        if outcome.status == "ok":
            measured.append((tokens, run["step_ms"] / 1e3))
        result["runs"].append(run)
        if batch == 1:
            known[seq] = outcome.status
        log(f"  [{plan.model}/{plan.variant}] {batch}x{seq}: {_run_summary(run)}")
        emit(result)
    if plan.max_seq_cap:
        emit({**result, "max_seq": asdict(MaxSeq(note="search cut short: worker killed at its time limit"))})
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


def flops_per_token_formula(config, params: dict[str, int]) -> dict:
    """The two terms of the training FLOPs per token (PaLM, Chowdhery et al. 2022, appendix B).

    6 * N: forward (2 per weight) + backward (4) for every weight used in a matmul: all parameters but the
    input embedding table, plus the lm_head (vocab x hidden) even when tied to it. 12 * L * H * S: the
    attention scores and their weighted sum, per token over a sequence of S (L layers, H = heads x head_dim),
    counted in full as PaLM does (a causal mask skips half). The parent adds S per shape.
    """
    embedding = sum(count for name, count in params.items() if "embed_tokens" in name)
    matmul_params = sum(params.values()) - embedding + config.vocab_size * config.hidden_size
    attention = 12 * config.num_hidden_layers * config.num_attention_heads * config.head_dim
    return {"dense": 6 * matmul_params, "attention_per_position": attention}


def _run_summary(run: dict) -> str:
    if run["status"] != "ok":
        return f"{run['status']} {run.get('message', '')}"
    peak = "" if run["peak_gib"] is None else f", peak {run['peak_gib']:.2f} GiB"
    path = f", {run['path']}" if run.get("path") else ""
    return (
        f"{run['tokens_per_s']:,.0f} tokens/s ({run['step_ms']:.1f} ms/step, {run['timed_steps']} timed steps"
        f"{peak}{path})"
    )


# ====================================================================================================
# Per-op microbenchmark: each candidate kernel at each token count of the grid
# ====================================================================================================
# Candidates per op: "torch" is what stock HF runs; "compiled" the models/common/compiled_kernels module;
# "chunked" and "cce" the patchgen.runtime.losses kernels; "liger" Liger's kernel.
OP_CANDIDATES = {
    "rms_norm": ("torch", "liger", "compiled"),
    "swiglu": ("torch", "liger", "compiled"),
    "rope": ("torch", "liger"),
    "loss": ("torch", "chunked", "liger", "cce"),
}
OP_WARMUP = 2
OP_ITERS = (3, 20)  # at least, at most
OP_SECONDS = 0.4  # per candidate and size, after its warm-up


def time_forward_backward(run: Callable[[], None], warmup: int, seconds: float) -> tuple[float, float | None]:
    """Median milliseconds of one forward + backward, and the peak memory above what was allocated before."""
    import torch

    for _ in range(warmup):
        run()
    synchronize()
    cuda = torch.cuda.is_available()
    before = torch.cuda.memory_allocated() if cuda else 0
    reset_peak_memory()
    times = []
    started = time.perf_counter()
    while len(times) < OP_ITERS[0] or (len(times) < OP_ITERS[1] and time.perf_counter() - started < seconds):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            begun = time.perf_counter()
            run()
            times.append((time.perf_counter() - begun) * 1e3)
    peak = (torch.cuda.max_memory_allocated() - before) / 2**20 if cuda else None
    return statistics.median(times), peak


def op_step(op: str, candidate: str, plan: Plan, model: str, tokens: int) -> Callable[[], None]:
    """One forward + backward of `op` by `candidate` at this model's shapes and `tokens` tokens."""
    import torch
    import torch.nn.functional as F
    import transformers

    shape = MODELS[model]
    config = getattr(transformers, shape.config_class)(**plan.config_kwargs(model))
    stock = importlib.import_module(f"transformers.models.{shape.name}.modeling_{shape.name}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = getattr(torch, plan.dtype)
    hidden = config.hidden_size

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

    if op in ("rms_norm", "swiglu"):
        if candidate == "liger":
            from liger_kernel.transformers.rms_norm import LigerRMSNorm
            from liger_kernel.transformers.swiglu import LigerSwiGLUMLP

            classes = {"rms_norm": LigerRMSNorm, "swiglu": LigerSwiGLUMLP}
        elif candidate == "compiled":
            from patchgen.sets.kernels.compiled_kernels import CompiledGatedMLP, CompiledRMSNorm

            classes = {"rms_norm": CompiledRMSNorm, "swiglu": CompiledGatedMLP}
        else:
            classes = {
                "rms_norm": getattr(stock, f"{shape.prefix}RMSNorm"),
                "swiglu": getattr(stock, f"{shape.prefix}MLP"),
            }
        module = classes[op](hidden, eps=config.rms_norm_eps) if op == "rms_norm" else classes[op](config)
        module = module.to(device=device, dtype=dtype)
        x = leaf(1, tokens, hidden)
        return step(module, [x], [torch.randn_like(x)])
    if op == "rope":
        heads, kv_heads, head_dim = config.num_attention_heads, config.num_key_value_heads, config.head_dim
        rotary = getattr(stock, f"{shape.prefix}RotaryEmbedding")(config).to(device)
        # HF layout: projections viewed as (batch, seq, heads, dim), then transposed to (batch, heads, seq, dim)
        q, k = leaf(1, tokens, heads, head_dim), leaf(1, tokens, kv_heads, head_dim)
        cos, sin = rotary(q, torch.arange(tokens, device=device)[None])
        if candidate == "liger":
            from liger_kernel.transformers.rope import liger_rotary_pos_emb as rotate
        else:
            rotate = stock.apply_rotary_pos_emb
        grads = [
            torch.randn(1, heads, tokens, head_dim, device=device, dtype=dtype),
            torch.randn(1, kv_heads, tokens, head_dim, device=device, dtype=dtype),
        ]
        return step(lambda q, k: rotate(q.transpose(1, 2), k.transpose(1, 2), cos, sin), [q, k], grads)
    # loss: hidden states and lm_head weight to the mean cross-entropy over the vocabulary
    x, weight = leaf(tokens, hidden), leaf(config.vocab_size, hidden)
    target = torch.randint(config.vocab_size, (tokens,), device=device)
    if candidate == "liger":
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy as kernel
    elif candidate in ("chunked", "cce"):
        from patchgen.runtime import losses

        kernel = getattr(losses, f"{candidate}_linear_cross_entropy")
    else:  # what HF's ForCausalMLoss does: full logits, upcast to fp32, cross-entropy
        return step(lambda x, weight: F.cross_entropy(F.linear(x, weight).float(), target), [x, weight])
    return step(lambda x, weight: kernel(x, weight, target), [x, weight])


def op_unavailable_reason(candidate: str) -> str | None:
    import torch

    if candidate == "liger":
        return liger_unavailable_reason()
    if candidate == "cce":
        if importlib.util.find_spec("cut_cross_entropy") is None:
            return "cut_cross_entropy not installed"
        if not torch.cuda.is_available():
            return "Cut Cross-Entropy's Triton kernels need CUDA"
    if candidate == "compiled" and not torch.cuda.is_available():
        return "compiled only on CUDA (runs eagerly elsewhere)"
    return None


def run_ops(plan: Plan) -> dict:
    """Every op x candidate at every token count of the grid, for each model of `plan.model` (comma-separated),
    smallest token counts first: the largest are skipped last."""
    sys.path.insert(0, str(REPO_ROOT))
    result = {"model": plan.model, "variant": "ops", "status": "ok", "device": device_name(), "ops": []}
    models = plan.model.split(",")
    measurements = [(tokens, model, op) for tokens in plan.ops_tokens for model in models for op in OP_CANDIDATES]
    for index, (tokens, model, op) in enumerate(measurements):
        seconds_left = plan.soft_deadline - time.time()
        if seconds_left < len(OP_CANDIDATES[op]) * OP_SECONDS:
            skipped = sorted({t for t, _, _ in measurements[index:]})
            log(f"  [ops] skipped {', '.join(map(str, skipped))} tokens: time budget")
            result["skipped_tokens"] = skipped
            break
        vocab = plan.config_kwargs(model)["vocab_size"]
        timing = {"model": model, "op": op, "tokens": tokens, "vocab": vocab, "ms": {}, "peak_mib": {}, "notes": {}}
        for candidate in OP_CANDIDATES[op]:
            reason = op_unavailable_reason(candidate)
            if reason:
                timing["notes"][candidate] = reason
                continue
            step = lambda c=candidate, m=model, o=op, t=tokens: op_step(o, c, plan, m, t)  # noqa: E731
            measured = run_guarded(lambda step=step: time_forward_backward(step(), OP_WARMUP, OP_SECONDS))
            if measured.status == "ok":
                timing["ms"][candidate], timing["peak_mib"][candidate] = measured.value
            else:
                timing["notes"][candidate] = f"{measured.status}: {measured.message}"
        log(
            f"  [{model}/ops] {op} @ {tokens} tokens: "
            + ", ".join(f"{c} {ms:.3f} ms" for c, ms in timing["ms"].items())
            + "".join(f"; {c}: {note}" for c, note in timing["notes"].items())
        )
        result["ops"].append(timing)
        emit(result)
    return result


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


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1]))
