"""OLMo-2, CPU-runnable: the structure of the GPU variant with pure-torch stand-ins for the Liger kernels.

Used by the tests to prove equivalence with stock HF on machines without a GPU. The torch RMSNorm
stands in for Liger's out-of-place one (plain autograd never writes a gradient in place).
Generated file: generated/olmo2/patched_modeling_olmo2_cpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.kernels.torch_kernels import TORCH_RMS_NORM, TORCH_ROPE, TORCH_SWIGLU_MLP
from patchgen.sets.training_sets import TORCH_LINEAR_CROSS_ENTROPY


config = PatchConfig.extend(
    "models.olmo2.olmo2_base_patch_gen_config",
    target_file="patched_modeling_olmo2_cpu.py",
    description="OLMo-2 with pure-torch stand-ins for the Liger kernels and the fused loss",
)
config.use(
    TORCH_RMS_NORM,
    "Olmo2RMSNorm",
    note=(
        "also the post-norms and the full-projection q_norm/k_norm; 'llama' casting like the GPU kernel: upstream "
        "scales by the weight in fp32 before casting back, which only differs below fp32"
    ),
)
config.use(TORCH_SWIGLU_MLP, "Olmo2MLP")
config.use(TORCH_ROPE, "apply_rotary_pos_emb")
config.use(TORCH_LINEAR_CROSS_ENTROPY, "Olmo2ForCausalLM")
