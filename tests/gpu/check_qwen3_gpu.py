"""One-shot GPU check of generated/qwen3/patched_modeling_qwen3_gpu.py: RMSNorm and SwiGLU MLP switched by size
(upstream's torch ops below `patchgen.runtime.kernel_sizes.LIGER_NORM_MLP_MIN_TOKENS` tokens, Liger's kernels from
it: the equivalence part's small batches take the torch branch, the peak-memory step Liger's), Liger's rope, and
the single fused-loss forward (upstream's loss for few logits, a fused kernel for many: Liger's or the chunked
one by shape, `patchgen.runtime.losses.fastest_linear_cross_entropy`).

    python3 tests/gpu/check_qwen3_gpu.py            # from the repo root, on a machine with one CUDA GPU

Needs torch, transformers==5.17.0, triton and liger-kernel==0.8.5 (cut-cross-entropy==25.1.1 for its row);
nothing else from this repo is installed (the repo root is put on sys.path for `generated/` and `patchgen`).

1. Equivalence with stock HF Qwen3, same weights: logits without labels, then the loss and every parameter
   gradient with labels, once per loss path of the forward: upstream's (threshold above the call's logits)
   and the fused one with each kernel a loss set can bind (fastest: the file's own; chunked torch; Liger's;
   Cut Cross-Entropy's when installed, bf16 only: its backward supports bf16/fp16 only). In fp32 directly;
   in bf16 as error against stock fp32, compared with stock's own bf16 error. Tolerances are printed with
   each result.
2. Peak GPU memory and time of one training step (forward + backward) of the generated file at its default
   threshold (8192 tokens: the fused kernel) and of stock HF (`[tokens, vocab]` logits materialised), at
   Qwen3's real vocabulary size.
3. examples/train_qwen3.py for a few steps on this GPU (one process, nccl, bf16 FSDP2).

Exit status 1 when a check fails; every number is printed either way. A check that raises is reported as
FAIL with its reason and the script goes on with the next one.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from transformers import Qwen3Config  # noqa: E402
from transformers.models.qwen3 import modeling_qwen3 as stock  # noqa: E402

import generated.qwen3.patched_modeling_qwen3_gpu as gpu_file  # noqa: E402
from patchgen.runtime import losses  # noqa: E402


# fp32: generated vs stock directly; the kernels reorder sums (fused RMSNorm, chunked cross-entropy), so a
# little above torch's fp32 defaults. Gradients: atol = GRAD_ATOL_RELATIVE x the largest |entry| of the gradient.
FP32_RTOL, FP32_ATOL, FP32_GRAD_RTOL, FP32_GRAD_ATOL_RELATIVE = 1e-4, 1e-4, 1e-3, 1e-3
# Cut Cross-Entropy's backward multiplies fp32 in TF32 (Triton's default for tl.dot; 10 mantissa bits, ~5e-4
# relative per product): its fp32 gradients get the harness's TF32 tolerance (tests/equivalence/cases.py).
FP32_TF32_PATHS, TF32_RTOL, TF32_ATOL_RELATIVE = {"cce"}, 5e-3, 5e-3
# bf16: both models are compared with stock in fp32. bf16 keeps 8 mantissa bits and the fused kernels round
# at other points than eager torch, so the generated file passes when its error is at most BF16_FACTOR x the
# error of stock HF run in bf16, plus BF16_FLOOR x the largest |entry| of the fp32 value.
BF16_FACTOR, BF16_FLOOR = 2.0, 1e-3

EQUIVALENCE_CONFIG = dict(
    vocab_size=2048,
    hidden_size=256,
    intermediate_size=512,
    num_hidden_layers=2,
    num_attention_heads=8,
    num_key_value_heads=4,
    head_dim=32,
    use_cache=False,
)
MEMORY_CONFIG = dict(  # Qwen3's vocabulary, small body: the logits dominate a training step's memory
    vocab_size=151936,
    hidden_size=1024,
    intermediate_size=3072,
    num_hidden_layers=2,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=64,
    use_cache=False,
)

DEVICE = "cuda"
failures: list[str] = []


def report(name: str, ok: bool, detail: str) -> None:
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)
    if not ok:
        failures.append(name)


def compare(name: str, actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float) -> None:
    actual, expected = actual.float(), expected.float()
    diff = (actual - expected).abs()
    ok = bool((diff <= atol + rtol * expected.abs()).all())
    report(name, ok, f"max |diff| {diff.max().item():.3e}, rtol {rtol:g}, atol {atol:.3e}")


def error_ratio(generated: torch.Tensor, stock_bf16: torch.Tensor, fp32: torch.Tensor) -> tuple[float, str]:
    """(generated's error) / (BF16_FACTOR x stock bf16's error + floor), both errors against fp32."""
    fp32 = fp32.float()
    generated_error = (generated.float() - fp32).abs().max().item()
    stock_error = (stock_bf16.float() - fp32).abs().max().item()
    allowed = BF16_FACTOR * stock_error + BF16_FLOOR * fp32.abs().max().item()
    return generated_error / allowed, f"max |error| {generated_error:.3e} vs stock bf16 {stock_error:.3e}"


def build_pair(dtype: torch.dtype, config_kwargs: dict, attn_implementation: str = "sdpa"):
    config = Qwen3Config(**config_kwargs)
    config._attn_implementation = attn_implementation
    torch.manual_seed(0)
    with torch.device(DEVICE):
        reference = stock.Qwen3ForCausalLM(config)
        with torch.no_grad():  # norm weights away from 1, activations O(1): a wrong op shows
            for parameter in reference.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))
        generated = gpu_file.Qwen3ForCausalLM(config)
    generated.load_state_dict(reference.state_dict())
    return reference.to(dtype).train(), generated.to(dtype).train()


def loss_kernels() -> dict:
    """The kernels a loss set can bind to `linear_cross_entropy`: the file's own first."""
    kernels = {
        "fastest": losses.fastest_linear_cross_entropy,
        "chunked": losses.chunked_linear_cross_entropy,
        "liger": losses.liger_linear_cross_entropy,
    }
    if importlib.util.find_spec("cut_cross_entropy") is not None:
        kernels["cce"] = losses.cce_linear_cross_entropy
    return kernels


