"""Qwen3-VL-MoE: what every generated Qwen3-VL-MoE file shares. A base: the _cpu and _gpu variants extend it.

Not generated on its own (`PatchConfig.base`). Qwen3-VL (`models/qwen3_vl/`, whose reasons hold here too) with
Qwen3-MoE's routed experts in the text decoder (`models/qwen3_moe/`):

- `Qwen3VLMoeModel.__init__` builds its towers with `AutoModel.from_config(...)` (transformers' stock classes): the
  `OWN_SUBMODELS` builds this file's, as for Qwen3-VL;
- the text attention is Qwen3's (`ULYSSES_ATTENTION` with Qwen3's steps) and the text model takes DeepStack's
  visual features (`ULYSSES_WHOLE_SEQUENCE_DEEPSTACK_TEXT_MODEL`; the batch arrives whole, `shard_multimodal_batch`);
- the experts (`Qwen3VLMoeTextExperts`, fused `gate_up_proj` / `down_proj`, `@use_experts_implementation`) keep
  upstream's class and dispatch; the variants register a fused kernel and make it the default (the experts sets);
  stock checkpoints load through transformers' conversion mapping (`NATIVE_MODEL_CODE`, applied by the generator).

Kept upstream's:

- the conditional-generation forward and its loss: it adds the router load-balancing loss
  (`router_aux_loss_coef * aux_loss`, with `output_router_logits`), which the shared multimodal fused-loss forward
  does not compute;
- the router (`Qwen3VLMoeTextTopKRouter`): no kernel; the dense MLP of `mlp_only_layers` (`Qwen3VLMoeTextMLP`): the
  SwiGLU sets are refused, `Qwen3VLMoeConfig().vision_config` defaults `hidden_act="gelu_pytorch_tanh"`;
- the vision tower (LayerNorm/GELU blocks, vision attention, position-embedding interpolation, patch mergers) and
  the rotary embedding modules, as for Qwen3-VL.
"""

from patchgen import PatchConfig
from patchgen.sets.attention.ulysses_attention import (
    full_rotary,
    output_projection,
    per_head_qk_norm,
    separate_qkv_projection,
)
from patchgen.sets.attention.ulysses_multimodal import (
    ULYSSES_WHOLE_SEQUENCE_DEEPSTACK_TEXT_MODEL,
    shard_multimodal_batch,
)
from patchgen.sets.composite.own_submodels import OWN_SUBMODELS
from patchgen.sets.training_sets import ULYSSES_ATTENTION


config = PatchConfig.base(
    source_module="transformers.models.qwen3_vl_moe.modeling_qwen3_vl_moe",
    description="Qwen3-VL-MoE (vision tower and MoE text decoder), conditional-generation training",
)


config.use(OWN_SUBMODELS, "Qwen3VLMoeModel")
config.use(
    ULYSSES_ATTENTION,
    attention="Qwen3VLMoeTextAttention",
    bind={
        "project_qkv": separate_qkv_projection,
        "qk_norm": per_head_qk_norm,
        "rotary": full_rotary,
        "project_output": output_projection,
    },
)
config.use(ULYSSES_WHOLE_SEQUENCE_DEEPSTACK_TEXT_MODEL, "Qwen3VLMoeTextModel")
config.add_code(
    after="Qwen3VLMoeForConditionalGeneration",
    description="the batch one rank passes to the model under sequence parallelism (whole sequence, its labels' share)",
)(shard_multimodal_batch)
