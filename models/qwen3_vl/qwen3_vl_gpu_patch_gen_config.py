"""Qwen3-VL for GPU training: the base plus Liger's kernels (text; vision rope) and a size-switched loss.

Generated file: generated/qwen3_vl/patched_modeling_qwen3_vl_gpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.kernels.liger_kernels import LIGER_RMS_NORM, LIGER_ROPE
from patchgen.sets.kernels.multimodal_kernels import LIGER_VISION_ROPE
from patchgen.sets.losses.multimodal_loss import multimodal_loss_set, vision_language_forward_without_use_cache
from patchgen.sets.training_sets import FASTEST_LINEAR_CROSS_ENTROPY


config = PatchConfig.extend(
    "models.qwen3_vl.qwen3_vl_base_patch_gen_config",
    target_file="patched_modeling_qwen3_vl_gpu.py",
    description=(
        "Qwen3-VL with Liger's RMSNorm (q_norm/k_norm included) and rope on the text decoder, Liger's vision rope, "
        "and a loss chosen by size (chunked linear cross-entropy for many logits, upstream's below). No kernel for "
        "the text MLP (the SwiGLU sets are refused: the vision config's gelu_pytorch_tanh default), the vision "
        "blocks' LayerNorm and fc1/GELU/fc2 MLP, attention (HF's attention interface), the rotary embedding modules, "
        "the patch embedding (Conv3d) or the patch mergers. Not measured on a GPU yet"
    ),
)
config.use(
    LIGER_RMS_NORM, "Qwen3VLTextRMSNorm", note="the text decoder's norms, q_norm/k_norm included (all pre-norm)"
)
config.use(LIGER_ROPE, "apply_rotary_pos_emb", note="the text decoder's rope (interleaved MRoPE folded into cos/sin)")
config.use(LIGER_VISION_ROPE, "apply_rotary_pos_emb_vision")
config.use(
    multimodal_loss_set(FASTEST_LINEAR_CROSS_ENTROPY, vision_language_forward_without_use_cache),
    "Qwen3VLForConditionalGeneration",
    note="Qwen3-VL's arguments: use_cache passes in **kwargs",
)
