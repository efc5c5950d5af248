"""Qwen3-Next (hybrid linear attention): what every generated Qwen3-Next file shares. A base: _cpu and _gpu extend it.

Not generated on its own (`PatchConfig.base`). Qwen3-Next interleaves two token mixers
(`config.layer_types`), and both get Ulysses sequence parallelism:

- `full_attention` layers (`Qwen3NextAttention`): gated softmax attention. `q_proj` holds a query and an
  output gate per head, q/k norms are per head, rope is partial (`partial_rotary_factor`, 0.25 in the
  released models), and the output is `o_proj(attention * sigmoid(gate))`: the shared Ulysses forward
  (`ULYSSES_ATTENTION`) with the gated projection and output steps bound (`gated_query_projection`,
  `gated_output_projection`, `patchgen/sets/attention/ulysses_attention.py`), per-head q/k norm and partial rope;
- `linear_attention` layers (`Qwen3NextGatedDeltaNet`): `ULYSSES_GATED_DELTA_NET`
  (`patchgen/sets/attention/ulysses_linear_attention.py`), one all-to-all before the short convolution and the
  delta rule, so each rank runs both over the whole sequence of its heads, and one back. Each variant
  applies it, because each binds its own delta-rule kernel (upstream's pure-torch one, or fla's).

Stock checkpoints load: transformers fuses the per-expert weights of a saved checkpoint
(`mlp.experts.0.gate_proj...`) into `experts.gate_up_proj` / `experts.down_proj` for its own classes,
which `NATIVE_MODEL_CODE` (applied by the generator) makes the generated ones count as.
"""

from patchgen import PatchConfig
from patchgen.sets.attention.ulysses_attention import (
    gated_output_projection,
    gated_query_projection,
    partial_rotary,
    per_head_qk_norm,
)
from patchgen.sets.training_sets import ULYSSES_ATTENTION


config = PatchConfig.base(
    source_module="transformers.models.qwen3_next.modeling_qwen3_next",
    description="Qwen3-Next, causal-LM training heads only",
)
config.exclude_from_output(
    "Qwen3NextForSequenceClassification",
    "Qwen3NextForTokenClassification",
    "Qwen3NextForQuestionAnswering",
    reason="heads not used for causal-LM training",
)
config.use(
    ULYSSES_ATTENTION,
    attention="Qwen3NextAttention",
    bind={
        "project_qkv": gated_query_projection,
        "qk_norm": per_head_qk_norm,
        "rotary": partial_rotary,
        "project_output": gated_output_projection,
    },
)
