"""Liger-Kernel modules and functions as patch sets, bound by name in place of upstream definitions.

Each set replaces one upstream definition by an object imported from `liger_kernel` (nothing is
copied; the generated file imports it). Their pure-torch twins, with the same roles, are in
`patchgen/sets/kernels/torch_kernels.py`. What Liger's own `apply_liger_kernel_to_<model>` does for the same
models is listed in the README ("Differences from Liger's monkey patches").

Model-specific variants are separate sets: `LIGER_GEMMA_RMS_NORM` (offset 1, 'gemma' casting,
zero-initialised weight) and `LIGER_GEGLU_MLP` for Gemma, `LIGER_FUSED_SWIGLU_MLP` for a fused
`gate_up_proj` (Phi-3), and `LIGER_RMS_NORM_OUT_OF_PLACE` for layouts that add a norm's output to
the residual (OLMo-2): `LIGER_RMS_NORM` (in place) is only safe where each norm's output feeds a
projection (pre-norm layouts: Llama, Qwen, Mistral, Phi-3). Fused MoE experts:
`patchgen/sets/experts/moe_experts.py`.
"""

from patchgen.dsl.patch_sets import PatchSet


# Requires: pre-norm use only. Its backward is in place (LigerRMSNorm's default in_place=True: dX overwrites the
# incoming gradient), which is right only where no other branch reads that gradient: a norm whose output feeds
# projections (pre-norm layers, q/k norms, the final norm), not one whose output is added to the residual.
LIGER_RMS_NORM = PatchSet("liger_rms_norm", "Liger's fused Triton RMSNorm")
LIGER_RMS_NORM.external(
    "rms_norm",
    "liger_kernel.transformers.rms_norm",
    "LigerRMSNorm",
    description="Liger's fused Triton RMSNorm (same weight parameter; every norm built by this name uses it)",
)
LIGER_RMS_NORM.requires_pre_norm(
    "rms_norm", otherwise="LIGER_RMS_NORM_OUT_OF_PLACE (Liger's in_place=False) for a norm output added to a residual"
)

# Post-norm layouts (OLMo-2: `residual + norm(attn_out)`) need the out-of-place kernel: LigerRMSNorm's default
# in_place=True backward writes dX into the incoming gradient dY, and there that very tensor is also the
# residual branch's gradient (autograd hands the sum's gradient to both operands), which it then corrupts.
LIGER_RMS_NORM_OUT_OF_PLACE = PatchSet(
    "liger_rms_norm_out_of_place", "Liger's fused RMSNorm, backward out of place (safe on post-norm layouts)"
)
LIGER_RMS_NORM_OUT_OF_PLACE.external(
    "rms_norm",
    "liger_kernel.transformers.rms_norm",
    "LigerRMSNormForOlmo2",
    description=(
        "Liger's fused RMSNorm with in_place=False (LigerRMSNormForOlmo2 is LigerRMSNorm with that default; same "
        "constructor and weight): its backward writes a fresh gradient, so a norm output added to the residual "
        "(post-norm layers) keeps the right gradient"
    ),
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
LIGER_SWIGLU_MLP.requires_attributes(
    "mlp", "gate_proj", "up_proj", "down_proj", otherwise="LIGER_FUSED_SWIGLU_MLP for a fused gate_up_proj"
)

LIGER_FUSED_SWIGLU_MLP = PatchSet("liger_fused_swiglu_mlp", "Liger's SwiGLU MLP on one fused gate_up_proj")
LIGER_FUSED_SWIGLU_MLP.external(
    "mlp",
    "liger_kernel.transformers.swiglu",
    "LigerPhi3SwiGLUMLP",
    description=(
        "Liger's SwiGLU on a fused gate_up_proj (gate first, then up) and down_proj: the keys of Phi-3's MLP kept, "
        "one kernel for silu(gate) * up"
    ),
)
LIGER_FUSED_SWIGLU_MLP.requires_attributes(
    "mlp", "gate_up_proj", "down_proj", otherwise="LIGER_SWIGLU_MLP for separate gate_proj/up_proj"
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


# The config values each kernel supports (checked at generation and at construction): silu(gate) * up without
# biases (another activation is another MLP, biases would be dropped); the tanh GELU whatever the config says.
LIGER_SWIGLU_MLP.requires_config(
    "mlp", hidden_act=("silu", "swish"), mlp_bias=False, otherwise="LIGER_GEGLU_MLP for a tanh-GELU MLP"
)
LIGER_FUSED_SWIGLU_MLP.requires_config("mlp", hidden_act=("silu", "swish"), otherwise="upstream's MLP")
LIGER_GEGLU_MLP.requires_config(
    "mlp", hidden_activation=("gelu_pytorch_tanh", "gelu_tanh"), otherwise="upstream's MLP for another activation"
)
