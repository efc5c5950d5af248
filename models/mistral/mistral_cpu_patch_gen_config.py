"""Mistral, CPU-runnable: the structure of the GPU variant with pure-torch stand-ins for the Liger kernels.

Used by the tests to prove equivalence with stock HF on machines without a GPU.
Generated file: generated/mistral/patched_modeling_mistral_cpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.kernels.torch_kernels import TORCH_RMS_NORM, TORCH_ROPE, TORCH_SWIGLU_MLP
from patchgen.sets.training_sets import TORCH_LINEAR_CROSS_ENTROPY


config = PatchConfig.extend(
    "models.mistral.mistral_base_patch_gen_config",
    target_file="patched_modeling_mistral_cpu.py",
    description="Mistral with pure-torch stand-ins for the Liger kernels and the fused loss",
)
config.use(TORCH_RMS_NORM, "MistralRMSNorm")
config.use(TORCH_SWIGLU_MLP, "MistralMLP")
config.use(TORCH_ROPE, "apply_rotary_pos_emb")
config.use(TORCH_LINEAR_CROSS_ENTROPY, "MistralForCausalLM")
