"""`TORCH_EXPERTS`: the pure-torch twin of Liger's fused MoE kernel as the default experts implementation (`_cpu` files).

See `patchgen/sets/experts/moe_experts.py` for how the experts sets keep upstream's dispatch.
"""

import torch
from torch import nn
from transformers.modeling_utils import PreTrainedModel

from patchgen.dsl.patch_sets import PatchSet
from patchgen.sets.experts.moe_experts import fused_unless_requested, registered_experts_implementation


TORCH_EXPERTS = PatchSet("torch_experts", "pure-torch twin of Liger's fused MoE kernel, the default experts kernel")


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


@TORCH_EXPERTS.override_method(
    "pretrained_model.get_correct_experts_implementation",
    description="experts: the pure-torch fused kernel 'torch_fused_moe' unless another is requested; every upstream "
    "implementation stays selectable with set_experts_implementation()",
)
def torch_fused_moe_by_default(self, requested_experts: str | None) -> str:
    """The experts implementation to use: `requested_experts`, else this file's fused kernel."""
    chosen = fused_unless_requested(self.config, requested_experts, torch_fused_moe)
    return PreTrainedModel.get_correct_experts_implementation(self, chosen)
