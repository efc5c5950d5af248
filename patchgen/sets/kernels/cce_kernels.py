"""Apple's Cut Cross-Entropy (`cut-cross-entropy`) as the fused-loss forward's kernel: a candidate loss set.

Cut Cross-Entropy computes the log-sum-exp and the gradient tile by tile in Triton, never writing the
logits to GPU memory (Wijmans et al., 2024). The set binds `linear_cross_entropy` to
`patchgen.runtime.losses.cce_linear_cross_entropy`, which imports `cut_cross_entropy` when first called
(so the generated file imports on machines without it) and asks for exact gradients (`filter_eps=None`).

Its CPU twin is `training_sets.TORCH_LINEAR_CROSS_ENTROPY`, the same forward with a plain-torch loss:
CCE's kernels need CUDA (they fail under `TRITON_INTERPRET=1` too), so its numbers come from the GPU run
(`benchmarks/bench_train_step.py`, op `loss`, kernel `cce`). Wheel: cut_cross_entropy-25.1.1, 23 KB,
pure Python; it needs only torch and triton, preinstalled on the GPU machine.
"""

from patchgen.sets.training_sets import fused_loss_set


CCE_LINEAR_CROSS_ENTROPY = fused_loss_set(
    "cce_linear_cross_entropy",
    "loss from hidden states and lm_head weight, logits never written to memory (Apple's Cut Cross-Entropy)",
    "patchgen.runtime.losses",
    "cce_linear_cross_entropy",
    "with labels, Apple's Cut Cross-Entropy (exact gradients) for many logits (tokens x vocab), upstream's logits "
    "and loss for few",
)
