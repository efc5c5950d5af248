"""Phi-3 for GPU training: the base plus Liger's RMSNorm, fused-gate_up SwiGLU MLP and rope, and a size-switched loss.

Generated file: generated/phi3/patched_modeling_phi3_gpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.kernels.liger_kernels import LIGER_FUSED_SWIGLU_MLP, LIGER_RMS_NORM, LIGER_ROPE
from patchgen.sets.training_sets import FASTEST_LINEAR_CROSS_ENTROPY


config = PatchConfig.extend(
    "models.phi3.phi3_base_patch_gen_config",
    target_file="patched_modeling_phi3_gpu.py",
    description=(
        "Phi-3 with Liger RMSNorm, SwiGLU MLP (fused gate_up_proj kept) and rope (the kernels Liger's "
        "apply_liger_kernel_to_phi3 uses), and a loss chosen by size (for many logits a fused linear cross-entropy,"
        " Liger's or the chunked one by shape; upstream's below), as the Llama file. No kernel for attention (HF's "
        "attention interface), the rotary embedding module or the token embedding. Not measured on a GPU yet"
    ),
)
config.use(LIGER_RMS_NORM, "Phi3RMSNorm", note="pre-norm layers: the in-place kernel is safe")
config.use(LIGER_FUSED_SWIGLU_MLP, "Phi3MLP", note="keeps the fused gate_up_proj (state-dict keys unchanged)")
config.use(LIGER_ROPE, "apply_rotary_pos_emb", note="sees only the rotated channels (the partial_rotary step)")
config.use(FASTEST_LINEAR_CROSS_ENTROPY, "Phi3ForCausalLM")
