"""Gemma 3 text for GPU training: the base plus Liger's Gemma RMSNorm, GeGLU MLP and rope.

Generated file: generated/gemma3/patched_modeling_gemma3_gpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.kernels.liger_kernels import LIGER_GEGLU_MLP, LIGER_GEMMA_RMS_NORM, LIGER_ROPE


config = PatchConfig.extend(
    "models.gemma3.gemma3_base_patch_gen_config",
    target_file="patched_modeling_gemma3_gpu.py",
    description=(
        "Gemma 3 text with Liger's (1 + weight) RMSNorm (also q_norm/k_norm and the pre/post-feedforward norms), "
        "GeGLU MLP and rope. No Liger kernel used for: the scaled word embedding, the per-layer-type rotary "
        "embedding, attention (upstream's, with its sliding window), and the loss: the shared fused-loss "
        "forward has no final-logit softcapping, so upstream's forward and loss are kept"
    ),
)
config.use(LIGER_GEMMA_RMS_NORM, "Gemma3RMSNorm")
config.use(LIGER_GEGLU_MLP, "Gemma3MLP", note="Gemma 3 uses gelu_pytorch_tanh, the GELU the kernel computes")
config.use(LIGER_ROPE, "apply_rotary_pos_emb")
