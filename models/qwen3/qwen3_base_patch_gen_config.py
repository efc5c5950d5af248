"""Qwen3: what every generated Qwen3 file shares. A base: the _cpu and _gpu variants extend it.

Not generated on its own (`PatchConfig.base`). Attention gets Ulysses sequence parallelism; without a
sequence-parallel group set, the files compute exactly what upstream does.
"""

from patchgen import PatchConfig
from patchgen.sets.attention.ulysses_attention import (
    full_rotary,
    output_projection,
    per_head_qk_norm,
    separate_qkv_projection,
)
from patchgen.sets.training_sets import ULYSSES_ATTENTION


config = PatchConfig.base(
    source_module="transformers.models.qwen3.modeling_qwen3",
    description="Qwen3, causal-LM training heads only",
)
config.exclude_from_output(
    "Qwen3ForTokenClassification",
    "Qwen3ForQuestionAnswering",
    reason="heads not used for causal-LM training",
)
config.use(
    ULYSSES_ATTENTION,
    attention="Qwen3Attention",
    bind={
        "project_qkv": separate_qkv_projection,
        "qk_norm": per_head_qk_norm,
        "rotary": full_rotary,
        "project_output": output_projection,
    },
)
