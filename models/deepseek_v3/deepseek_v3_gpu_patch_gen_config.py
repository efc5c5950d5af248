"""DeepSeek-V3 for GPU training: the base plus Liger's RMSNorm, SwiGLU MLP and fused experts, and a size-switched loss.

No rope kernel: DeepSeek-V3 rotates interleaved channel pairs (`rope_interleave=True`, its default and
its checkpoints'), Liger's rope rotates halves (Liger's own `apply_liger_kernel_to_deepseek_v3` refuses
`rope=True` for the same reason), so upstream's rope functions stay.
Generated file: generated/deepseek_v3/patched_modeling_deepseek_v3_gpu.py
"""

from transformers.modeling_outputs import MoeCausalLMOutputWithPast

from patchgen import PatchConfig
from patchgen.sets.experts.liger_moe_experts import LIGER_EXPERTS
from patchgen.sets.kernels.liger_kernels import LIGER_RMS_NORM, LIGER_SWIGLU_MLP
from patchgen.sets.training_sets import FASTEST_LINEAR_CROSS_ENTROPY


config = PatchConfig.extend(
    "models.deepseek_v3.deepseek_v3_base_patch_gen_config",
    target_file="patched_modeling_deepseek_v3_gpu.py",
    description=(
        "DeepSeek-V3 with Liger RMSNorm (also the attention's latent norms), SwiGLU MLP (dense layers and shared "
        "experts), fused experts (the kernels Liger's apply_liger_kernel_to_deepseek_v3 uses), and a loss chosen by "
        "size (chunked linear cross-entropy for many logits, upstream's below). No kernel for: rope (interleaved "
        "pairs, Liger's rotates halves), the router (DeepseekV3TopkRouter: grouped top-k in fp32), attention (HF's "
        "attention interface). Not measured on a GPU yet"
    ),
)
config.use(LIGER_RMS_NORM, "DeepseekV3RMSNorm", note="pre-norm layers; q_a_layernorm/kv_a_layernorm feed projections")
config.use(LIGER_SWIGLU_MLP, "DeepseekV3MLP", note="the dense layers' MLP and the shared experts")
config.use(LIGER_EXPERTS, "DeepseekV3PreTrainedModel", note="DeepseekV3Experts keeps upstream's dispatch")
config.use(
    FASTEST_LINEAR_CROSS_ENTROPY,
    "DeepseekV3ForCausalLM",
    bind={"CausalLMOutputWithPast": MoeCausalLMOutputWithPast},
    note="upstream's MoE output class (router logits); the kernel by shape (Liger's where its chunks have >= 256 rows, else chunked): the rule measured on Qwen3 and Llama",
)
