"""Liger-Kernel modules and functions as patch sets, bound by name in place of upstream definitions.

Each set replaces one upstream definition by an object imported from `liger_kernel` (nothing is
copied; the generated file imports it). Their pure-torch twins, with the same roles, are in
`models/common/torch_kernels.py`. What Liger's own `apply_liger_kernel_to_<model>` does for the same
models is listed in the README ("Differences from Liger's monkey patches").

Model-specific variants are separate sets: `LIGER_GEMMA_RMS_NORM` (offset 1, 'gemma' casting,
zero-initialised weight) and `LIGER_GEGLU_MLP` for Gemma; fused MoE experts: `models/common/moe_experts.py`.
"""

from patchgen.patch_sets import PatchSet


LIGER_RMS_NORM = PatchSet("liger_rms_norm", "Liger's fused Triton RMSNorm")
LIGER_RMS_NORM.external(
    "rms_norm",
    "liger_kernel.transformers.rms_norm",
    "LigerRMSNorm",
    description="Liger's fused Triton RMSNorm (same weight parameter; every norm built by this name uses it)",
)

LIGER_GEMMA_RMS_NORM = PatchSet("liger_gemma_rms_norm", "Liger's fused RMSNorm with Gemma's (1 + weight) scaling")
LIGER_GEMMA_RMS_NORM.external(
    "rms_norm",
    "liger_kernel.transformers.rms_norm",
    "LigerRMSNormForGemma3",
    description="Liger's fused RMSNorm with offset 1.0 and 'gemma' casting (fp32 product), weight initialised to zero",
)

LIGER_SWIGLU_MLP = PatchSet("liger_swiglu_mlp", "Liger's fused SwiGLU MLP")
LIGER_SWIGLU_MLP.external(
    "mlp",
    "liger_kernel.transformers.swiglu",
    "LigerSwiGLUMLP",
    description="Liger's fused SwiGLU: same bias-free gate/up/down projections (keys unchanged), one kernel for act*up",
)

LIGER_GEGLU_MLP = PatchSet("liger_geglu_mlp", "Liger's fused GeGLU MLP")
LIGER_GEGLU_MLP.external(
    "mlp",
    "liger_kernel.transformers.geglu",
    "LigerGEGLUMLP",
    description="Liger's fused GeGLU (tanh GELU): same gate/up/down projections (keys unchanged), one kernel for act*up",
)

LIGER_ROPE = PatchSet("liger_rope", "Liger's fused rope kernel")
LIGER_ROPE.external(
    "rope",
    "liger_kernel.transformers.rope",
    "liger_rotary_pos_emb",
    description="Liger's fused rope kernel, called as upstream calls apply_rotary_pos_emb (q, k, cos, sin)",
)
