"""Pure-torch stand-ins for the Liger kernels, as patch sets: the structure of the GPU files, runnable anywhere.

Each class or function here has the constructor, parameters and state-dict keys of the Liger module
it stands in for (`patchgen/sets/kernels/liger_kernels.py` binds those), and computes in plain torch what the
kernel computes. A `_cpu` config uses these sets where its `_gpu` sibling uses the Liger sets, so CPU
tests exercise the GPU file's structure and prove it equal to stock HF.

Model-specific variants are separate sets, never flags that change behaviour silently:
`TORCH_GEMMA_RMS_NORM` (`(1 + weight)` scaling, fp32 throughout) and `TORCH_GEGLU_MLP` (tanh GELU)
for Gemma; `TORCH_FUSED_SWIGLU_MLP` for a fused `gate_up_proj` (Phi-3). The fused MoE experts sets are
in `patchgen/sets/experts/moe_experts.py`. `TORCH_RMS_NORM` stands in for both Liger RMSNorm sets, the
in-place one and `LIGER_RMS_NORM_OUT_OF_PLACE`: plain torch autograd never writes a gradient in
place, so a CPU run cannot show the in-place hazard (`tests/test_in_place_norm_hazard.py`
reproduces it with an in-place twin).
"""

import torch
from torch import nn

from patchgen.dsl.patch_sets import PatchSet


TORCH_RMS_NORM = PatchSet("torch_rms_norm", "pure-torch RMSNorm with LigerRMSNorm's interface")
TORCH_GEMMA_RMS_NORM = PatchSet("torch_gemma_rms_norm", "pure-torch (1 + weight) RMSNorm, LigerRMSNormForGemma3")
TORCH_SWIGLU_MLP = PatchSet("torch_swiglu_mlp", "pure-torch SwiGLU MLP with LigerSwiGLUMLP's structure")
TORCH_FUSED_SWIGLU_MLP = PatchSet(
    "torch_fused_swiglu_mlp", "pure-torch SwiGLU on a fused gate_up_proj, LigerPhi3SwiGLUMLP's structure"
)
TORCH_SWIGLU_MLP.requires_attributes(
    "mlp", "gate_proj", "up_proj", "down_proj", otherwise="TORCH_FUSED_SWIGLU_MLP for a fused gate_up_proj"
)
TORCH_FUSED_SWIGLU_MLP.requires_attributes(
    "mlp", "gate_up_proj", "down_proj", otherwise="TORCH_SWIGLU_MLP for separate gate_proj/up_proj"
)
TORCH_GEGLU_MLP = PatchSet("torch_geglu_mlp", "pure-torch GeGLU MLP with LigerGEGLUMLP's structure")
TORCH_ROPE = PatchSet("torch_rope", "rope computed in fp32, the precision of Liger's rope kernel")


def _rms_normalize(hidden_states: torch.Tensor, eps: float) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) over the last dimension."""
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return hidden_states * torch.rsqrt(variance + eps)


@TORCH_RMS_NORM.replace_class(
    "rms_norm", description="pure-torch RMSNorm with LigerRMSNorm's interface and 'llama' casting (CPU stand-in)"
)
class TorchRMSNorm(nn.Module):
    """RMSNorm as LigerRMSNorm computes it by default: normalise in fp32, cast back, then scale by `weight`."""

    def __init__(self, hidden_size, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        normalized = _rms_normalize(hidden_states.to(torch.float32), self.variance_epsilon)
        return self.weight * normalized.to(input_dtype)

    def extra_repr(self):
        return f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}"


@TORCH_GEMMA_RMS_NORM.replace_class(
    "rms_norm",
    description="pure-torch (1 + weight) RMSNorm in fp32, LigerRMSNormForGemma3's offset=1 'gemma' casting (CPU stand-in)",
)
class TorchGemmaRMSNorm(nn.Module):
    """Gemma's RMSNorm: the weight is an offset from 1 (it starts at zero) and the whole product is fp32."""

    def __init__(self, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        normalized = _rms_normalize(hidden_states.float(), self.variance_epsilon)
        # scale before casting back, unlike the Llama norm (see transformers PR 29402)
        return (normalized * (1.0 + self.weight.float())).type_as(hidden_states)

    def extra_repr(self):
        return f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}"