LOSS_PATHS = ["upstream", *loss_kernels()]
# Paths that cannot train in fp32, and why: skipped there with the reason printed
FP32_UNSUPPORTED = {"cce": "Cut Cross-Entropy's backward supports bf16/fp16 only (its kernel asserts it)"}


def guarded(name: str, check) -> None:
    """Run one check; an exception is that check's FAIL, with its reason, and the next check still runs."""
    try:
        check()
    except Exception as error:  # noqa: BLE001 - one failing row must not hide the others
        report(name, False, f"raised {type(error).__name__}: {' '.join(str(error).split())[:500]}")
    finally:
        torch.cuda.empty_cache()


def run(model, input_ids, labels, path: str = "fastest") -> dict:
    """Logits without labels, then loss, logits and every parameter gradient of one step with labels.

    `path`: "upstream" (threshold above this call: lm_head + loss_function) or a kernel of `loss_kernels()`.
    """
    bound = gpu_file.linear_cross_entropy
    threshold = losses.FUSED_LINEAR_CROSS_ENTROPY_MIN_LOGITS
    losses.FUSED_LINEAR_CROSS_ENTROPY_MIN_LOGITS = 2**62 if path == "upstream" else 0
    gpu_file.linear_cross_entropy = bound if path == "upstream" else loss_kernels()[path]
    try:
        with torch.no_grad():
            logits = model(input_ids=input_ids).logits
        model.zero_grad(set_to_none=True)
        output = model(input_ids=input_ids, labels=labels)
        output.loss.backward()
        grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
        model.zero_grad(set_to_none=True)
    finally:
        gpu_file.linear_cross_entropy = bound
        losses.FUSED_LINEAR_CROSS_ENTROPY_MIN_LOGITS = threshold
    return {"logits": logits, "loss": output.loss.detach(), "logits_with_labels": output.logits, "grads": grads}


