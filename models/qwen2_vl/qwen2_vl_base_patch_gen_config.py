"""Qwen2-VL: what every generated Qwen2-VL file shares. A base: the _cpu and _gpu variants extend it.

Not generated on its own (`PatchConfig.base`). Built from the same sets as Qwen2.5-VL
(`models/qwen2_5_vl/`), which Qwen2-VL's text side matches: one upstream module
(`modeling_qwen2_vl.py`) holds the vision tower and the text decoder; the text attention is Qwen2's
(biased q/k/v, no q/k norm, rope over the whole head with the 3-D mrope sections folded into cos/sin),
its forward takes `position_ids` before `cache` (`ULYSSES_ATTENTION_WITH_POSITION_IDS`); under sequence
parallelism the batch arrives whole and the text model keeps this rank's slice after the images are merged
(`ULYSSES_WHOLE_SEQUENCE_TEXT_MODEL`, `shard_multimodal_batch`). Where Qwen2-VL differs from Qwen2.5-VL:

- its conditional-generation forward has no `second_per_grid_ts` (the fused-loss set takes Qwen2-VL's
  arguments: `multimodal_loss_set(..., vision_language_forward)`, in the variants);
- its vision blocks are pre-LayerNorm (`nn.LayerNorm`, with a bias) with a fc1/GELU/fc2 MLP (`VisionMlp`,
  `quick_gelu`), not RMSNorm and a gated SiLU MLP: no shared set fits them (the RMSNorm and SwiGLU sets
  refuse them), so they stay upstream's, as does the vision attention (full attention per image over
  `cu_seqlens`, HF's attention interface); under SP each rank runs the vision tower on all the batch's images;
- the text decoder's MLP (`Qwen2MLP`, a bias-free SwiGLU as in Qwen2.5-VL) stays upstream's: the SwiGLU sets
  require `hidden_act` in ("silu", "swish") and the generator, which cannot tell from `Qwen2MLP.__init__(self,
  config)` (no annotation) which sub-config builds it, checks every one: `Qwen2VLConfig().vision_config` defaults
  `hidden_act="quick_gelu"`, so `TORCH_SWIGLU_MLP` / `LIGER_SWIGLU_MLP` are refused here (a finding for the
  generator's config-default check, not a property of the model: Qwen2.5-VL's vision config defaults "silu").
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
    source_module="transformers.models.qwen2_vl.modeling_qwen2_vl",
    description="Qwen2-VL (vision tower and text decoder), conditional-generation training",
)
config.use(
    ULYSSES_ATTENTION_WITH_POSITION_IDS,
    attention="Qwen2VLAttention",
    bind={
        "project_qkv": separate_qkv_projection,
        "qk_norm": no_qk_norm,
        "rotary": full_rotary,
        "project_output": output_projection,
    },
)
config.use(
    ULYSSES_WHOLE_SEQUENCE_TEXT_MODEL,
    "Qwen2VLTextModel",
    bind={"documents_as_upstream_reads_them": documents_of_four_row_positions},
)
config.add_code(
    after="Qwen2VLForConditionalGeneration",
    description="the batch one rank passes to the model under sequence parallelism (whole sequence, its labels' share)",
)(shard_multimodal_batch)
