"""Qwen2.5-VL, CPU-runnable: the structure of the GPU variant with pure-torch stand-ins for the Liger kernels.

Used by the tests to prove equivalence with stock HF on machines without a GPU.
Generated file: generated/qwen2_5_vl/patched_modeling_qwen2_5_vl_cpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.kernels.multimodal_kernels import GATED_SILU_MLP_WITH_BIAS, TORCH_VISION_ROPE
from patchgen.sets.kernels.torch_kernels import TORCH_RMS_NORM, TORCH_ROPE, TORCH_SWIGLU_MLP
from patchgen.sets.losses.multimodal_loss import MULTIMODAL_TORCH_LINEAR_CROSS_ENTROPY


config = PatchConfig.extend(
    "models.qwen2_5_vl.qwen2_5_vl_base_patch_gen_config",
    target_file="patched_modeling_qwen2_5_vl_cpu.py",
    description="Qwen2.5-VL with pure-torch stand-ins for the Liger kernels (text and vision) and the fused loss",
)
config.use(TORCH_RMS_NORM, "Qwen2_5_VLRMSNorm", note="text decoder, vision blocks and the patch merger (all pre-norm)")
config.use(TORCH_SWIGLU_MLP, "Qwen2MLP", note="the text decoder's MLP")
config.use(GATED_SILU_MLP_WITH_BIAS, "Qwen2_5_VLMLP", note="the vision blocks' MLP (biased projections)")
config.use(TORCH_ROPE, "apply_rotary_pos_emb", note="the text decoder's rope (3-D sections folded into cos/sin)")
config.use(TORCH_VISION_ROPE, "apply_rotary_pos_emb_vision")
config.use(MULTIMODAL_TORCH_LINEAR_CROSS_ENTROPY, "Qwen2_5_VLForConditionalGeneration")