@TORCH_SWIGLU_MLP.replace_class(
    "mlp", description="pure-torch SwiGLU with LigerSwiGLUMLP's constructor and keys: down(silu(gate) * up)"
)
class TorchSwiGLUMLP(nn.Module):
    """The gated MLP of Llama-style models, bias-free and SiLU-only like the fused kernel it stands in for."""

    def __init__(self, config, intermediate_size=None):
        super().__init__()
        self.config = config
        self.hidden_size = config.hidden_size
        self.intermediate_size = intermediate_size if intermediate_size is not None else config.intermediate_size
        self.gate_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.up_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.down_proj = nn.Linear(self.intermediate_size, self.hidden_size, bias=False)
        if config.hidden_act not in ("silu", "swish"):
            raise ValueError(f"the fused SwiGLU MLP supports only silu/swish, not {config.hidden_act!r}")
        # LigerSwiGLUMLP has no biases; refuse a config that has them instead of dropping them silently
        if getattr(config, "mlp_bias", False):
            raise ValueError("the fused SwiGLU MLP has no biases, but config.mlp_bias is True")

    def forward(self, x):
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


@TORCH_FUSED_SWIGLU_MLP.replace_class(
    "mlp", description="pure-torch SwiGLU on a fused gate_up_proj, LigerPhi3SwiGLUMLP's constructor and keys"
)
class TorchFusedSwiGLUMLP(nn.Module):
    """SwiGLU whose gate and up projections are one `gate_up_proj` (gate rows first), as Phi-3 stores them.

    Requires: the upstream MLP is built as `MLP(config)` with keys `gate_up_proj` / `down_proj` and no
    biases, computes `down(act(gate) * up)` with `gate, up = gate_up_proj(x).chunk(2)`, and a SiLU activation.
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.hidden_size = config.hidden_size
        self.intermediate_size = config.intermediate_size
        self.gate_up_proj = nn.Linear(self.hidden_size, 2 * self.intermediate_size, bias=False)
        self.down_proj = nn.Linear(self.intermediate_size, self.hidden_size, bias=False)
        if config.hidden_act not in ("silu", "swish"):
            raise ValueError(f"the fused SwiGLU MLP supports only silu/swish, not {config.hidden_act!r}")

    def forward(self, x):
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(nn.functional.silu(gate) * up)


@TORCH_GEGLU_MLP.replace_class(
    "mlp", description="pure-torch GeGLU with LigerGEGLUMLP's constructor and keys: down(gelu_tanh(gate) * up)"
)
class TorchGeGLUMLP(nn.Module):
    """Gemma's gated MLP with the tanh-approximated GELU, the only GELU the fused kernel implements."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.hidden_size = config.hidden_size
        self.intermediate_size = config.intermediate_size
        self.gate_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.up_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.down_proj = nn.Linear(self.intermediate_size, self.hidden_size, bias=False)
        activation = getattr(config, "hidden_activation", None) or config.hidden_act
        if activation not in ("gelu_pytorch_tanh", "gelu_tanh"):
            raise ValueError(f"the fused GeGLU MLP computes the tanh GELU only, not {activation!r}")

    def forward(self, x):
        return self.down_proj(nn.functional.gelu(self.gate_proj(x), approximate="tanh") * self.up_proj(x))


def _rotate_half(x):
    """Rotates half the hidden dims of the input (upstream's `rotate_half`)."""
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


@TORCH_ROPE.replace_function("rope", description="rope in fp32, cast back: the precision of Liger's rope kernel")
def torch_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
    """Rotary position embedding of q and k, computed in fp32 whatever their dtype."""
    cos = cos.unsqueeze(unsqueeze_dim).to(torch.float32)
    sin = sin.unsqueeze(unsqueeze_dim).to(torch.float32)
    q32, k32 = q.to(torch.float32), k.to(torch.float32)
    q_embed = (q32 * cos) + (_rotate_half(q32) * sin)
    k_embed = (k32 * cos) + (_rotate_half(k32) * sin)
    return q_embed.to(q.dtype), k_embed.to(k.dtype)


# The config values each kernel supports (checked at generation and at construction; the same as liger_kernels.py):
# silu(gate) * up without biases; the tanh GELU whatever the config says.
TORCH_SWIGLU_MLP.requires_config(
    "mlp", hidden_act=("silu", "swish"), mlp_bias=False, otherwise="TORCH_GEGLU_MLP for a tanh-GELU MLP"
)
TORCH_FUSED_SWIGLU_MLP.requires_config("mlp", hidden_act=("silu", "swish"), otherwise="upstream's MLP")
TORCH_GEGLU_MLP.requires_config(
    "mlp", hidden_activation=("gelu_pytorch_tanh", "gelu_tanh"), otherwise="upstream's MLP for another activation"
)
