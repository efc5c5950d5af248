"""Phi-3 (and Phi-4-mini): what every generated Phi-3 file shares. A base: the _cpu and _gpu variants extend it.

Not generated on its own (`PatchConfig.base`). Phi-3 differs from Llama where the shared patches must
know it:

- one fused `qkv_proj` instead of q/k/v projections: the Ulysses forward takes the
  `fused_qkv_projection` step (state-dict keys stay `qkv_proj.*`; the fused projection runs on this
  rank's tokens before the all-to-all, as the separate ones do);
- `partial_rotary_factor` (Phi-4-mini: 0.75): cos/sin cover the leading channels of each head only,
  so the forward takes the `partial_rotary` step, which hands those channels to the file's rope
  function (a kernel that rotates whatever it is given) and passes the rest through;
- one fused `gate_up_proj` in the MLP: the variants bind SwiGLU sets that keep it.
"""

from patchgen import PatchConfig
from patchgen.sets.attention.ulysses_attention import (
    fused_qkv_projection,
    no_qk_norm,
    output_projection,
    partial_rotary,
)
from patchgen.sets.training_sets import ULYSSES_ATTENTION


config = PatchConfig.base(
    source_module="transformers.models.phi3.modeling_phi3",
    description="Phi-3, causal-LM training heads only",
)
config.exclude_from_output(
    "Phi3ForSequenceClassification",
    "Phi3ForTokenClassification",
    reason="heads not used for causal-LM training",
)
config.use(
    ULYSSES_ATTENTION,
    attention="Phi3Attention",
    bind={
        "project_qkv": fused_qkv_projection,
        "qk_norm": no_qk_norm,
        "rotary": partial_rotary,
        "project_output": output_projection,
    },
)
