"""Gemma 3 text, CPU-runnable: the structure of the GPU variant with pure-torch stand-ins for the Liger kernels.

Used by the tests to prove equivalence with stock HF on machines without a GPU.
Generated file: generated/gemma3/patched_modeling_gemma3_cpu.py
"""

from patchgen import PatchConfig
from patchgen.sets.kernels.torch_kernels import TORCH_GEGLU_MLP, TORCH_GEMMA_RMS_NORM, TORCH_ROPE


config = PatchConfig.extend(
    "models.gemma3.gemma3_base_patch_gen_config",
    target_file="patched_modeling_gemma3_cpu.py",
    description="Gemma 3 text with pure-torch stand-ins for the Liger kernels (upstream loss kept, as in the GPU file)",
)
config.use(TORCH_GEMMA_RMS_NORM, "Gemma3RMSNorm")
config.use(TORCH_GEGLU_MLP, "Gemma3MLP")
config.use(TORCH_ROPE, "apply_rotary_pos_emb")
