"""Qwen3.5-MoE, CPU-runnable: the structure of the GPU variant with pure-torch stand-ins for its kernels.

Used by the tests to prove equivalence with stock HF on machines without a GPU. The delta rule stays upstream's
`torch_chunk_gated_delta_rule`, the pure-torch twin of the flash-linear-attention kernel the GPU file binds.
Generated file: generated/qwen3_5_moe/patched_modeling_qwen3_5_moe_cpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.attention.ulysses_linear_attention import ULYSSES_GATED_DELTA_NET, separate_qkv_z_b_a_projection
from patchgen.sets.experts.torch_moe_experts import TORCH_EXPERTS
from patchgen.sets.kernels.multimodal_kernels import TORCH_VISION_ROPE
from patchgen.sets.kernels.torch_kernels import TORCH_GEMMA_RMS_NORM, TORCH_ROPE


config = PatchConfig.extend(
    "models.qwen3_5_moe.qwen3_5_moe_base_patch_gen_config",
    target_file="patched_modeling_qwen3_5_moe_cpu.py",
    description="Qwen3.5-MoE with pure-torch stand-ins for the GPU kernels (upstream loss and delta rule kept)",
)
config.use(
    ULYSSES_GATED_DELTA_NET,
    linear_attention="Qwen3_5MoeGatedDeltaNet",
    bind={"project_linear_inputs": separate_qkv_z_b_a_projection},
    note="the chunked delta rule is upstream's pure-torch one, the twin of the GPU file's fla kernel",
)
config.use(
    TORCH_GEMMA_RMS_NORM,
    "Qwen3_5MoeRMSNorm",
    note="Qwen3.5-MoE's RMSNorm scales by (1 + weight) in fp32, as Gemma's; q_norm/k_norm use it too",
)
config.use(TORCH_EXPERTS, "Qwen3_5MoePreTrainedModel", note="Qwen3_5MoeExperts keeps upstream's dispatch")
config.use(TORCH_ROPE, "apply_rotary_pos_emb", note="sees only the rotated channels (partial_rotary)")
config.use(TORCH_VISION_ROPE, "apply_rotary_pos_emb_vision")
