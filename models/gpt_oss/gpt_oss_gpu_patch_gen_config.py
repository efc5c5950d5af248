"""GPT-OSS for GPU training: the base plus Liger's RMSNorm.

Generated file: generated/gpt_oss/patched_modeling_gpt_oss_gpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.kernels.liger_kernels import LIGER_RMS_NORM


config = PatchConfig.extend(
    "models.gpt_oss.gpt_oss_base_patch_gen_config",
    target_file="patched_modeling_gpt_oss_gpu.py",
    description=(
        "GPT-OSS with Liger's RMSNorm (Liger's own patch also binds its rope, which this file does not: see the base "
        "config). No kernel for the rope (upstream's half-width cos/sin), the experts (upstream's dispatch: biased, clamped SwiGLU), the attention (sinks; HF's "
        "attention interface), the router or the loss (router aux loss upstream). Not measured on a GPU yet"
    ),
)
config.use(
    LIGER_RMS_NORM,
    "GptOssRMSNorm",
    note="Liger's 'llama' casting (cast back, then scale); upstream scales in fp32: equal in fp32, rounded differently in bf16",
)
