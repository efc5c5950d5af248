"""Kernels for the vision tower of a vision-language model, as patch sets (Qwen2.5-VL's vision blocks).

The vision blocks of Qwen2.5-VL are pre-norm (`x + attn(norm1(x))`, `x + mlp(norm2(x))`) and share the
decoder's RMSNorm class, so the text families' RMSNorm sets fit them unchanged. Two parts need sets of
their own:

- the vision MLP is a gated SiLU MLP *with biases* (`Qwen2_5_VLMLP(config, bias=True)`), which
  `LIGER_SWIGLU_MLP` (bias-free, built as `MLP(config)`) is refused for at generation:
  `GATED_SILU_MLP_WITH_BIAS` keeps upstream's projections and keys and computes `silu(gate) * up` through
  the `silu_mul` slot: plain torch by default (the `_cpu` files), Liger's fused kernel when a GPU config
  binds `bind={"silu_mul": liger_swiglu}` (from `liger_kernel.transformers.functional`);
- the vision rope (`apply_rotary_pos_emb_vision`: `[seq, heads, head_dim]` in fp32, 2-D cos/sin):
  `LIGER_VISION_ROPE` binds Liger's `liger_rotary_pos_emb_vision`, written for that layout, and
  `TORCH_VISION_ROPE` is its plain-torch twin (the math of upstream's function, which already computes
  in fp32 as Liger's wrapper does), so the `_cpu` file patches the same names as the `_gpu` file.
"""

from typing import TYPE_CHECKING

import torch
from torch import nn

from patchgen.dsl.patch_sets import PatchSet


if TYPE_CHECKING:  # the modeling module's own helper, resolved in the generated file
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import rotate_half


def torch_silu_mul(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up in plain torch: what Liger's `liger_swiglu` kernel computes in one pass."""
    return nn.functional.silu(gate) * up


# The slot the MLP calls; a GPU config binds Liger's kernel to it: config.use(..., bind={"silu_mul": liger_swiglu})
silu_mul = torch_silu_mul


GATED_SILU_MLP_WITH_BIAS = PatchSet(
    "gated_silu_mlp_with_bias", "gated SiLU MLP with biased projections, silu(gate) * up through a bindable kernel"
)
GATED_SILU_MLP_WITH_BIAS.requires_attributes(
    "mlp", "gate_proj", "up_proj", "down_proj", otherwise="LIGER_FUSED_SWIGLU_MLP for a fused gate_up_proj"
)


@GATED_SILU_MLP_WITH_BIAS.replace_class(
    "mlp",
    description=(
        "upstream's gated MLP with its biases and keys, silu(gate) * up computed by the bound silu_mul "
        "(Liger's fused kernel on GPU, plain torch on CPU)"
    ),
)
class GatedSiLUMLPWithBias(nn.Module):
    """down(silu(gate(x)) * up(x)) with biased projections; SiLU only, like the fused kernel it can call.

    Requires: upstream's MLP is built as `MLP(config, bias=...)` with keys `gate_proj`, `up_proj`, `down_proj`
    and `config.hidden_act` SiLU (Qwen2.5-VL's vision MLP).
    """

    def __init__(self, config, bias: bool = False):
        super().__init__()
        self.hidden_size = config.hidden_size
        self.intermediate_size = config.intermediate_size
        self.gate_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=bias)
        self.up_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=bias)
        self.down_proj = nn.Linear(self.intermediate_size, self.hidden_size, bias=bias)
        if config.hidden_act not in ("silu", "swish"):
            raise ValueError(f"the fused SwiGLU MLP supports only silu/swish, not {config.hidden_act!r}")

    def forward(self, hidden_state):
        # through the projection modules, not their weights: tensor parallelism's hooks live on them
        return self.down_proj(silu_mul(self.gate_proj(hidden_state), self.up_proj(hidden_state)))


LIGER_VISION_ROPE = PatchSet("liger_vision_rope", "Liger's fused rope kernel for [seq, heads, head_dim] vision tokens")
LIGER_VISION_ROPE.external(
    "vision_rope",
    "liger_kernel.transformers.rope",
    "liger_rotary_pos_emb_vision",
    description=(
        "Liger's rope kernel for the vision tower's layout (q/k [seq, heads, head_dim], cos/sin [seq, head_dim], "
        "computed in fp32 and cast back as upstream), called as upstream calls apply_rotary_pos_emb_vision"
    ),
)

TORCH_VISION_ROPE = PatchSet("torch_vision_rope", "rope for [seq, heads, head_dim] vision tokens in fp32 (CPU twin)")


@TORCH_VISION_ROPE.replace_function(
    "vision_rope",
    description="rope of [seq, heads, head_dim] q/k with [seq, head_dim] cos/sin in fp32, cast back: Liger's vision "
    "wrapper in plain torch (CPU stand-in)",
)
def torch_rotary_pos_emb_vision(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary position embedding of vision q and k (one row of cos/sin per token, broadcast over heads), in fp32."""
    cos, sin = cos.unsqueeze(-2).to(torch.float32), sin.unsqueeze(-2).to(torch.float32)
    q32, k32 = q.to(torch.float32), k.to(torch.float32)
    q_embed = (q32 * cos) + (rotate_half(q32) * sin)
    k_embed = (k32 * cos) + (rotate_half(k32) * sin)
    return q_embed.to(q.dtype), k_embed.to(k.dtype)
