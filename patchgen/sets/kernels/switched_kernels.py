"""Upstream's RMSNorm and SwiGLU MLP whose forward picks, per call by size, upstream's torch ops or Liger's kernel.

Each class here is upstream's module (same constructor, parameters, state-dict keys) with two forwards:
`torch_forward`, upstream's code line for line, and Liger's functional kernel (`LigerRMSNormFunction`,
`LigerSiLUMulFunction`, called with the arguments `LigerRMSNorm` / `LigerSwiGLUMLP` pass, so the Liger branch
is what `LIGER_RMS_NORM` / `LIGER_SWIGLU_MLP` run). `forward` takes Liger's on CUDA from
`patchgen.runtime.kernel_sizes.LIGER_NORM_MLP_MIN_TOKENS` tokens (batch x sequence; where that threshold comes
from is written there), upstream's below it and off CUDA: small steps are launch-bound and torch's ops were
faster there, large ones need Liger's speed and its smaller saved activations.

The classes are copied into the generated file (readable there); only the threshold rule is imported from
`patchgen.runtime`. `liger_kernel.ops` imports on CPU (its Triton kernels run only when called), so the file
imports cleanly anywhere, and on CPU it computes exactly what upstream computes: it is its own pure-torch twin.
"""

import torch
from liger_kernel.ops import LigerRMSNormFunction, LigerSiLUMulFunction
from torch import nn
from transformers.activations import ACT2FN

from patchgen.dsl.patch_sets import PatchSet
from patchgen.runtime.kernel_sizes import use_liger_norm_mlp


SIZE_SWITCHED_RMS_NORM = PatchSet(
    "size_switched_rms_norm", "upstream's RMSNorm below a token count, Liger's fused RMSNorm (in place) from it"
)
SIZE_SWITCHED_SWIGLU_MLP = PatchSet(
    "size_switched_swiglu_mlp", "upstream's SwiGLU MLP below a token count, Liger's fused silu(gate) * up from it"
)

# The torch branch is a copy of upstream's code and the Liger branch computes the same ('llama' casting: normalise
# in fp32, cast back, then scale): the norm this set replaces must be that code.
SIZE_SWITCHED_RMS_NORM.requires_same_code(
    "rms_norm",
    "transformers.models.llama.modeling_llama.LlamaRMSNorm",
    otherwise="a set that computes that norm (LIGER_RMS_NORM_OUT_OF_PLACE, LIGER_GEMMA_RMS_NORM, ...)",
)
# Liger's branch is in place as LIGER_RMS_NORM's (LigerRMSNorm's default in_place=True): pre-norm layouts only.
SIZE_SWITCHED_RMS_NORM.requires_pre_norm(
    "rms_norm", otherwise="LIGER_RMS_NORM_OUT_OF_PLACE (Liger's in_place=False) for a norm output added to a residual"
)
# Bias-free gate/up/down projections as upstream's Qwen3MLP builds them (Llama's has `mlp_bias`: not this code).
SIZE_SWITCHED_SWIGLU_MLP.requires_same_code(
    "mlp",
    "transformers.models.qwen3.modeling_qwen3.Qwen3MLP",
    otherwise="LIGER_SWIGLU_MLP, or LIGER_FUSED_SWIGLU_MLP for a fused gate_up_proj",
)


@SIZE_SWITCHED_RMS_NORM.replace_class(
    "rms_norm",
    description=(
        "upstream's RMSNorm (fp32 normalise, cast back, scale) below LIGER_NORM_MLP_MIN_TOKENS tokens and off CUDA; "
        "from it Liger's fused RMSNorm kernel ('llama' casting, backward in place, as LigerRMSNorm)"
    ),
)
class SizeSwitchedRMSNorm(nn.Module):
    """Upstream's RMSNorm; on CUDA from `LIGER_NORM_MLP_MIN_TOKENS` tokens, Liger's fused kernel computes it."""

    def __init__(self, hidden_size, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if use_liger_norm_mlp(hidden_states):
            # LigerRMSNorm's defaults: offset 0, 'llama' casting, in_place=True (pre-norm only), row_mode None
            return LigerRMSNormFunction.apply(
                hidden_states, self.weight, self.variance_epsilon, 0.0, "llama", True, None
            )
        return self.torch_forward(hidden_states)

    def torch_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)

    def extra_repr(self):
        return f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}"


@SIZE_SWITCHED_SWIGLU_MLP.replace_class(
    "mlp",
    description=(
        "upstream's SwiGLU MLP below LIGER_NORM_MLP_MIN_TOKENS tokens and off CUDA; from it Liger's fused "
        "silu(gate) * up kernel between the same gate/up/down projections (keys unchanged), as LigerSwiGLUMLP"
    ),
)
class SizeSwitchedSwiGLUMLP(nn.Module):
    """Upstream's SwiGLU MLP; on CUDA from `LIGER_NORM_MLP_MIN_TOKENS` tokens, Liger's kernel for silu(gate) * up."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.hidden_size = config.hidden_size
        self.intermediate_size = config.intermediate_size
        self.gate_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.up_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.down_proj = nn.Linear(self.intermediate_size, self.hidden_size, bias=False)
        self.act_fn = ACT2FN[config.hidden_act]
        # Liger's kernel computes SiLU only; LigerSwiGLUMLP refuses any other activation too
        if config.hidden_act not in ("silu", "swish"):
            raise ValueError(
                f"{type(self).__name__}: Liger's SwiGLU kernel needs hidden_act silu, not {config.hidden_act}"
            )

    def forward(self, x):
        if use_liger_norm_mlp(x):
            # LigerSwiGLUMLP's call (multipliers 1.0), through the projection modules (TP hooks live on them)
            return self.down_proj(LigerSiLUMulFunction.apply(self.gate_proj(x), self.up_proj(x), 1.0, 1.0))
        return self.torch_forward(x)

    def torch_forward(self, x):
        down_proj = self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))
        return down_proj
