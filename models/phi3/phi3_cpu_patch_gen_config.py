"""Phi-3, CPU-runnable: the structure of the GPU variant with pure-torch stand-ins for the Liger kernels.

Used by the tests to prove equivalence with stock HF on machines without a GPU.
Generated file: generated/phi3/patched_modeling_phi3_cpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.kernels.torch_kernels import TORCH_FUSED_SWIGLU_MLP, TORCH_RMS_NORM, TORCH_ROPE
from patchgen.sets.training_sets import TORCH_LINEAR_CROSS_ENTROPY


config = PatchConfig.extend(
    "models.phi3.phi3_base_patch_gen_config",
    target_file="patched_modeling_phi3_cpu.py",
    description="Phi-3 with pure-torch stand-ins for the Liger kernels and the fused loss",
)
config.use(TORCH_RMS_NORM, "Phi3RMSNorm")
config.use(TORCH_FUSED_SWIGLU_MLP, "Phi3MLP", note="keeps the fused gate_up_proj (state-dict keys unchanged)")
config.use(TORCH_ROPE, "apply_rotary_pos_emb", note="sees only the rotated channels (the partial_rotary step)")
config.use(TORCH_LINEAR_CROSS_ENTROPY, "Phi3ForCausalLM")
