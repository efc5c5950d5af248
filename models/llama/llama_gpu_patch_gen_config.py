"""Llama for GPU training: the base plus Liger's RMSNorm, SwiGLU MLP and rope, and a size-switched fused loss.

Generated file: generated/llama/patched_modeling_llama_gpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.kernels.liger_kernels import LIGER_RMS_NORM, LIGER_ROPE, LIGER_SWIGLU_MLP
from patchgen.sets.training_sets import FASTEST_LINEAR_CROSS_ENTROPY


config = PatchConfig.extend(
    "models.llama.llama_base_patch_gen_config",
    target_file="patched_modeling_llama_gpu.py",
    description=(
        "Llama with Liger RMSNorm, SwiGLU MLP and rope, and a loss chosen by size (for many logits a fused linear "
        "cross-entropy, Liger's or the chunked one by shape; upstream's below). No kernel for attention (HF's "
        "attention interface: sdpa or flash-attn by attn_implementation), the rotary embedding module or the token "
        "embedding"
    ),
)
# Per-op choices, measured by benchmarks/bench_train_step.py on an H200 (bf16, 8192 tokens, fwd+bwd,
# Llama-3.2-1B shapes; 2026-11-26): Liger wins every op at these shapes. Per size where it matters: the loss.
config.use(LIGER_RMS_NORM, "LlamaRMSNorm", note="Measured 8192x2048: torch 0.76 ms, Liger 0.31 ms (2.4x)")
config.use(
    LIGER_SWIGLU_MLP,
    "LlamaMLP",
    note=(
        "Llama's config.mlp_bias=True is not supported: the kernel has no biases. Measured 8192x2048->8192: torch "
        "3.98 ms / 768 MiB, Liger 3.74 ms / 544 MiB"
    ),
)
config.use(LIGER_ROPE, "apply_rotary_pos_emb", note="Measured q 32x8192x64: torch 0.75 ms, Liger 0.33 ms (2.3x)")
config.use(
    FASTEST_LINEAR_CROSS_ENTROPY,
    "LlamaForCausalLM",
    note=(
        "upstream's loss below 2**29 logits (2048 tokens: torch 7.3 ms, chunked 13.1, Liger 24.1); above, Liger's "
        "chunks have >= 256 rows and Liger wins: 8192 tokens chunked 48.7 ms, Liger 27.5; 32768 tokens chunked "
        "189.1 ms, Liger 76.0 (H200, 2026-11-27)"
    ),
)
