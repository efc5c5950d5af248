"""Mistral for GPU training: the base plus Liger's RMSNorm, SwiGLU MLP and rope, and a size-switched fused loss.

Generated file: generated/mistral/patched_modeling_mistral_gpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.kernels.liger_kernels import LIGER_RMS_NORM, LIGER_ROPE, LIGER_SWIGLU_MLP
from patchgen.sets.training_sets import FASTEST_LINEAR_CROSS_ENTROPY


config = PatchConfig.extend(
    "models.mistral.mistral_base_patch_gen_config",
    target_file="patched_modeling_mistral_gpu.py",
    description=(
        "Mistral with Liger RMSNorm, SwiGLU MLP and rope, and a loss chosen by size (for many logits a fused linear"
        " cross-entropy, Liger's or the chunked one by shape; upstream's below). No kernel for attention (HF's "
        "attention interface: sdpa or flash-attn by attn_implementation), the rotary embedding module or the token "
        "embedding"
    ),
)
# Not measured at Mistral's own shapes: the choices of Llama (same ops, hidden >= 2048 in the sizes usually
# trained). The loss is chosen per size at run time (patchgen.runtime.losses.use_fused_linear_cross_entropy).
config.use(LIGER_RMS_NORM, "MistralRMSNorm")
config.use(LIGER_SWIGLU_MLP, "MistralMLP")
config.use(LIGER_ROPE, "apply_rotary_pos_emb")
config.use(FASTEST_LINEAR_CROSS_ENTROPY, "MistralForCausalLM")
