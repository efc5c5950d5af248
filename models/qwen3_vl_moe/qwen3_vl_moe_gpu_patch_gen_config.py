"""Qwen3-VL-MoE for GPU training: the base plus Liger's RMSNorm, fused experts and rope (text; vision rope).

No fused linear cross-entropy: the conditional-generation forward adds the router load-balancing loss, which the
shared multimodal fused-loss forward does not compute, so upstream's forward (and loss) is kept.
Generated file: generated/qwen3_vl_moe/patched_modeling_qwen3_vl_moe_gpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.experts.liger_moe_experts import LIGER_EXPERTS
from patchgen.sets.kernels.liger_kernels import LIGER_RMS_NORM, LIGER_ROPE
from patchgen.sets.kernels.multimodal_kernels import LIGER_VISION_ROPE


config = PatchConfig.extend(
    "models.qwen3_vl_moe.qwen3_vl_moe_base_patch_gen_config",
    target_file="patched_modeling_qwen3_vl_moe_gpu.py",
    description=(
        "Qwen3-VL-MoE with Liger's RMSNorm (q_norm/k_norm included), fused experts and rope on the text decoder, and "
        "Liger's vision rope. No Liger kernel used for: the router, the dense MLP of mlp_only_layers (the SwiGLU sets "
        "are refused: the vision config's gelu_pytorch_tanh default), attention (HF's attention interface), the "
        "vision blocks and mergers, and the loss: the shared fused-loss forward has no router aux loss, so upstream's "
        "forward and loss are kept. Not measured on a GPU yet"
    ),
)
config.use(
    LIGER_RMS_NORM,
    "Qwen3VLMoeTextRMSNorm",
    note="the text decoder's norms, q_norm/k_norm included (all pre-norm)",
)
config.use(LIGER_EXPERTS, "Qwen3VLMoePreTrainedModel", note="Qwen3VLMoeTextExperts keeps upstream's dispatch")
config.use(LIGER_ROPE, "apply_rotary_pos_emb", note="the text decoder's rope (interleaved MRoPE folded into cos/sin)")
config.use(LIGER_VISION_ROPE, "apply_rotary_pos_emb_vision")
