"""Qwen3 for GPU training: the base plus RMSNorm and SwiGLU chosen by size, Liger's rope, and a loss chosen by size.

Generated file: generated/qwen3/patched_modeling_qwen3_gpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.kernels.liger_kernels import LIGER_ROPE
from patchgen.sets.kernels.switched_kernels import SIZE_SWITCHED_RMS_NORM, SIZE_SWITCHED_SWIGLU_MLP
from patchgen.sets.training_sets import FASTEST_LINEAR_CROSS_ENTROPY


config = PatchConfig.extend(
    "models.qwen3.qwen3_base_patch_gen_config",
    target_file="patched_modeling_qwen3_gpu.py",
    description=(
        "Qwen3 with RMSNorm and SwiGLU MLP chosen per call by size (upstream's torch ops below 8192 tokens, Liger's "
        "kernels from 8192 on CUDA), Liger's rope, and a loss chosen by size (for many logits a fused linear "
        "cross-entropy, Liger's or the chunked one by shape; upstream's below). No kernel for attention (HF's "
        "attention interface: sdpa or flash-attn by attn_implementation), the rotary embedding module or the token "
        "embedding. quack-kernels (CuTe-DSL RMSNorm / cross-entropy) is not a candidate: it needs "
        "nvidia-cutlass-dsl, whose CUDA 13 library wheel alone is 92 MB (the GPU machine receives at most ~60 MiB "
        "of wheels)"
    ),
)
# Per-op choices at Qwen3-0.6B shapes (hidden 1024, intermediate 3072, vocab 151936), forward + backward, bf16, ms
# per call, measured side by side by benchmarks/bench_train_step.py on an H200
# (benchmarks/results/2026-11-27-h200-run1.md):
#   rms_norm   512 tokens: torch 0.51, Liger 0.70;  2048: torch 0.85, Liger 0.89
#              8192 tokens: torch 0.82, Liger 0.80; 32768: torch 1.47, Liger 0.73 (compiled 0.66 / 0.82 / 0.88 / 1.00)
#   swiglu     512 tokens: torch 0.78, Liger 0.94;  2048: torch 1.00, Liger 1.57
#              8192 tokens: torch 1.08, Liger 1.17; 32768: torch 3.24, Liger 2.97 (compiled 1.30 / 1.55 / 1.06 / 3.12)
# So the norm and the MLP switch per call (patchgen/sets/kernels/switched_kernels.py): upstream's torch ops below
# patchgen.runtime.kernel_sizes.LIGER_NORM_MLP_MIN_TOKENS (8192) tokens, where run 2's step with Liger's kernels
# missed stock (0.79x at 512, 0.94x at 2048 tokens); Liger's from 8192, for speed at 32768 and, at 8192, for the
# memory its kernels save (torch's ops keep ~5.6 GiB more activations over the step there; the reckoning is at the
# threshold). The step-level effect of the switch is not measured yet. The compiled regions
# (patchgen/sets/kernels/compiled_kernels.py: COMPILED_RMS_NORM, COMPILED_GATED_MLP) won only at <= 2048 tokens and by
# <= 0.05 ms per call, and cost compile time at every new shape (the compiled Qwen3 file ran out of its time share
# in that run: 4x8192 skipped); they stay in the repo as measured alternatives, not bound here.
config.use(
    SIZE_SWITCHED_RMS_NORM,
    "Qwen3RMSNorm",
    note=(
        "also q_norm/k_norm, which Qwen3Attention builds by this name (one token count, batch x sequence, for all "
        "norms of a step). Measured 512x1024: torch 0.51 ms, Liger 0.70; 32768x1024: torch 1.47 ms / 768 MiB, "
        "Liger 0.73 ms / 65 MiB"
    ),
)
config.use(
    SIZE_SWITCHED_SWIGLU_MLP,
    "Qwen3MLP",
    note=(
        "Measured 2048x1024->3072: torch 1.00 ms, Liger 1.57; 32768x1024->3072: torch 3.24 ms / 1152 MiB, Liger "
        "2.97 ms / 774 MiB"
    ),
)
config.use(LIGER_ROPE, "apply_rotary_pos_emb", note="Measured q 16x32768x128: torch 3.02 ms, Liger 0.62 ms (4.8x)")
config.use(
    FASTEST_LINEAR_CROSS_ENTROPY,
    "Qwen3ForCausalLM",
    note=(
        "upstream's loss below 2**29 logits (2048 tokens: torch 6.4 ms, chunked 12.2, Liger 56.7); above, 8192 "
        "tokens (Liger chunks of 64 rows): chunked 45.4 ms, Liger 58.6; 32768 tokens (256 rows): chunked 176.8 "
        "ms, Liger 70.9"
    ),
)
