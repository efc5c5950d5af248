"""Qwen3, CPU-runnable: the structure of the GPU variant with pure-torch stand-ins for the Liger kernels.

Used by the tests to prove equivalence with stock HF on machines without a GPU: the same Ulysses
attention forward as the GPU file, and the same causal-LM forward with a plain-torch loss in place of
Liger's fused linear cross-entropy.

Generated file: generated/qwen3/patched_modeling_qwen3_cpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.kernels.torch_kernels import TORCH_RMS_NORM, TORCH_ROPE, TORCH_SWIGLU_MLP
from patchgen.sets.training_sets import TORCH_LINEAR_CROSS_ENTROPY


config = PatchConfig.extend(
    "models.qwen3.qwen3_base_patch_gen_config",
    target_file="patched_modeling_qwen3_cpu.py",
    description="Qwen3 with pure-torch stand-ins for the Liger kernels and the fused loss",
)
config.use(TORCH_RMS_NORM, "Qwen3RMSNorm", note="also q_norm/k_norm, which Qwen3Attention builds by this name")
config.use(TORCH_SWIGLU_MLP, "Qwen3MLP")
config.use(TORCH_ROPE, "apply_rotary_pos_emb")
config.use(TORCH_LINEAR_CROSS_ENTROPY, "Qwen3ForCausalLM")
