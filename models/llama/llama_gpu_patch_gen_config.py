"""Llama for GPU training: the base plus Liger's RMSNorm, SwiGLU MLP, rope and fused linear cross-entropy.

Generated file: generated/llama/patched_modeling_llama_gpu.py
"""

from models.common.liger_kernels import LIGER_RMS_NORM, LIGER_ROPE, LIGER_SWIGLU_MLP
from models.common.training_sets import LIGER_FUSED_LINEAR_CROSS_ENTROPY
from patchgen import PatchConfig


config = PatchConfig.extend(
    "models.llama.llama_base_patch_gen_config",
    target_file="patched_modeling_llama_gpu.py",
    description=(
        "Llama with Liger RMSNorm, SwiGLU MLP, rope and fused linear cross-entropy. No Liger kernel for attention "
        "(HF's attention interface: sdpa or flash-attn by attn_implementation), the rotary embedding module or the "
        "token embedding"
    ),
)
config.use(LIGER_RMS_NORM, "LlamaRMSNorm")
config.use(
    LIGER_SWIGLU_MLP, "LlamaMLP", note="Llama's config.mlp_bias=True is not supported: the kernel has no biases"
)
config.use(LIGER_ROPE, "apply_rotary_pos_emb")
config.use(LIGER_FUSED_LINEAR_CROSS_ENTROPY, "LlamaForCausalLM")