def equivalence_inputs():
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(0, EQUIVALENCE_CONFIG["vocab_size"], (2, 128), generator=generator).to(DEVICE)
    labels = input_ids.clone()
    labels[0, :17] = -100
    return input_ids, labels


def check_equivalence_fp32() -> None:
    reference, generated = build_pair(torch.float32, EQUIVALENCE_CONFIG)
    input_ids, labels = equivalence_inputs()
    expected = run(reference, input_ids, labels)
    for path in LOSS_PATHS:
        if path in FP32_UNSUPPORTED:
            print(f"SKIP  fp32 {path} loss: {FP32_UNSUPPORTED[path]}", flush=True)
            continue
        guarded(f"fp32 {path} loss", lambda path=path: compare_fp32(generated, expected, input_ids, labels, path))


def compare_fp32(generated, expected: dict, input_ids, labels, path: str) -> None:
    actual = run(generated, input_ids, labels, path)
    if path == LOSS_PATHS[0]:  # the logits do not depend on the loss path
        compare("fp32 logits (no labels)", actual["logits"], expected["logits"], FP32_RTOL, FP32_ATOL)
    compare(f"fp32 loss ({path} vs HF)", actual["loss"], expected["loss"], FP32_RTOL, FP32_ATOL)
    report(f"fp32 {path} loss returns no logits", actual["logits_with_labels"] is None, "logits is None")
    rtol, atol_relative = (
        (TF32_RTOL, TF32_ATOL_RELATIVE) if path in FP32_TF32_PATHS else (FP32_GRAD_RTOL, FP32_GRAD_ATOL_RELATIVE)
    )
    worst_name, worst_ratio = "", 0.0
    for name, grad in expected["grads"].items():
        atol = atol_relative * grad.abs().max().item()
        diff = (actual["grads"][name] - grad).abs()
        ratio = (diff / (atol + rtol * grad.abs())).max().item()
        if ratio > worst_ratio:
            worst_name, worst_ratio = name, ratio
    report(
        f"fp32 gradients, {path} loss ({len(expected['grads'])} parameters)",
        worst_ratio <= 1.0,
        f"worst {worst_name}: {worst_ratio:.2f} of the tolerance (rtol {rtol:g}, atol {atol_relative:g} x max |grad|)",
    )


def check_equivalence_bf16() -> None:
    reference, generated = build_pair(torch.float32, EQUIVALENCE_CONFIG)
    input_ids, labels = equivalence_inputs()
    fp32 = run(reference, input_ids, labels)
    stock_bf16 = run(reference.to(torch.bfloat16), input_ids, labels)
    generated = generated.to(torch.bfloat16)
    criterion = f"tolerance {BF16_FACTOR:g} x stock bf16 error + {BF16_FLOOR:g} x max |fp32|"
    for path in LOSS_PATHS:
        guarded(
            f"bf16 {path} loss",
            lambda path=path: compare_bf16(generated, fp32, stock_bf16, input_ids, labels, path, criterion),
        )


def compare_bf16(generated, fp32: dict, stock_bf16: dict, input_ids, labels, path: str, criterion: str) -> None:
    actual = run(generated, input_ids, labels, path)
    checked = [("loss", f"bf16 loss ({path} vs HF)")]
    if path == LOSS_PATHS[0]:
        checked.insert(0, ("logits", "bf16 logits (no labels)"))
    for key, name in checked:
        ratio, detail = error_ratio(actual[key], stock_bf16[key], fp32[key])
        report(name, ratio <= 1.0, f"{detail}: {ratio:.2f} of the {criterion}")
    report(f"bf16 {path} loss returns no logits", actual["logits_with_labels"] is None, "logits is None")
    ratios = {
        name: error_ratio(actual["grads"][name], stock_bf16["grads"][name], grad)
        for name, grad in fp32["grads"].items()
    }
    worst = max(ratios, key=lambda name: ratios[name][0])
    report(
        f"bf16 gradients, {path} loss ({len(ratios)} parameters)",
        ratios[worst][0] <= 1.0,
        f"worst {worst}: {ratios[worst][1]}: {ratios[worst][0]:.2f} of the {criterion}",
    )


