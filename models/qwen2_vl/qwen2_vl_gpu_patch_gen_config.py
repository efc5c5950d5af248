"""Qwen2-VL for GPU training: the base plus Liger's kernels (text; vision rope) and a size-switched loss.

Generated file: generated/qwen2_vl/patched_modeling_qwen2_vl_gpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.kernels.liger_kernels import LIGER_RMS_NORM, LIGER_ROPE
from patchgen.sets.kernels.multimodal_kernels import LIGER_VISION_ROPE
from patchgen.sets.losses.multimodal_loss import multimodal_loss_set, vision_language_forward
from patchgen.sets.training_sets import FASTEST_LINEAR_CROSS_ENTROPY


config = PatchConfig.extend(
    "models.qwen2_vl.qwen2_vl_base_patch_gen_config",
    target_file="patched_modeling_qwen2_vl_gpu.py",
    description=(
        "Qwen2-VL with Liger's RMSNorm, SwiGLU MLP and rope on the text decoder, Liger's vision rope, and a loss "
        "chosen by size (chunked linear cross-entropy for many logits, upstream's below). No kernel for the vision "
        "blocks' LayerNorm and fc1/GELU/fc2 MLP (Liger's apply_liger_kernel_to_qwen2_vl binds LigerLayerNorm there; "
        "no shared set has it yet), attention (HF's attention interface), the rotary embedding modules, the patch "
        "embedding (Conv3d) or the merger's GELU MLP. Not measured on a GPU yet"
    ),
)
config.use(LIGER_RMS_NORM, "Qwen2VLRMSNorm", note="the text decoder's norms (all pre-norm)")
config.use(LIGER_ROPE, "apply_rotary_pos_emb", note="the text decoder's rope (3-D sections folded into cos/sin)")
config.use(LIGER_VISION_ROPE, "apply_rotary_pos_emb_vision")
config.use(
    multimodal_loss_set(FASTEST_LINEAR_CROSS_ENTROPY, vision_language_forward),
    "Qwen2VLForConditionalGeneration",
    note="Qwen2-VL's arguments: no second_per_grid_ts",
)
