"""DeepSeek-V3, CPU-runnable: the structure of the GPU variant with pure-torch stand-ins for the Liger kernels.

Used by the tests to prove equivalence with stock HF on machines without a GPU.
Generated file: generated/deepseek_v3/patched_modeling_deepseek_v3_cpu.py
"""

from transformers.modeling_outputs import MoeCausalLMOutputWithPast

from patchgen import PatchConfig
from patchgen.sets.experts.torch_moe_experts import TORCH_EXPERTS
from patchgen.sets.kernels.torch_kernels import TORCH_RMS_NORM, TORCH_SWIGLU_MLP
from patchgen.sets.training_sets import TORCH_LINEAR_CROSS_ENTROPY


config = PatchConfig.extend(
    "models.deepseek_v3.deepseek_v3_base_patch_gen_config",
    target_file="patched_modeling_deepseek_v3_cpu.py",
    description=(
        "DeepSeek-V3 with pure-torch stand-ins for the Liger kernels and the fused loss; upstream's rope kept, as in "
        "the GPU file"
    ),
)
config.use(TORCH_RMS_NORM, "DeepseekV3RMSNorm", note="the attention's q_a_layernorm/kv_a_layernorm too")
config.use(TORCH_SWIGLU_MLP, "DeepseekV3MLP", note="the dense layers' MLP and the shared experts")
config.use(TORCH_EXPERTS, "DeepseekV3PreTrainedModel", note="DeepseekV3Experts keeps upstream's dispatch")
config.use(
    TORCH_LINEAR_CROSS_ENTROPY,
    "DeepseekV3ForCausalLM",
    bind={"CausalLMOutputWithPast": MoeCausalLMOutputWithPast},
    note="upstream's MoE output class, which carries the router logits",
)
