"""The training-time forwards of `models/common` as patch sets: Ulysses attention and the fused loss.

`ulysses_attention.py` and `fused_loss.py` hold the implementations (one copy for every Llama-style
model); this module only names them as sets so a config maps them onto its upstream names:

    config.use(ULYSSES_ATTENTION, "LlamaAttention")
    config.use(LIGER_FUSED_LINEAR_CROSS_ENTROPY, "LlamaForCausalLM")   # GPU files
    config.use(TORCH_LINEAR_CROSS_ENTROPY, "LlamaForCausalLM")         # CPU files, same interface
"""

from models.common import fused_loss, ulysses_attention
from patchgen.patch_sets import PatchSet


ULYSSES_ATTENTION = PatchSet("ulysses_attention", "Ulysses sequence parallelism around the attention call")
ULYSSES_ATTENTION.modify_init("attention", description="fix the sequence-parallel head layout at construction")(
    ulysses_attention.ulysses_attention_init
)
ULYSSES_ATTENTION.override_method(
    "attention.forward", description="Ulysses sequence parallelism: all-to-alls around the attention call"
)(ulysses_attention.ulysses_attention_forward)

LIGER_FUSED_LINEAR_CROSS_ENTROPY = PatchSet(
    "liger_fused_linear_cross_entropy", "loss from hidden states and lm_head weight, logits never materialised"
)
LIGER_FUSED_LINEAR_CROSS_ENTROPY.override_method(
    "causal_lm.forward",
    description="Liger fused linear cross-entropy: with labels the [tokens, vocab] logits are never materialised",
)(fused_loss.linear_cross_entropy_forward)
LIGER_FUSED_LINEAR_CROSS_ENTROPY.add_import(
    "liger_kernel.transformers.functional", names=["liger_fused_linear_cross_entropy as linear_cross_entropy"]
)

TORCH_LINEAR_CROSS_ENTROPY = PatchSet(
    "torch_linear_cross_entropy", "the fused-loss forward with a plain-torch loss (CPU stand-in)"
)
TORCH_LINEAR_CROSS_ENTROPY.override_method(
    "causal_lm.forward",
    description="loss from hidden states and lm_head weight in plain torch: the GPU file's forward, Liger's kernel swapped",
)(fused_loss.linear_cross_entropy_forward)
TORCH_LINEAR_CROSS_ENTROPY.add_import(
    "patchgen.runtime.losses", names=["torch_linear_cross_entropy as linear_cross_entropy"]
)
