"""Qwen3-MoE, CPU-runnable: the structure of the GPU variant with pure-torch stand-ins for the Liger kernels.

Used by the tests to prove equivalence with stock HF on machines without a GPU.
Generated file: generated/qwen3_moe/patched_modeling_qwen3_moe_cpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.experts.torch_moe_experts import TORCH_EXPERTS
from patchgen.sets.kernels.torch_kernels import TORCH_RMS_NORM, TORCH_ROPE, TORCH_SWIGLU_MLP


config = PatchConfig.extend(
    "models.qwen3_moe.qwen3_moe_base_patch_gen_config",
    target_file="patched_modeling_qwen3_moe_cpu.py",
    description="Qwen3-MoE with pure-torch stand-ins for the Liger kernels (upstream loss kept, as in the GPU file)",
)
config.use(TORCH_RMS_NORM, "Qwen3MoeRMSNorm", note="Qwen3MoeAttention builds q_norm/k_norm with it too")
config.use(TORCH_EXPERTS, "Qwen3MoePreTrainedModel", note="Qwen3MoeExperts keeps upstream's dispatch")
config.use(TORCH_SWIGLU_MLP, "Qwen3MoeMLP", note="the dense MLP of mlp_only_layers")
config.use(TORCH_ROPE, "apply_rotary_pos_emb")
