"""Qwen3 for GPU training: the base plus Liger's RMSNorm, SwiGLU MLP, rope and fused linear cross-entropy.

Generated file: generated/qwen3/patched_modeling_qwen3_gpu.py
"""

from models.common.liger_kernels import LIGER_RMS_NORM, LIGER_ROPE, LIGER_SWIGLU_MLP
from models.common.training_sets import LIGER_FUSED_LINEAR_CROSS_ENTROPY
from patchgen import PatchConfig


config = PatchConfig.extend(
    "models.qwen3.qwen3_base_patch_gen_config",
    target_file="patched_modeling_qwen3_gpu.py",
    description=(
        "Qwen3 with Liger RMSNorm, SwiGLU MLP, rope and fused linear cross-entropy. No Liger kernel for attention "
        "(HF's attention interface: sdpa or flash-attn by attn_implementation), the rotary embedding module or the "
        "token embedding"
    ),
)
config.use(LIGER_RMS_NORM, "Qwen3RMSNorm", note="also q_norm/k_norm, which Qwen3Attention builds by this name")
config.use(LIGER_SWIGLU_MLP, "Qwen3MLP")
config.use(LIGER_ROPE, "apply_rotary_pos_emb")
config.use(LIGER_FUSED_LINEAR_CROSS_ENTROPY, "Qwen3ForCausalLM")
