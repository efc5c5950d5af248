"""Qwen2.5-VL for GPU training: the base plus Liger's kernels (text and vision) and a size-switched loss.

Generated file: generated/qwen2_5_vl/patched_modeling_qwen2_5_vl_gpu.py
"""

from liger_kernel.transformers.functional import liger_swiglu

from patchgen import PatchConfig
from patchgen.sets.kernels.liger_kernels import LIGER_RMS_NORM, LIGER_ROPE, LIGER_SWIGLU_MLP
from patchgen.sets.kernels.multimodal_kernels import GATED_SILU_MLP_WITH_BIAS, LIGER_VISION_ROPE
from patchgen.sets.losses.multimodal_loss import MULTIMODAL_FASTEST_LINEAR_CROSS_ENTROPY


config = PatchConfig.extend(
    "models.qwen2_5_vl.qwen2_5_vl_base_patch_gen_config",
    target_file="patched_modeling_qwen2_5_vl_gpu.py",
    description=(
        "Qwen2.5-VL with Liger RMSNorm (text and vision), SwiGLU MLP (text; the vision MLP keeps its biases and "
        "calls Liger's silu*up kernel) and rope (text and vision), as Liger's apply_liger_kernel_to_qwen2_5_vl "
        "(which adds neither the vision MLP nor, on transformers 5, a rope kernel), and a loss chosen by size "
        "(chunked linear cross-entropy for many logits, upstream's below). No kernel for attention (HF's attention "
        "interface), the rotary embedding modules, the patch embedding (Conv3d) or the merger's GELU MLP. Not "
        "measured on a GPU yet"
    ),
)
config.use(LIGER_RMS_NORM, "Qwen2_5_VLRMSNorm", note="text decoder, vision blocks and the patch merger (all pre-norm)")
config.use(LIGER_SWIGLU_MLP, "Qwen2MLP", note="the text decoder's MLP")
config.use(
    GATED_SILU_MLP_WITH_BIAS,
    "Qwen2_5_VLMLP",
    bind={"silu_mul": liger_swiglu},
    note="the vision blocks' MLP: biased projections kept, Liger's silu*up kernel",
)
config.use(LIGER_ROPE, "apply_rotary_pos_emb", note="the text decoder's rope (3-D sections folded into cos/sin)")
config.use(LIGER_VISION_ROPE, "apply_rotary_pos_emb_vision")
config.use(MULTIMODAL_FASTEST_LINEAR_CROSS_ENTROPY, "Qwen2_5_VLForConditionalGeneration")
