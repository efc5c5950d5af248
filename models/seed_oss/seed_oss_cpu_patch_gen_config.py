"""Seed-OSS, CPU-runnable: the structure of the GPU variant with pure-torch stand-ins for the Liger kernels.

Used by the tests to prove equivalence with stock HF on machines without a GPU.
Generated file: generated/seed_oss/patched_modeling_seed_oss_cpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.kernels.torch_kernels import TORCH_RMS_NORM, TORCH_ROPE
from patchgen.sets.training_sets import TORCH_LINEAR_CROSS_ENTROPY


config = PatchConfig.extend(
    "models.seed_oss.seed_oss_base_patch_gen_config",
    target_file="patched_modeling_seed_oss_cpu.py",
    description="Seed-OSS with pure-torch stand-ins for the Liger kernels and the fused loss",
)
config.use(TORCH_RMS_NORM, "SeedOssRMSNorm")
config.use(TORCH_ROPE, "apply_rotary_pos_emb")
config.use(TORCH_LINEAR_CROSS_ENTROPY, "SeedOssForCausalLM")
