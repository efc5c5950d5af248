"""Loss functions generated files import at run time, and the rule that picks between them per call.

The fused-loss causal-LM forward (`patchgen/sets/losses/fused_loss.py`) computes its loss in one of two ways:

- upstream's: `lm_head` logits, then `self.loss_function` (materialises `[tokens, vocab]` logits in fp32);
- fused: `linear_cross_entropy(hidden_states, lm_head.weight, labels)`, a name the patch set binds to
  one of the kernels below (or to Liger's `liger_fused_linear_cross_entropy`), which never holds more
  than a chunk of the logits.

`use_fused_linear_cross_entropy` decides per call, from the number of logits the call would make.

Kernels (all with the parameters `(input, weight, target, bias, ignore_index, reduction)`):

- `fastest_linear_cross_entropy`: the GPU files' kernel, a run-time choice between the two below by shape
  (`linear_cross_entropy_kernel_for`: Liger's when its chunks are large enough, else the chunked one);
- `chunked_linear_cross_entropy`: plain torch, tokens in chunks, gradients computed in the forward;
- `liger_linear_cross_entropy`: Liger's `liger_fused_linear_cross_entropy` (Triton, CUDA only), imported
  when first called;
- `cce_linear_cross_entropy`: Apple's Cut Cross-Entropy (`cut-cross-entropy`, Triton, CUDA only),
  imported when first called;
- `torch_linear_cross_entropy`: materialised logits, the CPU stand-in for the fused kernels.
"""

import math
import os

import torch
from torch import nn


# Fused kernel only from this many logits (tokens x vocab) per call; below it upstream's logits + loss.
# Measured source (benchmarks/results/2026-11-26-h200.md, H200, bf16, forward + backward):
# - at 2048 tokens (Qwen3-0.6B: 2048 x 151936 = 3.1e8 logits) the step with Liger's fused loss ran at
#   0.58x stock and the loss alone took 59 ms (Liger) against 25 ms (torch) at 8192 tokens: below ~5e8 logits
#   the materialised logits are both faster and small (fp32 logits at 2**29: 2 GiB);
# - at 8192 tokens (1.05e9-1.25e9 logits) the materialised loss alone peaked at 11.2-13.9 GiB against
#   19-63 MiB fused, and the fused step fitted 2x longer sequences.
# 2**29 sits between the two. benchmarks/bench_train_step.py prints the loss per kernel at every grid size
# (its "loss" rows) to confirm or move it; PATCHGEN_FUSED_LOSS_MIN_LOGITS overrides it (0: always fused).
FUSED_LINEAR_CROSS_ENTROPY_MIN_LOGITS = int(os.environ.get("PATCHGEN_FUSED_LOSS_MIN_LOGITS", 2**29))

# chunked_linear_cross_entropy: logits per chunk (2**25: 128 MiB in fp32). Its transient memory is about 8
# bytes per logit of a chunk (the bf16 matmul output, its fp32 copy turned into the gradient in place, the bf16
# gradient): ~0.4 GiB at Qwen3's vocabulary, within 5% of a step's peak at 8192 tokens, while each chunk keeps
# 200+ rows, so its matmuls stay large (Liger's chunks are ~vocab/hidden times smaller: 16-64 rows).
CHUNKED_LINEAR_CROSS_ENTROPY_CHUNK_LOGITS = 2**25


# fastest_linear_cross_entropy: Liger's kernel from this many rows per Liger chunk, the chunked kernel below.
# Liger bounds each chunk's logits to about tokens x hidden (liger_kernel/ops/fused_linear_cross_entropy.py:
# inc_factor = ceil(V / H), chunk rows = next_power_of_2(ceil(BT / inc_factor))), so at a large vocabulary over
# a small hidden size its matmuls are thin and the fixed cost per chunk dominates. Measured per op (forward +
# backward, bf16, H200, benchmarks/results/2026-11-27-h200-run1.md), chunked vs Liger, with Liger's chunk rows:
#   Qwen3-0.6B  (V 151936, H 1024)  8192 tokens:  64 rows, chunked 45.4 ms, Liger 58.6 ms -> chunked
#   Qwen3-0.6B                     32768 tokens: 256 rows, chunked 176.8 ms, Liger 70.9 ms -> Liger
#   Llama-3.2-1B (V 128256, H 2048)  8192 tokens: 256 rows, chunked 48.7 ms, Liger 27.5 ms -> Liger
#   Llama-3.2-1B                   32768 tokens: 1024 rows, chunked 189.1 ms, Liger 76.0 ms -> Liger
# 256 rows separates all four. (Cut Cross-Entropy was slower than or equal to the better of the two at every
# one of these points, and its backward refuses fp32.)
LIGER_MIN_CHUNK_ROWS = 256