def training_step_memory(model, input_ids) -> tuple[float, float]:
    """Peak GiB allocated during one forward + backward (after a warm-up step), and its seconds."""
    for measured in (False, True):
        model.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
        start = time.perf_counter()
        loss = model(input_ids=input_ids, labels=input_ids).loss
        loss.backward()
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        if measured:
            peak = (torch.cuda.max_memory_allocated() - baseline) / 2**30
    assert math.isfinite(loss.item())
    return peak, seconds


def check_memory() -> None:
    reference, generated = build_pair(torch.bfloat16, MEMORY_CONFIG)
    batch, seq_len = 2, 4096
    input_ids = torch.randint(0, MEMORY_CONFIG["vocab_size"], (batch, seq_len), device=DEVICE)
    tokens = batch * seq_len
    logits_gib = tokens * MEMORY_CONFIG["vocab_size"] * 2 / 2**30
    print(
        f"memory: bf16, vocab {MEMORY_CONFIG['vocab_size']}, hidden {MEMORY_CONFIG['hidden_size']}, "
        f"{MEMORY_CONFIG['num_hidden_layers']} layers, {batch} x {seq_len} tokens "
        f"(bf16 logits alone: {logits_gib:.2f} GiB)",
        flush=True,
    )
    generated_peak, generated_seconds = training_step_memory(generated, input_ids)
    del generated
    torch.cuda.empty_cache()
    stock_peak, stock_seconds = training_step_memory(reference, input_ids)
    print(f"  generated file (fused loss):    peak {generated_peak:6.2f} GiB above weights, {generated_seconds:.3f} s")
    print(f"  stock HF (materialised logits): peak {stock_peak:6.2f} GiB above weights, {stock_seconds:.3f} s")
    report(
        "fused loss lowers the peak memory of a training step",
        generated_peak < stock_peak - logits_gib,
        f"saves {stock_peak - generated_peak:.2f} GiB ({generated_peak / stock_peak:.0%} of stock); must save more "
        f"than the bf16 logits ({logits_gib:.2f} GiB)",
    )
    del reference
    torch.cuda.empty_cache()


def check_training_example() -> None:
    command = [sys.executable, str(REPO / "examples/train_qwen3.py"), "--steps", "5", "--seq-len", "256"]
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    steps = [line for line in completed.stdout.splitlines() if line.startswith("step")]
    for line in steps:
        print(f"  {line}")
    ok = completed.returncode == 0 and len(steps) == 5 and "nan" not in completed.stdout
    detail = f"{time.perf_counter() - started:.1f} s, exit {completed.returncode}"
    report(
        "examples/train_qwen3.py (1 GPU, FSDP2, generated GPU file)",
        ok,
        detail if ok else detail + "\n" + completed.stderr[-3000:],
    )


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 1
    from importlib.metadata import version

    print(
        f"{torch.cuda.get_device_name()} | torch {torch.__version__} | transformers {version('transformers')} | "
        f"liger-kernel {version('liger-kernel')} | triton {version('triton')} | cut-cross-entropy "
        f"{version('cut-cross-entropy') if 'cce' in LOSS_PATHS else 'not installed'}",
        flush=True,
    )
    for check in (check_equivalence_fp32, check_equivalence_bf16, check_memory, check_training_example):
        guarded(check.__name__, check)
    print(f"{len(failures)} check(s) failed: {', '.join(failures)}" if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
