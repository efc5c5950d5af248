"""Which RMSNorm / SwiGLU kernel a size-switched module runs per call: upstream's torch ops or Liger's.

The size-switched modules (`patchgen/sets/kernels/switched_kernels.py`, copied into the generated file) call
`use_liger_norm_mlp(hidden_states)` in their forward: Liger's Triton kernel on CUDA from
`LIGER_NORM_MLP_MIN_TOKENS` tokens, upstream's plain torch code below it and on every other device.
The same rule as the loss's (`patchgen/runtime/losses.py`), for the norm and the MLP.

Tokens are batch x sequence (`tokens_in`), so every norm and MLP of one step takes the same branch: the
hidden-state norms and the MLP see `[batch, seq, hidden]`, Qwen3's per-head q/k norms
`[batch, seq, heads, head_dim]`. Under sequence parallelism the norms and MLP run on this rank's slice, so the
count is this rank's tokens (the size each kernel call has).
"""

import os

import torch


# Liger's RMSNorm / SwiGLU kernels from this many tokens (batch x sequence) per call, upstream's torch ops below.
# Measured per op at Qwen3-0.6B shapes (hidden 1024, intermediate 3072), forward + backward, bf16, on an H200,
# median ms per call, torch vs Liger (benchmarks/results/2026-11-27-h200-run1.md, "Per-op microbenchmark"):
#   tokens    rms_norm torch / Liger    swiglu torch / Liger
#      512       0.510 / 0.701             0.783 / 0.942
#     2048       0.853 / 0.885             1.003 / 1.567
#     8192       0.817 / 0.802             1.076 / 1.168
#    32768       1.470 / 0.726             3.239 / 2.971
# Below 8192 tokens torch is faster for both (the steps there are launch-bound: 1.5-9% MFU). From 8192 the norm is
# Liger's, and the MLP too although torch's was 0.09 ms faster per call there: memory. Upstream's torch code keeps
# more for the backward than Liger's kernels (upstream's saved tensors counted on CPU with autograd's
# saved_tensors_hooks in bf16; Liger's read from liger_kernel/ops/rms_norm.py and swiglu.py): a norm keeps its fp32
# upcast and bf16 result (6 bytes per element; Liger: the bf16 input, 2), the MLP keeps act(gate) besides gate, up
# and their product (4 x intermediate x 2 bytes per token; Liger: 3x). At Qwen3-0.6B shapes (2 norms of 1024,
# q_norm 16x128, k_norm 8x128, MLP 3072) that is ~26 KiB more per token per layer: ~5.6 GiB more over 28 layers at
# 8192 tokens, against Liger's whole-step peak of 11.2 GiB there (issue 14's goal: Liger's peak + 5% from sequence
# 8192). Between 2048 and 8192 tokens nothing was measured; the switch sits at the first measured size where
# Liger's kernels are needed. The step-level effect is not measured yet (README, "Equivalence and benchmarks").
# PATCHGEN_LIGER_NORM_MLP_MIN_TOKENS overrides it (0: Liger's kernels at every size on CUDA; a huge value:
# upstream's torch ops always).
LIGER_NORM_MLP_MIN_TOKENS = int(os.environ.get("PATCHGEN_LIGER_NORM_MLP_MIN_TOKENS", 8192))


def tokens_in(hidden_states: torch.Tensor) -> int:
    """Batch x sequence of a norm or MLP input: `[batch, seq, ...]` (hidden states, per-head q/k), or `[tokens, dim]`.

    >>> tokens_in(torch.empty(2, 4096, 1024)), tokens_in(torch.empty(2, 4096, 16, 128)), tokens_in(torch.empty(8, 64))
    (8192, 8192, 8)
    """
    if hidden_states.dim() >= 3:
        return hidden_states.shape[0] * hidden_states.shape[1]
    return hidden_states.shape[0]


def liger_norm_mlp_for_tokens(tokens: int) -> bool:
    """Whether Liger's RMSNorm / SwiGLU kernels run (on CUDA) for a call over `tokens` tokens."""
    return tokens >= LIGER_NORM_MLP_MIN_TOKENS


def use_liger_norm_mlp(hidden_states: torch.Tensor) -> bool:
    """Liger's kernel for this call: on CUDA (Triton) and at or above `LIGER_NORM_MLP_MIN_TOKENS` tokens."""
    return hidden_states.is_cuda and liger_norm_mlp_for_tokens(tokens_in(hidden_states))
