"""`LIGER_EXPERTS`: Liger's fused MoE kernel as the default experts implementation (`_gpu` files).

See `patchgen/sets/experts/moe_experts.py` for how the experts sets keep upstream's dispatch.
"""

import torch
from liger_kernel.transformers.swiglu import LigerExperts
from transformers.modeling_utils import PreTrainedModel

from patchgen.dsl.patch_sets import PatchSet
from patchgen.sets.experts.moe_experts import fused_unless_requested, registered_experts_implementation


LIGER_EXPERTS = PatchSet("liger_experts", "Liger's fused MoE kernel, the default experts kernel")


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


@LIGER_EXPERTS.override_method(
    "pretrained_model.get_correct_experts_implementation",
    description="experts: Liger's fused kernel 'liger_fused_moe' unless another is requested; every upstream "
    "implementation stays selectable with set_experts_implementation()",
)
def liger_fused_moe_by_default(self, requested_experts: str | None) -> str:
    """The experts implementation to use: `requested_experts`, else this file's fused kernel."""
    chosen = fused_unless_requested(self.config, requested_experts, liger_fused_moe)
    return PreTrainedModel.get_correct_experts_implementation(self, chosen)
