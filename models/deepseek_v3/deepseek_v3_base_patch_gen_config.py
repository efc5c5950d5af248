"""DeepSeek-V3: what every generated DeepSeek-V3 file shares. A base: the _cpu and _gpu variants extend it.

Not generated on its own (`PatchConfig.base`). DeepSeek-V3 differs from Llama where the shared patches
must know it:

- multi-head latent attention (MLA): keys and values come from one compressed latent per token
  (`kv_a_proj_with_mqa`, `kv_b_proj`), the rope key is one head shared by every head, and the value
  head is narrower than the query/key head. The shared Ulysses forward does not fit (no q/k/v
  projections); `ULYSSES_MLA_ATTENTION` (patchgen/sets/attention/ulysses_mla.py) trades the decompressed heads
  for head shards and gathers the shared rope key once;
- routed + shared experts: upstream's `DeepseekV3Experts` keeps its `@use_experts_implementation`
  dispatch (the variants register a fused kernel as one more implementation); stock checkpoints store
  the routed experts one by one (`mlp.experts.0.gate_proj.weight`, ...), fused on load by transformers
  for its own classes, which `NATIVE_MODEL_CODE` (applied by the generator) makes the generated ones count as.
"""

from patchgen import PatchConfig
from patchgen.sets.attention.ulysses_mla import ULYSSES_MLA_ATTENTION


config = PatchConfig.base(
    source_module="transformers.models.deepseek_v3.modeling_deepseek_v3",
    description="DeepSeek-V3, causal-LM training heads only",
)
config.exclude_from_output(
    "DeepseekV3ForSequenceClassification",
    "DeepseekV3ForTokenClassification",
    reason="heads not used for causal-LM training",
)
config.use(ULYSSES_MLA_ATTENTION, attention="DeepseekV3Attention")
