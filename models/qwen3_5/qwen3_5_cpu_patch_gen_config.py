"""Qwen3.5, CPU-runnable: the structure of the GPU variant with pure-torch stand-ins for its kernels.

Used by the tests to prove equivalence with stock HF on machines without a GPU. The delta rule stays upstream's
`torch_chunk_gated_delta_rule`, the pure-torch twin of the flash-linear-attention kernel the GPU file binds.
Generated file: generated/qwen3_5/patched_modeling_qwen3_5_cpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.attention.ulysses_linear_attention import ULYSSES_GATED_DELTA_NET, separate_qkv_z_b_a_projection
from patchgen.sets.kernels.multimodal_kernels import TORCH_VISION_ROPE
from patchgen.sets.kernels.torch_kernels import TORCH_GEMMA_RMS_NORM, TORCH_ROPE
from patchgen.sets.losses.multimodal_loss import multimodal_loss_set, vision_language_forward_without_use_cache
from patchgen.sets.training_sets import TORCH_LINEAR_CROSS_ENTROPY


config = PatchConfig.extend(
    "models.qwen3_5.qwen3_5_base_patch_gen_config",
    target_file="patched_modeling_qwen3_5_cpu.py",
    description="Qwen3.5 with pure-torch stand-ins for the GPU kernels (upstream delta rule kept) and the fused loss",
)
config.use(
    ULYSSES_GATED_DELTA_NET,
    linear_attention="Qwen3_5GatedDeltaNet",
    bind={"project_linear_inputs": separate_qkv_z_b_a_projection},
    note="the chunked delta rule is upstream's pure-torch one, the twin of the GPU file's fla kernel",
)
config.use(
    TORCH_GEMMA_RMS_NORM,
    "Qwen3_5RMSNorm",
    note="Qwen3.5's RMSNorm scales by (1 + weight) in fp32, as Gemma's; q_norm/k_norm use it too",
)
config.use(TORCH_ROPE, "apply_rotary_pos_emb", note="sees only the rotated channels (partial_rotary)")
config.use(TORCH_VISION_ROPE, "apply_rotary_pos_emb_vision")
config.use(
    multimodal_loss_set(TORCH_LINEAR_CROSS_ENTROPY, vision_language_forward_without_use_cache),
    "Qwen3_5ForConditionalGeneration",
    note="Qwen3.5's arguments: use_cache passes on in **kwargs",
)
config.use(TORCH_LINEAR_CROSS_ENTROPY, "Qwen3_5ForCausalLM", note="the text decoder alone")
