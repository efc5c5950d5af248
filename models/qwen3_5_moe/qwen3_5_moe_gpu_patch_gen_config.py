"""Qwen3.5-MoE for GPU training: the base plus Liger's RMSNorm, fused experts and rope, and flash-linear-attention's
chunked gated delta rule.

No fused linear cross-entropy: both heads' forwards add the router load-balancing loss, which the shared fused-loss
forwards do not compute, so upstream's forwards (and loss) are kept, as for Qwen3-Next.
Generated file: generated/qwen3_5_moe/patched_modeling_qwen3_5_moe_gpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.attention.ulysses_linear_attention import ULYSSES_GATED_DELTA_NET, separate_qkv_z_b_a_projection
from patchgen.sets.experts.liger_moe_experts import LIGER_EXPERTS
from patchgen.sets.kernels.liger_kernels import LIGER_GEMMA_RMS_NORM, LIGER_ROPE
from patchgen.sets.kernels.linear_attention_kernels import fla_chunk_gated_delta_rule
from patchgen.sets.kernels.multimodal_kernels import LIGER_VISION_ROPE


config = PatchConfig.extend(
    "models.qwen3_5_moe.qwen3_5_moe_base_patch_gen_config",
    target_file="patched_modeling_qwen3_5_moe_gpu.py",
    description=(
        "Qwen3.5-MoE with Liger's (1 + w) RMSNorm (also q_norm/k_norm), fused experts and rope on the text decoder, "
        "Liger's vision rope, and flash-linear-attention's chunked gated delta rule (imported when first called). "
        "Not applied: the fused loss (upstream's forwards add the router aux loss), a SwiGLU kernel for the shared "
        "expert (refused: the vision config's GELU default), kernels for the delta-net's gated RMSNorm and short "
        "convolution, the vision blocks' LayerNorm and GELU MLPs, attention (HF's attention interface), the router "
        "or the embeddings. Not measured on a GPU yet"
    ),
)
config.use(
    ULYSSES_GATED_DELTA_NET,
    linear_attention="Qwen3_5MoeGatedDeltaNet",
    bind={
        "project_linear_inputs": separate_qkv_z_b_a_projection,
        "torch_chunk_gated_delta_rule": fla_chunk_gated_delta_rule,
    },
    note="the chunked delta rule is flash-linear-attention's kernel",
)
config.use(
    LIGER_GEMMA_RMS_NORM,
    "Qwen3_5MoeRMSNorm",
    note="(1 + weight), fp32 product: LigerRMSNormForGemma3 has the defaults of Liger's LigerRMSNormForQwen3Next",
)
config.use(LIGER_EXPERTS, "Qwen3_5MoePreTrainedModel", note="Qwen3_5MoeExperts keeps upstream's dispatch")
config.use(LIGER_ROPE, "apply_rotary_pos_emb", note="sees only the rotated channels (partial_rotary)")
config.use(LIGER_VISION_ROPE, "apply_rotary_pos_emb_vision")
