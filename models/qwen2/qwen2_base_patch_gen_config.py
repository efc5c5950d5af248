"""Qwen2 (and Qwen2.5): what every generated Qwen2 file shares. A base: the _cpu and _gpu variants extend it.

Not generated on its own (`PatchConfig.base`); its patches reach generated/qwen2/ through the
variants, which add only their kernels.
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
    source_module="transformers.models.qwen2.modeling_qwen2",
    description="Qwen2, causal-LM training heads only",
)
config.exclude_from_output(
    "Qwen2ForTokenClassification",
    "Qwen2ForQuestionAnswering",
    reason="heads not used for causal-LM training",
)
config.use(
    ULYSSES_ATTENTION,
    attention="Qwen2Attention",
    bind={
        "project_qkv": separate_qkv_projection,
        "qk_norm": no_qk_norm,
        "rotary": full_rotary,
        "project_output": output_projection,
    },
)
