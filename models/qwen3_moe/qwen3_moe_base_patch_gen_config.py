"""Qwen3-MoE: what every generated Qwen3-MoE file shares. A base: the _cpu and _gpu variants extend it.

Not generated on its own (`PatchConfig.base`). Besides trimming heads it makes stock checkpoints
load: transformers fuses the per-expert weights of a saved checkpoint (`mlp.experts.0.gate_proj...`)
into `experts.gate_up_proj` / `experts.down_proj` only for classes inside its own package, unless the
model type is registered; the generated file registers it at import.
"""

from models.common.training_sets import ULYSSES_ATTENTION
from patchgen import PatchConfig


config = PatchConfig.base(
    source_module="transformers.models.qwen3_moe.modeling_qwen3_moe",
    description="Qwen3-MoE, causal-LM training heads only, stock checkpoint conversion registered",
)
config.add_import("patchgen.runtime.checkpoint_conversion", ["reuse_upstream_conversion_mapping"])
config.add_statement(
    'reuse_upstream_conversion_mapping("qwen3_moe")',
    description="transformers skips its checkpoint conversions for classes outside its package unless the model "
    "type is registered; without this, per-expert checkpoints load as MISSING fused expert weights",
)
config.exclude_from_output(
    "Qwen3MoeForTokenClassification",
    "Qwen3MoeForQuestionAnswering",
    reason="heads not used for causal-LM training",
)
config.use(ULYSSES_ATTENTION, attention="Qwen3MoeAttention")
