"""Qwen3.5-MoE (hybrid linear attention, routed experts, vision-language): what every generated Qwen3.5-MoE file
shares. A base: _cpu and _gpu extend it.

Not generated on its own (`PatchConfig.base`). Qwen3.5's layout (`models/qwen3_5/`) with Qwen3-Next's sparse MoE block
(routed experts, a gated shared expert) in every layer. One upstream module (`modeling_qwen3_5_moe.py`) holds the
vision tower, the text decoder and two heads: `Qwen3_5MoeForConditionalGeneration` (images and text, the released
checkpoints) and `Qwen3_5MoeForCausalLM` (the text decoder alone). Both token mixers get Ulysses sequence parallelism:

- `full_attention` layers (`Qwen3_5MoeAttention`): the shared Ulysses forward (`ULYSSES_ATTENTION`) with Qwen3-Next's
  gated projection and output steps, per-head q/k norm and partial rope (the interleaved 3-D sections are in cos/sin);
- `linear_attention` layers (`Qwen3_5MoeGatedDeltaNet`): `ULYSSES_GATED_DELTA_NET` with Qwen3.5's projection step
  (`separate_qkv_z_b_a_projection`), applied by each variant (each binds its own delta-rule kernel).

Under sequence parallelism the batch arrives whole (`shard_multimodal_batch`) and the text model keeps this rank's
slice after the images are merged (`ULYSSES_WHOLE_SEQUENCE_TEXT_MODEL`, packed documents read as Qwen3.5 reads them), as
for Qwen3.5 and Qwen2.5-VL. As for Qwen3.5, `OWN_SUBMODELS` builds the file's vision tower and text model (upstream's
`AutoModel.from_config` builds transformers' own). The routed
experts keep upstream's class and its experts dispatch (`@use_experts_implementation`); the variants only make the
fused kernel the default implementation. Stock checkpoints load: `NATIVE_MODEL_CODE` (applied by the generator) makes
transformers fuse per-expert weights for the generated classes as for its own.

Kept upstream, each with its reason:

- both heads' forwards and loss: they add the router load-balancing loss (`output_router_logits`,
  `router_aux_loss_coef`), which the shared fused-loss forwards do not compute (as Qwen3-MoE and Qwen3-Next);
- the router (`Qwen3_5MoeTopKRouter`: softmax, top-k, renormalised; its logits feed the aux loss) and the shared
  expert's sigmoid gate: no kernel set for them;
- the shared expert's MLP (`Qwen3_5MoeMLP`, a bias-free SwiGLU): the SwiGLU sets require `hidden_act` in ("silu",
  "swish") and the generator checks every sub-config's default: `Qwen3_5MoeConfig().vision_config` defaults
  `hidden_act="gelu_pytorch_tanh"`, so they are refused (as for Qwen3.5 and Qwen2-VL);
- the delta-net's gated RMSNorm (fla's `FusedRMSNormGated` rounds differently in bf16) and short convolution
  (upstream's depthwise torch conv1d; the causal-conv1d CUDA package must be built), as for Qwen3-Next;
- the vision tower's LayerNorm blocks, GELU MLPs and attention (no shared set fits them; its rope is patched in the
  variants) and the rotary embedding modules (computed once per forward).
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
    source_module="transformers.models.qwen3_5_moe.modeling_qwen3_5_moe",
    description="Qwen3.5-MoE (vision tower and hybrid MoE text decoder), conditional-generation and causal-LM training",
)
# transformers 5.25 builds the parts with AutoModel.from_config (its own classes): build the file's instead
config.use(OWN_SUBMODELS, "Qwen3_5MoeModel")
config.use(
    ULYSSES_ATTENTION,
    attention="Qwen3_5MoeAttention",
    bind={
        "project_qkv": gated_query_projection,
        "qk_norm": per_head_qk_norm,
        "rotary": partial_rotary,
        "project_output": gated_output_projection,
    },
)
config.use(
    ULYSSES_WHOLE_SEQUENCE_TEXT_MODEL,
    "Qwen3_5MoeTextModel",
    bind={"documents_as_upstream_reads_them": documents_of_text_positions},
)
config.add_code(
    after="Qwen3_5MoeForConditionalGeneration",
    description="the batch one rank passes to the model under sequence parallelism (whole sequence, its labels' share)",
)(shard_multimodal_batch)
