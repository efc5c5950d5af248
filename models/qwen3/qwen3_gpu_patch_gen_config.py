"""Qwen3 for GPU training: Liger's fused kernels bound in place of the upstream modules.

Attention gets Ulysses sequence parallelism and the causal-LM forward Liger's fused linear
cross-entropy (both shared patches in models/common/). Without a sequence-parallel group set, the
file trains a single GPU like upstream does.

Generated file: generated/qwen3/patched_modeling_qwen3_gpu.py
"""

from models.common import fused_loss, ulysses_attention
from patchgen import PatchConfig, create_patch_from_external


config = PatchConfig(
    source_module="transformers.models.qwen3.modeling_qwen3",
    target_file="patched_modeling_qwen3_gpu.py",
    description="Qwen3 with Liger RMSNorm, SwiGLU MLP, rope and fused linear cross-entropy, Ulysses sequence parallelism",
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
config.modify_init("Qwen3Attention", description="fix the sequence-parallel head layout at construction")(
    ulysses_attention.ulysses_attention_init
)
config.override_method(
    "Qwen3Attention.forward", description="Ulysses sequence parallelism: all-to-alls around the attention call"
)(ulysses_attention.ulysses_attention_forward)
config.override_method(
    "Qwen3ForCausalLM.forward",
    description="Liger fused linear cross-entropy: with labels the [tokens, vocab] logits are never materialised",
)(fused_loss.fused_linear_cross_entropy_forward)
config.exclude_from_output(
    "Qwen3ForTokenClassification",
    "Qwen3ForQuestionAnswering",
    reason="heads not used for causal-LM training",
)
