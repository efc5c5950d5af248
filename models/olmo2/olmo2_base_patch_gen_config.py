"""OLMo-2: what every generated OLMo-2 file shares. A base: the _cpu and _gpu variants extend it.

Not generated on its own (`PatchConfig.base`). OLMo-2 differs from Llama where the shared patches
must know it:

- its q/k norms normalise the whole projection (`q_norm` of width heads * head_dim) before the view
  into heads, so the Ulysses forward takes the `full_projection_qk_norm` step (under sequence
  parallelism it runs before the all-to-all, where each rank still holds all heads of its tokens);
- its layers are post-norm (`residual + post_attention_layernorm(attn_out)`), so a fused RMSNorm must
  compute its backward out of place (the _gpu variant's `LIGER_RMS_NORM_OUT_OF_PLACE`).
"""

from patchgen import PatchConfig
from patchgen.sets.attention.ulysses_attention import (
    full_projection_qk_norm,
    full_rotary,
    output_projection,
    separate_qkv_projection,
)
from patchgen.sets.training_sets import ULYSSES_ATTENTION


config = PatchConfig.base(
    source_module="transformers.models.olmo2.modeling_olmo2",
    description="OLMo-2, causal-LM training heads only",
)
config.exclude_from_output("Olmo2ForSequenceClassification", reason="head not used for causal-LM training")
config.use(
    ULYSSES_ATTENTION,
    attention="Olmo2Attention",
    bind={
        "project_qkv": separate_qkv_projection,
        "qk_norm": full_projection_qk_norm,
        "rotary": full_rotary,
        "project_output": output_projection,
    },
)
