"""Mistral: what every generated Mistral file shares. A base: the _cpu and _gpu variants extend it.

Not generated on its own (`PatchConfig.base`); its patches reach generated/mistral/ through the
variants, which add only their kernels.

Ulysses sequence parallelism as in every Llama-style file; `MistralAttention` has no per-layer window,
so the shared forward takes `config.sliding_window`, as upstream does.
"""

from patchgen import PatchConfig
from patchgen.sets.attention.ulysses_attention import (
    full_rotary,
    no_qk_norm,
    output_projection,
    separate_qkv_projection,
)
from patchgen.sets.training_sets import ULYSSES_ATTENTION


config = PatchConfig.base(
    source_module="transformers.models.mistral.modeling_mistral",
    description="Mistral, causal-LM training heads only",
)
config.exclude_from_output(
    "MistralForTokenClassification",
    "MistralForQuestionAnswering",
    reason="heads not used for causal-LM training",
)
config.use(
    ULYSSES_ATTENTION,
    attention="MistralAttention",
    bind={
        "project_qkv": separate_qkv_projection,
        "qk_norm": no_qk_norm,
        "rotary": full_rotary,
        "project_output": output_projection,
    },
)
