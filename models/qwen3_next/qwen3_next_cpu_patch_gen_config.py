"""Qwen3-Next, CPU-runnable: the structure of the GPU variant with pure-torch stand-ins for its kernels.

Used by the tests to prove equivalence with stock HF on machines without a GPU. The delta rule stays
upstream's `torch_chunk_gated_delta_rule`, which is itself the pure-torch twin of the
flash-linear-attention kernel the GPU file binds (same arguments, same result up to rounding).
Generated file: generated/qwen3_next/patched_modeling_qwen3_next_cpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.attention.ulysses_linear_attention import ULYSSES_GATED_DELTA_NET, fused_qkvz_ba_projection
from patchgen.sets.experts.torch_moe_experts import TORCH_EXPERTS
from patchgen.sets.kernels.torch_kernels import TORCH_GEMMA_RMS_NORM, TORCH_ROPE, TORCH_SWIGLU_MLP


config = PatchConfig.extend(
    "models.qwen3_next.qwen3_next_base_patch_gen_config",
    target_file="patched_modeling_qwen3_next_cpu.py",
    description="Qwen3-Next with pure-torch stand-ins for the GPU kernels (upstream loss and delta rule kept)",
)
config.use(
    ULYSSES_GATED_DELTA_NET,
    linear_attention="Qwen3NextGatedDeltaNet",
    bind={"project_linear_inputs": fused_qkvz_ba_projection},
    note="the chunked delta rule is upstream's pure-torch one, the twin of the GPU file's fla kernel",
)
config.use(
    TORCH_GEMMA_RMS_NORM,
    "Qwen3NextRMSNorm",
    note="Qwen3-Next's RMSNorm scales by (1 + weight) in fp32, as Gemma's; q_norm/k_norm use it too",
)
config.use(TORCH_EXPERTS, "Qwen3NextPreTrainedModel", note="Qwen3NextExperts keeps upstream's dispatch")
config.use(TORCH_SWIGLU_MLP, "Qwen3NextMLP", note="the shared expert and dense layers")
config.use(TORCH_ROPE, "apply_rotary_pos_emb", note="sees only the rotated channels (partial_rotary)")
