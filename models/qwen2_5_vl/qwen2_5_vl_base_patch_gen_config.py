"""Qwen2.5-VL: what every generated Qwen2.5-VL file shares. A base: the _cpu and _gpu variants extend it.

Not generated on its own (`PatchConfig.base`). The vision tower and the text decoder live in one
upstream module (`modeling_qwen2_5_vl.py`), so one config patches both. Where Qwen2.5-VL differs from
a text family:

- the text attention is Qwen2's (separate biased q/k/v projections, no q/k norm, rope over the whole
  head: the multimodal rope sections are folded into cos/sin by the rotary embedding), so the shared
  Ulysses forward takes the same steps as Qwen2; its forward takes `position_ids` before
  `cache`, so the shared forward is added as `ulysses_forward` behind upstream's parameters
  (`ULYSSES_ATTENTION_WITH_POSITION_IDS`: the generator refuses an override whose positional
  parameters differ from upstream's);
- under sequence parallelism the batch cannot be sharded before the model: the image features replace
  the placeholder tokens' embeddings wherever they sit, and the 3-D rope positions are computed over the
  whole row. Every rank gets the whole sequence (`shard_multimodal_batch`, added to the file for training
  code to import) and the text model keeps this rank's slice after the merge
  (`patchgen/sets/attention/ulysses_multimodal.py`);
- transformers keeps the released checkpoints' layout (`model.layers.*`, `visual.*`) by renaming keys
  on load and save, by class name, for its own classes: `NATIVE_MODEL_CODE` (applied by the generator) makes the generated ones count;
- the vision attention (windowed, per-image `cu_seqlens`) is upstream's: no kernel fits it beyond HF's
  attention interface, and under SP each rank runs the vision tower on all the batch's images.
"""

from patchgen import PatchConfig
from patchgen.sets.attention.ulysses_attention import (
    full_rotary,
    no_qk_norm,
    output_projection,
    separate_qkv_projection,
)
from patchgen.sets.attention.ulysses_multimodal import (
    ULYSSES_ATTENTION_WITH_POSITION_IDS,
    ULYSSES_WHOLE_SEQUENCE_TEXT_MODEL,
    documents_of_four_row_positions,
    shard_multimodal_batch,
)


config = PatchConfig.base(
    source_module="transformers.models.qwen2_5_vl.modeling_qwen2_5_vl",
    description=("Qwen2.5-VL (vision tower and text decoder), conditional-generation training"),
)
config.use(
    ULYSSES_ATTENTION_WITH_POSITION_IDS,
    attention="Qwen2_5_VLAttention",
    bind={
        "project_qkv": separate_qkv_projection,
        "qk_norm": no_qk_norm,
        "rotary": full_rotary,
        "project_output": output_projection,
    },
)
config.use(
    ULYSSES_WHOLE_SEQUENCE_TEXT_MODEL,
    "Qwen2_5_VLTextModel",
    bind={"documents_as_upstream_reads_them": documents_of_four_row_positions},
)
config.add_code(
    after="Qwen2_5_VLForConditionalGeneration",
    description="the batch one rank passes to the model under sequence parallelism (whole sequence, its labels' share)",
)(shard_multimodal_batch)
