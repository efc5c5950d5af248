"""Fused MoE experts as patch sets: Liger's kernel (`LIGER_EXPERTS`) and its pure-torch twin (`TORCH_EXPERTS`).

Kept apart from `liger_kernels.py` / `torch_kernels.py` because the experts are MoE-specific and
change independently of the norm and MLP sets.
"""

import torch
from torch import nn

from patchgen.patch_sets import PatchSet


TORCH_EXPERTS = PatchSet("torch_experts", "MoE experts grouped by expert, LigerExperts' structure in plain torch")

LIGER_EXPERTS = PatchSet("liger_experts", "Liger's fused MoE experts")
LIGER_EXPERTS.external(
    "experts",
    "liger_kernel.transformers.swiglu",
    "LigerExperts",
    description=(
        "Liger's fused MoE experts (LigerFusedMoEFunction): same gate_up_proj/down_proj parameters; replaces "
        "the @use_experts_implementation dispatch, so set_experts_implementation() no longer applies"
    ),
)


@TORCH_EXPERTS.replace_class(
    "experts",
    description=(
        "experts grouped by expert, one matmul pair per expert (LigerExperts' structure in plain torch); "
        "replaces the @use_experts_implementation dispatch"
    ),
)
class TorchGroupedExperts(nn.Module):
    """Fused MoE experts: `gate_up_proj` [experts, 2 * inter, hidden] and `down_proj` [experts, hidden, inter].

    The parameters are upstream's (same names and shapes, so checkpoints load unchanged). The forward
    sorts the (token, expert) pairs by expert and runs each expert once on its rows, as the fused kernel
    does, instead of masking the whole batch per expert.
    """

    def __init__(self, config):
        super().__init__()
        self.num_experts = config.num_experts
        self.hidden_dim = config.hidden_size
        self.intermediate_dim = config.moe_intermediate_size
        self.gate_up_proj = nn.Parameter(torch.empty(self.num_experts, 2 * self.intermediate_dim, self.hidden_dim))
        self.down_proj = nn.Parameter(torch.empty(self.num_experts, self.hidden_dim, self.intermediate_dim))
        if config.hidden_act not in ("silu", "swish"):
            raise ValueError(f"the fused experts support only silu/swish, not {config.hidden_act!r}")

    def forward(
        self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
    ) -> torch.Tensor:
        tokens = hidden_states.reshape(-1, self.hidden_dim)
        experts = top_k_index.reshape(-1)
        weights = top_k_weights.reshape(-1)
        # an index equal to num_experts marks a slot routed elsewhere (expert parallelism): skip it
        routed = (experts < self.num_experts).nonzero().squeeze(-1)
        order = routed[torch.argsort(experts[routed], stable=True)]
        token_of = order // top_k_index.shape[-1]
        counts = torch.bincount(experts[order], minlength=self.num_experts).tolist()
        outputs = []
        for expert, rows in enumerate(torch.split(tokens[token_of], counts)):
            if rows.shape[0] == 0:
                continue
            gate, up = nn.functional.linear(rows, self.gate_up_proj[expert]).chunk(2, dim=-1)
            outputs.append(nn.functional.linear(nn.functional.silu(gate) * up, self.down_proj[expert]))
        out = torch.zeros_like(tokens)
        if outputs:
            contributions = torch.cat(outputs) * weights[order, None]
            out.index_add_(0, token_of, contributions.to(out.dtype))
        return out.view(hidden_states.shape)
