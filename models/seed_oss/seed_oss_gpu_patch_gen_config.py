"""Seed-OSS for GPU training: the base plus Liger's RMSNorm and rope and a loss chosen by size.

Generated file: generated/seed_oss/patched_modeling_seed_oss_gpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.kernels.liger_kernels import LIGER_RMS_NORM, LIGER_ROPE
from patchgen.sets.training_sets import FASTEST_LINEAR_CROSS_ENTROPY


config = PatchConfig.extend(
    "models.seed_oss.seed_oss_base_patch_gen_config",
    target_file="patched_modeling_seed_oss_gpu.py",
    description=(
        "Seed-OSS with Liger's RMSNorm and rope and a loss chosen by size (for many logits a fused linear "
        "cross-entropy, Liger's or the chunked one by shape; upstream's below). No kernel for the MLP (upstream's: "
        "dropout after down_proj and optional biases, which LigerSwiGLUMLP has not), attention (HF's attention "
        "interface), the rotary embedding module or the token embedding. Not measured on a GPU yet"
    ),
)
config.use(LIGER_RMS_NORM, "SeedOssRMSNorm")
config.use(LIGER_ROPE, "apply_rotary_pos_emb")
config.use(FASTEST_LINEAR_CROSS_ENTROPY, "SeedOssForCausalLM")
