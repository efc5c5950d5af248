"""Mistral: what every generated Mistral file shares. A base: the _cpu and _gpu variants extend it.

Not generated on its own (`PatchConfig.base`); its patches reach generated/mistral/ through the
variants, which add only their kernels.

No Ulysses sequence parallelism: `MistralAttention` passes `config.sliding_window` to the attention
function and has no `self.sliding_window`, which the shared Ulysses forward reads; with it, the window
would be dropped (measured: loss off by 0.03 over two ranks, and flash attention would lose the window
even without sequence parallelism). Mistral gets it once the shared forward falls back to the config.
"""

from patchgen import PatchConfig


config = PatchConfig.base(
    source_module="transformers.models.mistral.modeling_mistral",
    description="Mistral, causal-LM training heads only (no sequence parallelism: see the config's docstring)",
)
config.exclude_from_output(
    "MistralForTokenClassification",
    "MistralForQuestionAnswering",
    reason="heads not used for causal-LM training",
)
