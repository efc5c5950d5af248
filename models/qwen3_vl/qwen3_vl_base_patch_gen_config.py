"""Qwen3-VL: what every generated Qwen3-VL file shares. A base: the _cpu and _gpu variants extend it.

Not generated on its own (`PatchConfig.base`). One upstream module (`modeling_qwen3_vl.py`) holds the
vision tower and the text decoder. Where Qwen3-VL differs from Qwen2.5-VL (`models/qwen2_5_vl/`):

- `Qwen3VLModel.__init__` builds its towers with `AutoModel.from_config(...)`, which returns transformers' own
  (stock) `Qwen3VLVisionModel` / `Qwen3VLTextModel`: a generated file would patch classes its model never
  builds. `OWN_SUBMODELS` (shared with Qwen3.5) builds this file's classes instead, as Qwen2.5-VL's model does;
- the text attention is Qwen3's (separate q/k/v projections, q/k RMSNorm per head after the view, rope over the
  whole head) with upstream's `(hidden_states, position_embeddings, attention_mask, cache)` order, so the shared
  `ULYSSES_ATTENTION` fits with Qwen3's steps; the interleaved MRoPE (temporal/height/width frequencies
  interleaved by `mrope_section`) is folded into cos/sin by `Qwen3VLTextRotaryEmbedding`, so the rope applied per
  layer is the plain rotate-half rope the rope sets stand in for;
- the text model also takes DeepStack's visual features (`visual_pos_masks`, `deepstack_visual_embeds`, added to
  the visual tokens' hidden states after the first layers): under sequence parallelism they are sliced with the
  sequence (`ULYSSES_WHOLE_SEQUENCE_DEEPSTACK_TEXT_MODEL`); the batch arrives whole (`shard_multimodal_batch`);
- the conditional-generation forward passes `use_cache` in `**kwargs` (the fused-loss set takes Qwen3-VL's
  arguments: `multimodal_loss_set(..., vision_language_forward_without_use_cache)`, in the variants).

Kept upstream's:

- the text MLP (`Qwen3VLTextMLP`): the SwiGLU sets require `hidden_act` in ("silu", "swish") and the generator
  checks every sub-config: `Qwen3VLConfig().vision_config` defaults `hidden_act="gelu_pytorch_tanh"` (as
  Qwen2-VL's quick_gelu: a limit of the generator's config-default check, `models/qwen2_vl/`);
- the vision blocks (LayerNorm with bias, fc1/GELU/fc2 `Qwen3VLVisionMLP`): no shared set fits them; the vision
  attention (full attention per image over `cu_seqlens`, HF's attention interface), the learned position
  embedding interpolation, the patch mergers (DeepStack's included) and the rotary embedding modules: no kernel;
  under SP each rank runs the vision tower on all the batch's images.
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
    source_module="transformers.models.qwen3_vl.modeling_qwen3_vl",
    description="Qwen3-VL (vision tower and text decoder), conditional-generation training",
)


config.use(OWN_SUBMODELS, "Qwen3VLModel")
config.use(
    ULYSSES_ATTENTION,
    attention="Qwen3VLTextAttention",
    bind={
        "project_qkv": separate_qkv_projection,
        "qk_norm": per_head_qk_norm,
        "rotary": full_rotary,
        "project_output": output_projection,
    },
)
config.use(ULYSSES_WHOLE_SEQUENCE_DEEPSTACK_TEXT_MODEL, "Qwen3VLTextModel")
config.add_code(
    after="Qwen3VLForConditionalGeneration",
    description="the batch one rank passes to the model under sequence parallelism (whole sequence, its labels' share)",
)(shard_multimodal_batch)
