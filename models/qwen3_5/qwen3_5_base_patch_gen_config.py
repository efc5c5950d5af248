"""Qwen3.5 (hybrid linear attention, vision-language): what every generated Qwen3.5 file shares. A base: _cpu and _gpu
extend it.

Not generated on its own (`PatchConfig.base`). One upstream module (`modeling_qwen3_5.py`) holds the vision tower,
the text decoder and two heads: `Qwen3_5ForConditionalGeneration` (images and text, the released checkpoints) and
`Qwen3_5ForCausalLM` (the text decoder alone). The text decoder is Qwen3-Next's layout with a dense MLP: it
interleaves two token mixers (`config.layer_types`), and both get Ulysses sequence parallelism:

- `full_attention` layers (`Qwen3_5Attention`): Qwen3-Next's gated softmax attention (`q_proj` holds a query and an
  output gate per head, per-head (1 + w) q/k norms, partial rope: `partial_rotary_factor` 0.25 by default, over the
  leading channels), with the 3-D multimodal rope sections interleaved into cos/sin by the rotary embedding module:
  the shared Ulysses forward (`ULYSSES_ATTENTION`) with the gated projection and output steps and partial rope;
- `linear_attention` layers (`Qwen3_5GatedDeltaNet`): `ULYSSES_GATED_DELTA_NET`, applied by each variant (each binds
  its own delta-rule kernel) with Qwen3.5's projection step (`separate_qkv_z_b_a_projection`: separate
  `in_proj_qkv` / `in_proj_z` / `in_proj_b` / `in_proj_a`, where Qwen3-Next fuses them per key head).

As for Qwen2.5-VL, under sequence parallelism the batch arrives whole (`shard_multimodal_batch`) and the text model
keeps this rank's slice after the images are merged and the 3-D positions computed
(`ULYSSES_WHOLE_SEQUENCE_TEXT_MODEL`);
a text-only batch sharded the text families' way passes through unchanged.

The composite model (`Qwen3_5Model`) builds the vision tower and text model with `AutoModel.from_config`, which picks
transformers' own classes: `OWN_SUBMODELS` builds the file's instead, or nothing above would run. Upstream's text model
reads packed documents from `[batch, seq]` positions too (its text row), so the SP text model binds
`documents_of_text_positions`.

Kept upstream, each with its reason:

- the gated RMSNorm of the delta-net (`Qwen3_5RMSNormGated`): fla's `FusedRMSNormGated` rounds differently in bf16
  (it does not cast back between the norm and the gate), as for Qwen3-Next; no shared set has an exact kernel;
- the short convolution (`causal_conv1d_*`): upstream's depthwise torch conv1d; the causal-conv1d CUDA package must
  be built, and under SP the set calls the file's `causal_conv1d_fn` on this rank's channels;
- the vision tower: its blocks are pre-LayerNorm (`nn.LayerNorm`, with a bias) with a fc1/GELU/fc2 MLP
  (`Qwen3_5VisionMLP`, `gelu_pytorch_tanh`), the merger a LayerNorm/GELU MLP: no shared set fits them (the RMSNorm and
  SwiGLU sets refuse them); the vision attention (full attention per image over `cu_seqlens`, HF's attention interface)
  too. Under SP each rank runs the vision tower on all the batch's images. Its rope is patched in the variants;
- the text decoder's dense MLP (`Qwen3_5MLP`, a bias-free SwiGLU): the SwiGLU sets require `hidden_act` in
  ("silu", "swish") and the generator checks every sub-config's default: `Qwen3_5Config().vision_config` defaults
  `hidden_act="gelu_pytorch_tanh"`, so `TORCH_SWIGLU_MLP` / `LIGER_SWIGLU_MLP` are refused (as for Qwen2-VL: a finding
  for the generator's config-default check, not a property of the model);
- the rotary embedding modules (the interleaved 3-D sections are computed once per forward, not per layer);
- the heads not used for causal-LM training (below).
"""

from patchgen import PatchConfig
from patchgen.sets.attention.ulysses_attention import (
    gated_output_projection,
    gated_query_projection,
    partial_rotary,
    per_head_qk_norm,
)
from patchgen.sets.attention.ulysses_multimodal import (
    ULYSSES_WHOLE_SEQUENCE_TEXT_MODEL,
    documents_of_text_positions,
    shard_multimodal_batch,
)
from patchgen.sets.composite.own_submodels import OWN_SUBMODELS
from patchgen.sets.training_sets import ULYSSES_ATTENTION


config = PatchConfig.base(
    source_module="transformers.models.qwen3_5.modeling_qwen3_5",
    description="Qwen3.5 (vision tower and hybrid text decoder), conditional-generation and causal-LM training",
)
config.exclude_from_output(
    "Qwen3_5ForTokenClassification",
    "Qwen3_5TextForSequenceClassification",
    "Qwen3_5ForSequenceClassification",
    reason="heads not used for causal-LM training",
)
# transformers 5.25 builds the parts with AutoModel.from_config (its own classes): build the file's instead
config.use(OWN_SUBMODELS, "Qwen3_5Model")
config.use(
    ULYSSES_ATTENTION,
    attention="Qwen3_5Attention",
    bind={
        "project_qkv": gated_query_projection,
        "qk_norm": per_head_qk_norm,
        "rotary": partial_rotary,
        "project_output": gated_output_projection,
    },
)
config.use(
    ULYSSES_WHOLE_SEQUENCE_TEXT_MODEL,
    "Qwen3_5TextModel",
    bind={"documents_as_upstream_reads_them": documents_of_text_positions},
)
config.add_code(
    after="Qwen3_5ForConditionalGeneration",
    description="the batch one rank passes to the model under sequence parallelism (whole sequence, its labels' share)",
)(shard_multimodal_batch)
