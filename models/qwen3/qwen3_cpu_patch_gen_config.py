"""Qwen3, CPU-runnable variant: the structure of the GPU file with pure-torch kernels.

Used by the tests to prove equivalence with stock HF on machines without a GPU: the same Ulysses
attention forward as the GPU file, and the same causal-LM forward with a pure-torch loss in place of
Liger's fused linear cross-entropy.

Generated file: generated/qwen3/patched_modeling_qwen3_cpu.py
"""

from models.common import fused_loss, ulysses_attention
from models.qwen3.patches import qwen3_cpu_patches as patches
from patchgen import PatchConfig


config = PatchConfig(
    source_module="transformers.models.qwen3.modeling_qwen3",
    target_file="patched_modeling_qwen3_cpu.py",
    description="Qwen3 with pure-torch stand-ins for the Liger kernels, Ulysses sequence parallelism",
)

config.replace_class("Qwen3RMSNorm", description="pure-torch RMSNorm with Liger's interface (CPU stand-in)")(
    patches.TorchRMSNorm
)
config.replace_function("apply_rotary_pos_emb", description="fp32 rope, the precision of Liger's rope kernel")(
    patches.torch_rotary_pos_emb
)
config.override_method("Qwen3MLP.forward", description="SwiGLU in one expression, like the fused kernel")(
    patches.swiglu_forward
)
config.modify_init("Qwen3Attention", description="fix the sequence-parallel head layout at construction")(
    ulysses_attention.ulysses_attention_init
)
config.override_method(
    "Qwen3Attention.forward", description="Ulysses sequence parallelism: all-to-alls around the attention call"
)(ulysses_attention.ulysses_attention_forward)
config.override_method(
    "Qwen3ForCausalLM.forward",
    description="loss from hidden states and lm_head weight in plain torch, the interface of the GPU file's fused loss",
)(fused_loss.torch_linear_cross_entropy_forward)
config.exclude_from_output(
    "Qwen3ForTokenClassification",
    "Qwen3ForQuestionAnswering",
    reason="heads not used for causal-LM training",
)
