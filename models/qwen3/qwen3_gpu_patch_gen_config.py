"""Qwen3 for GPU training: Liger's fused kernels bound in place of the upstream modules.

Generated file: generated/qwen3/patched_modeling_qwen3_gpu.py
"""

from patchgen import PatchConfig, create_patch_from_external


config = PatchConfig(
    source_module="transformers.models.qwen3.modeling_qwen3",
    target_file="patched_modeling_qwen3_gpu.py",
    description="Qwen3 with Liger RMSNorm, SwiGLU MLP and rope kernels",
)

config.patches.append(
    create_patch_from_external(
        target="Qwen3RMSNorm",
        replacement_module="liger_kernel.transformers.rms_norm",
        replacement_name="LigerRMSNorm",
        description="Liger's fused Triton RMSNorm; also serves q_norm/k_norm, which Qwen3Attention builds by this name",
    )
)
config.patches.append(
    create_patch_from_external(
        target="Qwen3MLP",
        replacement_module="liger_kernel.transformers.swiglu",
        replacement_name="LigerSwiGLUMLP",
        description="Liger's fused SwiGLU: same gate/up/down projections (state-dict keys unchanged), one kernel for act*up",
    )
)
config.patches.append(
    create_patch_from_external(
        target="apply_rotary_pos_emb",
        replacement_module="liger_kernel.transformers.rope",
        replacement_name="liger_rotary_pos_emb",
        description="Liger's fused rope kernel, same (q, k, cos, sin, unsqueeze_dim) call as upstream",
    )
)
config.exclude_from_output(
    "Qwen3ForTokenClassification",
    "Qwen3ForQuestionAnswering",
    reason="heads not used for causal-LM training",
)
