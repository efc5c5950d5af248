"""Qwen3-VL-MoE, CPU-runnable: the structure of the GPU variant with pure-torch stand-ins for the Liger kernels.

Used by the tests to prove equivalence with stock HF on machines without a GPU.
Generated file: generated/qwen3_vl_moe/patched_modeling_qwen3_vl_moe_cpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.experts.torch_moe_experts import TORCH_EXPERTS
from patchgen.sets.kernels.multimodal_kernels import TORCH_VISION_ROPE
from patchgen.sets.kernels.torch_kernels import TORCH_RMS_NORM, TORCH_ROPE


config = PatchConfig.extend(
    "models.qwen3_vl_moe.qwen3_vl_moe_base_patch_gen_config",
    target_file="patched_modeling_qwen3_vl_moe_cpu.py",
    description=(
        "Qwen3-VL-MoE with pure-torch stand-ins for the Liger kernels (text; vision rope; experts); upstream loss kept, "
        "as in the GPU file"
    ),
)
config.use(
    TORCH_RMS_NORM,
    "Qwen3VLMoeTextRMSNorm",
    note="the text decoder's norms, q_norm/k_norm included (the vision tower uses LayerNorm)",
)
config.use(TORCH_EXPERTS, "Qwen3VLMoePreTrainedModel", note="Qwen3VLMoeTextExperts keeps upstream's dispatch")
config.use(TORCH_ROPE, "apply_rotary_pos_emb", note="the text decoder's rope (interleaved MRoPE folded into cos/sin)")
config.use(TORCH_VISION_ROPE, "apply_rotary_pos_emb_vision")
