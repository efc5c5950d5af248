"""GPT-OSS, CPU-runnable: the structure of the GPU variant with pure-torch stand-ins for the Liger kernels.

Used by the tests to prove equivalence with stock HF on machines without a GPU.
Generated file: generated/gpt_oss/patched_modeling_gpt_oss_cpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.kernels.torch_kernels import TORCH_RMS_NORM


config = PatchConfig.extend(
    "models.gpt_oss.gpt_oss_base_patch_gen_config",
    target_file="patched_modeling_gpt_oss_cpu.py",
    description="GPT-OSS with pure-torch stand-in for Liger's RMSNorm",
)
config.use(
    TORCH_RMS_NORM,
    "GptOssRMSNorm",
    note="Liger's 'llama' casting (cast back, then scale); upstream scales in fp32: equal in fp32",
)
