"""Fused MoE experts as one more implementation behind upstream's experts dispatch, and the default one.

Upstream decorates its experts class (`Qwen3MoeExperts`) so that its forward calls the function that
`config._experts_implementation` names in transformers' `ALL_EXPERTS_FUNCTIONS` ("eager" is the
class's own loop; "batched_mm", "grouped_mm", ... are transformers' kernels), and users switch with
`model.set_experts_implementation(name)` or `from_pretrained(..., experts_implementation=name)`. These
sets keep that class and its decorator untouched and add a kernel to the dispatch instead of replacing
the class, so every upstream implementation stays selectable:

- `LIGER_EXPERTS` registers Liger's fused MoE kernel as "liger_fused_moe" (the `_gpu` files);
- `TORCH_EXPERTS` registers its pure-torch twin as "torch_fused_moe" (the `_cpu` files);
- both make the model pick that name when nothing is requested (upstream picks "grouped_mm").

The kernels read upstream's parameters (`gate_up_proj` [experts, 2 * inter, hidden], `down_proj`
[experts, hidden, inter]), so checkpoints load unchanged. Kept apart from `liger_kernels.py` /
`torch_kernels.py` because the experts are MoE-specific and change independently of the norm and MLP sets.
"""

import torch
from liger_kernel.transformers.swiglu import LigerExperts
from torch import nn
from transformers.integrations.moe import ALL_EXPERTS_FUNCTIONS
from transformers.modeling_utils import PreTrainedModel

from patchgen.patch_sets import PatchSet


TORCH_EXPERTS = PatchSet("torch_experts", "pure-torch twin of Liger's fused MoE kernel, the default experts kernel")
LIGER_EXPERTS = PatchSet("liger_experts", "Liger's fused MoE kernel, the default experts kernel")


def registered_experts_implementation(experts_forward):
    """Adds `experts_forward` to transformers' experts implementations under its own name, and returns it.

    transformers accepts in `set_experts_implementation(name)` / `from_pretrained(..., experts_implementation=name)`
    only registered names, and upstream's experts forward looks the function up by that name.
    """
    ALL_EXPERTS_FUNCTIONS.register(experts_forward.__name__, experts_forward)
    return experts_forward


@registered_experts_implementation
def torch_fused_moe(
    self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
) -> torch.Tensor:
    """What Liger's fused MoE kernel computes, in plain torch: rows sorted by expert, one matmul pair per expert.

    The (token, slot) pairs are sorted by expert; each expert multiplies its contiguous rows by its
    gate/up and down weights; then every token sums its slots weighted by the router (Liger's
    aggregation step). The per-expert matmuls are transformers' `grouped_mm_fallback` operator (a loop
    of `torch.mm` that torch.compile and torch.export see as one opaque op, registered when
    `transformers.integrations.moe` is imported), and no shape here depends on the routing, so the
    forward compiles with `fullgraph=True` and exports.
    """
    num_top_k = top_k_index.shape[-1]
    experts = top_k_index.reshape(-1)
    # an index equal to num_experts marks a slot routed elsewhere (expert parallelism): it sorts last, past
    # every group end, and is masked out below
    _, order = torch.sort(experts)
    # bincount with a fixed length (torch.bincount's length depends on the data, which compile must guard on)
    counts = torch.zeros(self.num_experts + 1, dtype=torch.int64, device=experts.device)
    counts.scatter_add_(0, experts, torch.ones_like(experts))
    group_ends = counts[: self.num_experts].cumsum(0)
    grouped_mm = torch.ops.transformers.grouped_mm_fallback
    rows = hidden_states[order // num_top_k]
    gate, up = grouped_mm(rows, self.gate_up_proj.transpose(1, 2), group_ends).chunk(2, dim=-1)
    expert_outputs = grouped_mm(nn.functional.silu(gate) * up, self.down_proj.transpose(1, 2), group_ends)
    # back to (token, slot) order through the inverse permutation
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    per_slot = expert_outputs[inverse].view(*top_k_index.shape, -1)
    routed = (top_k_index < self.num_experts).unsqueeze(-1)
    weighted = torch.where(routed, per_slot * top_k_weights.unsqueeze(-1), 0.0)
    return weighted.sum(dim=-2).to(hidden_states.dtype)


@registered_experts_implementation
def liger_fused_moe(
    self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
) -> torch.Tensor:
    """Liger's fused MoE kernel (`LigerExperts.forward`) on upstream's experts module.

    `LigerExperts.forward` reads only `hidden_dim`, `gate_up_proj` and `down_proj`, which upstream's
    experts class has with the same names and shapes. The kernel cannot be traced: it sizes its tile
    buffers from a data-dependent `.item()` (liger_kernel/ops/fused_moe.py, `compute_routing_metadata`),
    so under torch.compile / torch.export this refuses with one line instead of failing inside dynamo.
    """
    if torch.compiler.is_compiling():
        raise RuntimeError(
            "Liger's fused MoE kernel ('liger_fused_moe') cannot be traced by torch.compile(fullgraph=True) or "
            "torch.export (it sizes its buffers with a data-dependent .item()); call "
            "model.set_experts_implementation('grouped_mm') before compiling or exporting"
        )
    return LigerExperts.forward(self, hidden_states, top_k_index, top_k_weights)


def fused_unless_requested(config, requested_experts: str | None, fused) -> str:
    """The implementation to use: `requested_experts`, or the fused kernel `fused` (by name) when none is requested.

    Upstream's default is grouped_mm. The fused kernels compute SiLU gates only (as Liger's does), so choosing
    one for another activation is refused.
    """
    chosen = fused.__name__ if requested_experts is None else requested_experts
    if chosen == fused.__name__ and config.hidden_act not in ("silu", "swish"):
        raise ValueError(
            f"the fused MoE experts kernel {chosen!r} computes SiLU gates only, not {config.hidden_act!r}; pass "
            "experts_implementation='grouped_mm' (or 'eager', 'batched_mm') to from_pretrained or the config"
        )
    return chosen


@TORCH_EXPERTS.override_method(
    "pretrained_model.get_correct_experts_implementation",
    description="experts: the pure-torch fused kernel 'torch_fused_moe' unless another is requested; every upstream "
    "implementation stays selectable with set_experts_implementation()",
)
def torch_fused_moe_by_default(self, requested_experts: str | None) -> str:
    """The experts implementation to use: `requested_experts`, else this file's fused kernel."""
    chosen = fused_unless_requested(self.config, requested_experts, torch_fused_moe)
    return PreTrainedModel.get_correct_experts_implementation(self, chosen)


@LIGER_EXPERTS.override_method(
    "pretrained_model.get_correct_experts_implementation",
    description="experts: Liger's fused kernel 'liger_fused_moe' unless another is requested; every upstream "
    "implementation stays selectable with set_experts_implementation()",
)
def liger_fused_moe_by_default(self, requested_experts: str | None) -> str:
    """The experts implementation to use: `requested_experts`, else this file's fused kernel."""
    chosen = fused_unless_requested(self.config, requested_experts, liger_fused_moe)
    return PreTrainedModel.get_correct_experts_implementation(self, chosen)