def use_fused_linear_cross_entropy(hidden_states: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether the fused kernel computes this loss: large enough, and the `lm_head` weight is a plain tensor.

    Under tensor parallelism (`tp_plan="auto"`) the weight is a DTensor sharded over the vocabulary and the
    `lm_head` module's hooks gather its output: only upstream's path (`lm_head` + loss) keeps that right.
    """
    if _is_distributed_tensor(weight):
        return False
    tokens = hidden_states.numel() // hidden_states.shape[-1]
    return tokens * weight.shape[0] >= FUSED_LINEAR_CROSS_ENTROPY_MIN_LOGITS


def _is_distributed_tensor(tensor: torch.Tensor) -> bool:
    if not torch.distributed.is_available():
        return False
    from torch.distributed.tensor import DTensor

    return isinstance(tensor, DTensor)


def liger_chunk_rows(tokens: int, vocab: int, hidden: int) -> int:
    """Rows per chunk in Liger's fused linear cross-entropy at this shape (its formula, default chunk_mem_const=1).

    >>> liger_chunk_rows(8192, 151936, 1024), liger_chunk_rows(8192, 128256, 2048)
    (64, 256)
    """
    inc_factor = math.ceil(vocab / hidden)
    rows = 1 << (math.ceil(tokens / inc_factor) - 1).bit_length()  # triton.next_power_of_2
    return min(rows, tokens)


def linear_cross_entropy_kernel_for(tokens: int, vocab: int, hidden: int):
    """The faster kernel at this shape on CUDA: Liger's when its chunks have `LIGER_MIN_CHUNK_ROWS` rows or more."""
    if liger_chunk_rows(tokens, vocab, hidden) >= LIGER_MIN_CHUNK_ROWS:
        return liger_linear_cross_entropy
    return chunked_linear_cross_entropy


def fastest_linear_cross_entropy(
    input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """The GPU files' fused kernel: per call, Liger's or the chunked one, whichever measured faster at this shape.

    `linear_cross_entropy_kernel_for` decides from the token count, vocabulary and hidden size (the rule and
    its measurements are at `LIGER_MIN_CHUNK_ROWS`). Off CUDA the chunked kernel runs (Liger's is Triton).
    """
    kernel = chunked_linear_cross_entropy
    if input.is_cuda:
        kernel = linear_cross_entropy_kernel_for(input.shape[0], weight.shape[0], weight.shape[1])
    return kernel(input, weight, target, bias, ignore_index=ignore_index, reduction=reduction)


def liger_linear_cross_entropy(
    input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Liger's `liger_fused_linear_cross_entropy` with this module's parameters (Liger's 5th is `ce_weight`)."""
    try:
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy
    except ImportError as error:
        raise ImportError(
            f"liger_linear_cross_entropy needs liger-kernel==0.8.5 (pip install 'patchgen[gpu]'): {error}"
        ) from None
    return liger_fused_linear_cross_entropy(
        input, weight, target, bias, ignore_index=ignore_index, reduction=reduction
    )


def torch_linear_cross_entropy(
    input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy of `input @ weight.T`, as Liger's fused kernel computes it, in plain torch.

    The logits are materialised (in fp32, as upstream's loss upcasts them): this is the CPU stand-in,
    not a memory saving.
    """
    logits = nn.functional.linear(input, weight, bias).float()
    return nn.functional.cross_entropy(logits, target, ignore_index=ignore_index, reduction=reduction)


def chunked_linear_cross_entropy(
    input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy of `input @ weight.T` without ever holding more than one chunk of the logits.

    The tokens are processed `CHUNKED_LINEAR_CROSS_ENTROPY_CHUNK_LOGITS // vocab` rows at a time: logits in
    the input's dtype (as `lm_head` makes them), upcast to fp32 (as upstream's loss does), log-sum-exp, and,
    while the chunk is at hand, its gradient `softmax - one_hot` (scaled as the reduction needs, cast back to
    the input's dtype) multiplied into the input and weight gradients. The backward only scales those by the
    incoming gradient (so the graph can be backpropagated once). Rows whose target is `ignore_index` add
    nothing. Plain torch: runs on any device.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"chunked_linear_cross_entropy: reduction must be 'mean' or 'sum', not {reduction!r}")
    # under no_grad (an evaluation loss) ctx.needs_input_grad still says True: only grad mode tells
    return _ChunkedLinearCrossEntropy.apply(
        input, weight, target, bias, ignore_index, reduction, torch.is_grad_enabled()
    )


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, weight, target, bias, ignore_index, reduction, grad_enabled):
        needs_input_grad, needs_weight_grad, _, needs_bias_grad = (
            grad_enabled and n for n in ctx.needs_input_grad[:4]
        )
        valid = target != ignore_index
        # mean: over the targets that count, as cross_entropy(reduction="mean", ignore_index=...) divides
        scale = 1.0 / valid.sum().float() if reduction == "mean" else torch.ones((), device=input.device)
        grad_input = torch.zeros_like(input) if needs_input_grad else None
        grad_weight = torch.zeros_like(weight) if needs_weight_grad else None
        grad_bias = torch.zeros_like(bias) if needs_bias_grad else None
        loss = torch.zeros((), dtype=torch.float32, device=input.device)
        rows = max(1, CHUNKED_LINEAR_CROSS_ENTROPY_CHUNK_LOGITS // weight.shape[0])
        for start in range(0, input.shape[0], rows):
            chunk = input[start : start + rows]
            chunk_valid = valid[start : start + rows]
            chunk_target = torch.where(chunk_valid, target[start : start + rows], 0)
            logits = nn.functional.linear(chunk, weight, bias).float()
            log_normalizer = torch.logsumexp(logits, dim=-1)
            target_logits = logits.gather(1, chunk_target[:, None]).squeeze(1)
            loss += torch.where(chunk_valid, log_normalizer - target_logits, 0.0).sum()
            if grad_input is None and grad_weight is None and grad_bias is None:
                continue
            # d loss / d logits = softmax - one_hot(target), for the rows that count; computed in place
            grad_logits = logits.sub_(log_normalizer[:, None]).exp_()
            grad_logits.scatter_add_(1, chunk_target[:, None], -torch.ones_like(grad_logits[:, :1]))
            grad_logits.mul_(torch.where(chunk_valid, scale, 0.0)[:, None])
            grad_logits = grad_logits.to(input.dtype)
            del logits  # the fp32 chunk: freed before the next chunk's logits are made
            if grad_input is not None:
                grad_input[start : start + rows] = grad_logits @ weight
            if grad_weight is not None:
                grad_weight.addmm_(grad_logits.T, chunk)
            if grad_bias is not None:
                grad_bias += grad_logits.sum(0)
            del grad_logits
        ctx.save_for_backward(grad_input, grad_weight, grad_bias)
        return loss * scale

    @staticmethod
    def backward(ctx, grad_output):
        # in place: no second [vocab, hidden] buffer at the start of the backward, when memory peaks; a second
        # backward through the same graph fails loudly (saved tensors modified) instead of scaling twice
        grads = [None if grad is None else grad.mul_(grad_output.to(grad.dtype)) for grad in ctx.saved_tensors]
        return grads[0], grads[1], None, grads[2], None, None, None


_CCE_BACKWARD_DTYPES = (torch.bfloat16, torch.float16)


def cce_linear_cross_entropy(
    input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Apple's Cut Cross-Entropy (`cut_cross_entropy.linear_cross_entropy`), exact gradients (no filtering).

    CCE's default skips gradient blocks whose softmax is below ~2**-12 (`filter_eps="high"`): faster, but
    not the gradient stock computes; on a freshly initialised model (near-uniform softmax) it skips almost
    everything, which would also flatter a benchmark. `filter_eps=None` keeps the exact gradient.
    """
    if bias is not None:
        raise ValueError("cce_linear_cross_entropy: Cut Cross-Entropy takes no lm_head bias")
    needs_grad = torch.is_grad_enabled() and (input.requires_grad or weight.requires_grad)
    if needs_grad and not (input.dtype in _CCE_BACKWARD_DTYPES and weight.dtype in _CCE_BACKWARD_DTYPES):
        # cut_cross_entropy's backward asserts this deep in autograd ("Backwards requires embeddings to be bf16
        # or fp16"); said here, in the forward, where the caller can still act on it
        raise TypeError(
            f"cce_linear_cross_entropy: Cut Cross-Entropy's backward supports bf16/fp16 only, not {input.dtype} "
            f"hidden states / {weight.dtype} lm_head weight: train in bf16, or use another loss kernel"
        )
    try:
        from cut_cross_entropy import linear_cross_entropy
    except ImportError as error:
        raise ImportError(
            f"cce_linear_cross_entropy needs cut-cross-entropy==25.1.1 (pip install 'patchgen[gpu]'): {error}"
        ) from None
    return linear_cross_entropy(input, weight, target, ignore_index=ignore_index, reduction=reduction, filter_eps=None)
