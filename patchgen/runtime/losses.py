"""Loss functions generated files import at run time.

`torch_linear_cross_entropy` is the plain-torch twin of Liger's `liger_fused_linear_cross_entropy`
(same leading parameters): the `_cpu` files bind it where the `_gpu` files bind Liger's kernel, so
both run the same causal-LM forward.
"""

import torch
from torch import nn


def torch_linear_cross_entropy(
    input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy of `input @ weight.T`, as Liger's fused kernel computes it, in plain torch.

    The logits are materialised (in fp32, as upstream's loss upcasts them): this is the CPU stand-in,
    not a memory saving.
    """
    logits = nn.functional.linear(input, weight, bias).float()
    return nn.functional.cross_entropy(logits, target, ignore_index=ignore_index, reduction=reduction)
