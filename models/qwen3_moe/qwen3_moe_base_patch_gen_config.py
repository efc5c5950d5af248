"""Qwen3-MoE: what every generated Qwen3-MoE file shares. A base: the _cpu and _gpu variants extend it.

Not generated on its own (`PatchConfig.base`). Stock checkpoints load: transformers fuses the
per-expert weights of a saved checkpoint (`mlp.experts.0.gate_proj...`) into `experts.gate_up_proj` /
`experts.down_proj` for its own classes, and `NATIVE_MODEL_CODE` (applied by the generator) makes the generated ones count as such.
"""

from patchgen import PatchConfig
from patchgen.sets.training_sets import ULYSSES_ATTENTION


config = PatchConfig.base(
    source_module="transformers.models.qwen3_moe.modeling_qwen3_moe",
    description="Qwen3-MoE, causal-LM training heads only",
)
config.exclude_from_output(
    "Qwen3MoeForTokenClassification",
    "Qwen3MoeForQuestionAnswering",
    reason="heads not used for causal-LM training",
)
config.use(ULYSSES_ATTENTION, attention="Qwen3MoeAttention")
