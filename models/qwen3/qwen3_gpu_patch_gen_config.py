"""Qwen3 for GPU training: the base plus compiled RMSNorm and MLP, Liger's rope and a size-switched fused loss.

Generated file: generated/qwen3/patched_modeling_qwen3_gpu.py
"""

from models.common.compiled_kernels import COMPILED_GATED_MLP, COMPILED_RMS_NORM
from models.common.liger_kernels import LIGER_ROPE
from models.common.training_sets import CHUNKED_LINEAR_CROSS_ENTROPY
from patchgen import PatchConfig


config = PatchConfig.extend(
    "models.qwen3.qwen3_base_patch_gen_config",
    target_file="patched_modeling_qwen3_gpu.py",
    description=(
        "Qwen3 with torch.compile'd RMSNorm and MLP, Liger's rope and a loss chosen by size (chunked linear "
        "cross-entropy for many logits, upstream's below). No kernel for attention (HF's attention interface: "
        "sdpa or flash-attn by attn_implementation), the rotary embedding module or the token embedding. "
        "quack-kernels (CuTe-DSL RMSNorm / cross-entropy) is not a candidate: it needs nvidia-cutlass-dsl, whose "
        "CUDA 13 library wheel alone is 92 MB (the GPU machine receives at most ~60 MiB of wheels)"
    ),
)
# Per-op choices at Qwen3-0.6B shapes (hidden 1024, vocab 151936), from benchmarks/bench_train_step.py on an H200
# (bf16, fwd+bwd, 2026-11-26, 8192 tokens): eager torch beat Liger on RMSNorm and SwiGLU in time but not in memory,
# so both are compiled regions here (fused like Liger's kernels, fewer launches than eager). Per size where it
# matters: the loss (below). The next GPU run's per-op table (512-32768 tokens, torch/liger/compiled) confirms it.
config.use(
    COMPILED_RMS_NORM,
    "Qwen3RMSNorm",
    note=(
        "also q_norm/k_norm, which Qwen3Attention builds by this name. Measured 8192x1024: torch 0.57 ms / 192 "
        "MiB, Liger 0.69 ms / 17 MiB; compiled: pending the GPU run"
    ),
)
config.use(
    COMPILED_GATED_MLP,
    "Qwen3MLP",
    note="Measured 8192x1024->3072: torch 0.85 ms / 288 MiB, Liger 0.99 ms / 198 MiB; compiled: pending the GPU run",
)
config.use(LIGER_ROPE, "apply_rotary_pos_emb", note="Measured q 16x8192x128: torch 0.78 ms, Liger 0.31 ms (2.5x)")
config.use(
    CHUNKED_LINEAR_CROSS_ENTROPY,
    "Qwen3ForCausalLM",
    note=(
        "per size: upstream's loss below 2**29 logits (2048 tokens: the Liger-loss step ran at 0.58x stock), the "
        "chunked kernel above (8192x1024 @ vocab 151936: torch 25 ms / 13.9 GiB, Liger 59 ms / 19 MiB)"
    ),
)
