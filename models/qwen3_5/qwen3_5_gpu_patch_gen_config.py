"""Qwen3.5 for GPU training: the base plus Liger's kernels, flash-linear-attention's delta rule and a loss by size.

Generated file: generated/qwen3_5/patched_modeling_qwen3_5_gpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.attention.ulysses_linear_attention import ULYSSES_GATED_DELTA_NET, separate_qkv_z_b_a_projection
from patchgen.sets.kernels.liger_kernels import LIGER_GEMMA_RMS_NORM, LIGER_ROPE
from patchgen.sets.kernels.linear_attention_kernels import fla_chunk_gated_delta_rule
from patchgen.sets.kernels.multimodal_kernels import LIGER_VISION_ROPE
from patchgen.sets.losses.multimodal_loss import multimodal_loss_set, vision_language_forward_without_use_cache
from patchgen.sets.training_sets import FASTEST_LINEAR_CROSS_ENTROPY


config = PatchConfig.extend(
    "models.qwen3_5.qwen3_5_base_patch_gen_config",
    target_file="patched_modeling_qwen3_5_gpu.py",
    description=(
        "Qwen3.5 with Liger's (1 + w) RMSNorm (also q_norm/k_norm) and rope on the text decoder, Liger's "
        "vision rope, flash-linear-attention's chunked gated delta rule (imported when first called), and a loss "
        "chosen by size (chunked linear cross-entropy for many logits, upstream's below) on both heads. No kernel for "
        "the text MLP (kept upstream's: see the base), the delta-net's gated RMSNorm (fla's FusedRMSNormGated rounds "
        "differently in bf16) or short convolution (the causal-conv1d CUDA package must be built), the vision blocks' "
        "LayerNorm and GELU MLP (no shared set), "
        "attention (HF's attention interface), the rotary embedding modules or the patch embedding (Conv3d). Not "
        "measured on a GPU yet"
    ),
)
config.use(
    ULYSSES_GATED_DELTA_NET,
    linear_attention="Qwen3_5GatedDeltaNet",
    bind={
        "project_linear_inputs": separate_qkv_z_b_a_projection,
        "torch_chunk_gated_delta_rule": fla_chunk_gated_delta_rule,
    },
    note="the chunked delta rule is flash-linear-attention's kernel",
)
config.use(
    LIGER_GEMMA_RMS_NORM,
    "Qwen3_5RMSNorm",
    note="(1 + weight), fp32 product: LigerRMSNormForGemma3 has the defaults of Liger's LigerRMSNormForQwen3Next",
)
config.use(LIGER_ROPE, "apply_rotary_pos_emb", note="sees only the rotated channels (partial_rotary)")
config.use(LIGER_VISION_ROPE, "apply_rotary_pos_emb_vision")
config.use(
    multimodal_loss_set(FASTEST_LINEAR_CROSS_ENTROPY, vision_language_forward_without_use_cache),
    "Qwen3_5ForConditionalGeneration",
    note="Qwen3.5's arguments: use_cache passes on in **kwargs",
)
config.use(FASTEST_LINEAR_CROSS_ENTROPY, "Qwen3_5ForCausalLM", note="the text decoder alone")
