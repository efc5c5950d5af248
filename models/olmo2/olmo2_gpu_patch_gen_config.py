"""OLMo-2 for GPU training: the base plus Liger's out-of-place RMSNorm, SwiGLU MLP and rope, and a size-switched loss.

Generated file: generated/olmo2/patched_modeling_olmo2_gpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.kernels.liger_kernels import LIGER_RMS_NORM_OUT_OF_PLACE, LIGER_ROPE, LIGER_SWIGLU_MLP
from patchgen.sets.training_sets import FASTEST_LINEAR_CROSS_ENTROPY


config = PatchConfig.extend(
    "models.olmo2.olmo2_base_patch_gen_config",
    target_file="patched_modeling_olmo2_gpu.py",
    description=(
        "OLMo-2 with Liger RMSNorm (out of place), SwiGLU MLP and rope (the kernels Liger's "
        "apply_liger_kernel_to_olmo2 uses), and a loss chosen by size (for many logits a fused linear "
        "cross-entropy, Liger's or the chunked one by shape; upstream's below), as the Llama file. No kernel for "
        "attention (HF's attention interface), the rotary embedding module or the token embedding. Not measured on "
        "a GPU yet"
    ),
)
config.use(
    LIGER_RMS_NORM_OUT_OF_PLACE,
    "Olmo2RMSNorm",
    note=(
        "post-norm layers: the in-place kernel would corrupt the residual's gradient (tests/test_in_place_norm_hazard"
        ".py). 'llama' casting, as Liger's OLMo-2 patch: upstream scales by the weight in fp32 before casting back"
    ),
)
config.use(LIGER_SWIGLU_MLP, "Olmo2MLP")
config.use(LIGER_ROPE, "apply_rotary_pos_emb")
config.use(FASTEST_LINEAR_CROSS_ENTROPY, "Olmo2ForCausalLM")
