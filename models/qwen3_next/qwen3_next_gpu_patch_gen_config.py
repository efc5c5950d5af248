"""Qwen3-Next for GPU training: the base plus Liger's RMSNorm, fused experts, SwiGLU MLP and rope, and
flash-linear-attention's chunked gated delta rule.

No fused linear cross-entropy: the causal-LM forward adds the router load-balancing loss, which the
shared fused-loss forward does not compute, so upstream's forward (and loss) is kept, as for Qwen3-MoE.
Generated file: generated/qwen3_next/patched_modeling_qwen3_next_gpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.attention.ulysses_linear_attention import ULYSSES_GATED_DELTA_NET, fused_qkvz_ba_projection
from patchgen.sets.experts.liger_moe_experts import LIGER_EXPERTS
from patchgen.sets.kernels.liger_kernels import LIGER_GEMMA_RMS_NORM, LIGER_ROPE, LIGER_SWIGLU_MLP
from patchgen.sets.kernels.linear_attention_kernels import fla_chunk_gated_delta_rule


config = PatchConfig.extend(
    "models.qwen3_next.qwen3_next_base_patch_gen_config",
    target_file="patched_modeling_qwen3_next_gpu.py",
    description=(
        "Qwen3-Next with Liger's (1 + w) RMSNorm (also q_norm/k_norm), fused experts, SwiGLU MLP (shared expert) and "
        "rope (the kernels of Liger's apply_liger_kernel_to_qwen3_next), and flash-linear-attention's chunked gated "
        "delta rule (imported when first called). Not applied: the fused loss (upstream's forward adds the router aux "
        "loss, which the shared fused-loss forward does not compute); a kernel for the gated RMSNorm of the delta-net "
        "(fla's FusedRMSNormGated rounds differently in bf16: it does not cast back between the norm and the gate) and "
        "for the short convolution (upstream's depthwise torch conv1d; the causal-conv1d CUDA package must be built). "
        "No kernel for attention (HF's attention interface), the router or the embeddings. Not measured on a GPU yet"
    ),
)
config.use(
    ULYSSES_GATED_DELTA_NET,
    linear_attention="Qwen3NextGatedDeltaNet",
    bind={
        "project_linear_inputs": fused_qkvz_ba_projection,
        "torch_chunk_gated_delta_rule": fla_chunk_gated_delta_rule,
    },
    note="the chunked delta rule is flash-linear-attention's kernel",
)
config.use(
    LIGER_GEMMA_RMS_NORM,
    "Qwen3NextRMSNorm",
    note="(1 + weight), fp32 product: LigerRMSNormForGemma3 has the defaults of Liger's LigerRMSNormForQwen3Next",
)
config.use(LIGER_EXPERTS, "Qwen3NextPreTrainedModel", note="Qwen3NextExperts keeps upstream's dispatch")
config.use(LIGER_SWIGLU_MLP, "Qwen3NextMLP", note="the shared expert and dense layers")
config.use(LIGER_ROPE, "apply_rotary_pos_emb", note="sees only the rotated channels (partial_rotary)")
