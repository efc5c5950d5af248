"""Qwen3-MoE for GPU training: the base plus Liger's RMSNorm, fused experts, SwiGLU MLP and rope.

No fused linear cross-entropy: the causal-LM forward adds the router load-balancing loss, which the
shared fused-loss forward does not compute, so upstream's forward (and loss) is kept.
Generated file: generated/qwen3_moe/patched_modeling_qwen3_moe_gpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.experts.liger_moe_experts import LIGER_EXPERTS
from patchgen.sets.kernels.liger_kernels import LIGER_RMS_NORM, LIGER_ROPE, LIGER_SWIGLU_MLP


config = PatchConfig.extend(
    "models.qwen3_moe.qwen3_moe_base_patch_gen_config",
    target_file="patched_modeling_qwen3_moe_gpu.py",
    description=(
        "Qwen3-MoE with Liger RMSNorm (also q_norm/k_norm), fused experts, SwiGLU dense MLP and rope. No Liger "
        "kernel used for: the router (Qwen3MoeTopKRouter), attention (HF's sdpa/flash-attn), and the loss: the "
        "shared fused-loss forward has no router aux loss, so upstream's forward and loss are kept"
    ),
)
config.use(LIGER_RMS_NORM, "Qwen3MoeRMSNorm", note="Qwen3MoeAttention builds q_norm/k_norm with it too")
config.use(LIGER_EXPERTS, "Qwen3MoePreTrainedModel", note="Qwen3MoeExperts keeps upstream's dispatch")
config.use(LIGER_SWIGLU_MLP, "Qwen3MoeMLP", note="the dense MLP of mlp_only_layers; Liger's own patch leaves it")
config.use(LIGER_ROPE, "apply_rotary_pos_emb")
