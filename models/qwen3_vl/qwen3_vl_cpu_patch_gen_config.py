"""Qwen3-VL, CPU-runnable: the structure of the GPU variant with pure-torch stand-ins for the Liger kernels.

Used by the tests to prove equivalence with stock HF on machines without a GPU.
Generated file: generated/qwen3_vl/patched_modeling_qwen3_vl_cpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.kernels.multimodal_kernels import TORCH_VISION_ROPE
from patchgen.sets.kernels.torch_kernels import TORCH_RMS_NORM, TORCH_ROPE
from patchgen.sets.losses.multimodal_loss import multimodal_loss_set, vision_language_forward_without_use_cache
from patchgen.sets.training_sets import TORCH_LINEAR_CROSS_ENTROPY


config = PatchConfig.extend(
    "models.qwen3_vl.qwen3_vl_base_patch_gen_config",
    target_file="patched_modeling_qwen3_vl_cpu.py",
    description="Qwen3-VL with pure-torch stand-ins for the Liger kernels (text; vision rope) and the fused loss",
)
config.use(
    TORCH_RMS_NORM,
    "Qwen3VLTextRMSNorm",
    note="the text decoder's norms, q_norm/k_norm included (the vision tower uses LayerNorm)",
)
config.use(TORCH_ROPE, "apply_rotary_pos_emb", note="the text decoder's rope (interleaved MRoPE folded into cos/sin)")
config.use(TORCH_VISION_ROPE, "apply_rotary_pos_emb_vision")
config.use(
    multimodal_loss_set(TORCH_LINEAR_CROSS_ENTROPY, vision_language_forward_without_use_cache),
    "Qwen3VLForConditionalGeneration",
    note="Qwen3-VL's arguments: use_cache passes in **kwargs",
)
