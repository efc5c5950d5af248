"""Gemma 3, text only: what every generated Gemma 3 file shares. A base: the _cpu and _gpu variants extend it.

Not generated on its own (`PatchConfig.base`). The upstream module also holds the multimodal model;
its classes go, except `Gemma3MultiModalProjector`, which `Gemma3PreTrainedModel._init_weights` names.
"""

from patchgen import PatchConfig
from patchgen.sets.attention.ulysses_attention import (
    full_rotary,
    output_projection,
    per_head_qk_norm,
    separate_qkv_projection,
)
from patchgen.sets.training_sets import ULYSSES_ATTENTION


config = PatchConfig.base(
    source_module="transformers.models.gemma3.modeling_gemma3",
    description="Gemma 3 text model (Gemma3ForCausalLM / Gemma3TextModel), multimodal classes removed",
)
config.exclude_from_output(
    "Gemma3ModelOutputWithPast",
    "Gemma3CausalLMOutputWithPast",
    "get_block_sequence_ids_for_mask",
    "create_masks_for_vision_model",
    "Gemma3Model",
    "Gemma3ForConditionalGeneration",
    "Gemma3ForSequenceClassification",
    reason="multimodal (vision) model: this file is the text model",
)
config.exclude_from_output("Gemma3TextForSequenceClassification", reason="head not used for causal-LM training")
config.use(
    ULYSSES_ATTENTION,
    attention="Gemma3Attention",
    bind={
        "project_qkv": separate_qkv_projection,
        "qk_norm": per_head_qk_norm,
        "rotary": full_rotary,
        "project_output": output_projection,
    },
)
