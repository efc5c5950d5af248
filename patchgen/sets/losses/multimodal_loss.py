"""The fused-loss forward of a vision-language model (`...ForConditionalGeneration.forward`), and its sets.

The text families' forward (`patchgen/sets/losses/fused_loss.py`, `linear_cross_entropy_forward`) does not fit
Qwen2.5-VL's conditional-generation class as it is, for three reasons:

- it reads `self.config.vocab_size`, which a vision-language config does not define (its text config
  does: `config.text_config.vocab_size`), so upstream's-loss path (few logits) would fail;
- it returns `CausalLMOutputWithPast`, while upstream returns `MultimodalCausalLMOutputWithPast` with the
  vision encoders' outputs, and takes the vision inputs and `mm_encoder_outputs` by name;
- under sequence parallelism it requires `position_ids`, while a multimodal batch arrives whole with
  none: the model computes the 3-D rope positions from the images (`patchgen/sets/attention/ulysses_multimodal.py`).

So this forward keeps upstream's signature and output (vision inputs named, as upstream names them)
and shares with the text families everything below the decoder: the loss is chosen per call by size
with the same rule (`use_fused_linear_cross_entropy`), the same bound `linear_cross_entropy` kernel
(each set below imports the kernel its text twin imports: chunked torch, Liger's, or the plain-torch
twin), the same `shift_labels` / `num_items_in_batch` contract as `patchgen.runtime.shard_batch`, and
`logits=None` with labels while training, no loss without `labels` (as upstream). Both forwards call one
`fused_loss.loss_and_logits`, with the vocabulary size passed in.
"""

import torch
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutputWithPooling, MultimodalCausalLMOutputWithPast
from transformers.modeling_utils import slice_logits_to_keep
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs

from patchgen.dsl.patch_sets import PatchSet
from patchgen.sets.attention.ulysses_multimodal import check_loss_inputs
from patchgen.sets.losses.fused_loss import loss_and_logits
from patchgen.sets.training_sets import (
    CHUNKED_LINEAR_CROSS_ENTROPY,
    FASTEST_LINEAR_CROSS_ENTROPY,
    LIGER_FUSED_LINEAR_CROSS_ENTROPY,
    TORCH_LINEAR_CROSS_ENTROPY,
)


# The output class of the forward: a placeholder step, bound per model where upstream returns another class
# (`bind={"multimodal_output": ...}`); its default is the class Qwen2-VL, Qwen2.5-VL and Qwen3-VL return.
multimodal_output = MultimodalCausalLMOutputWithPast


def multimodal_loss_forward(
    self,
    model_inputs: dict,
    labels: torch.LongTensor | None,
    logits_to_keep: int | torch.Tensor,
    kwargs: dict,
) -> MultimodalCausalLMOutputWithPast:
    """The body every vision-language forward below shares: `model_inputs` are the forward's own arguments for
    `self.model` (token and vision inputs, by the names upstream's forward passes them), `kwargs` its `**kwargs`."""
    shift_labels = kwargs.pop("shift_labels", None)
    # sequence parallelism: each rank's loss is its share of the whole batch's token mean
    check_loss_inputs(kwargs.get("num_items_in_batch"), labels is not None)
    outputs = self.model(**model_inputs, **kwargs)

    hidden_states = outputs.last_hidden_state
    # Only compute necessary positions (logits or loss), as upstream does for the logits
    hidden_states = slice_logits_to_keep(hidden_states, logits_to_keep)

    vocab_size = self.config.text_config.vocab_size  # a vision-language config's vocabulary is its text config's
    loss, logits = loss_and_logits(self, hidden_states, labels, shift_labels, vocab_size, kwargs)

    # every other field of the model's output passes on as upstream passes it (cache, hidden states, attentions,
    # the vision encoders' outputs)
    return multimodal_output(
        loss=loss,
        logits=logits,
        **{name: value for name, value in outputs.items() if name != "last_hidden_state"},
    )


# The forwards: one per upstream signature (the generator keeps upstream's positional parameters, names and order),
# each only naming its arguments for the shared body above.


def multimodal_linear_cross_entropy_forward(
    self,
    input_ids: torch.LongTensor | None = None,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.LongTensor | None = None,
    cache: Cache | None = None,
    inputs_embeds: torch.Tensor | None = None,
    labels: torch.LongTensor | None = None,
    use_cache: bool | None = None,
    pixel_values: torch.Tensor | None = None,
    pixel_values_videos: torch.Tensor | None = None,
    image_grid_thw: torch.LongTensor | None = None,
    video_grid_thw: torch.LongTensor | None = None,
    mm_token_type_ids: torch.IntTensor | None = None,
    second_per_grid_ts: torch.Tensor | None = None,
    logits_to_keep: int | torch.Tensor = 0,
    mm_encoder_outputs: dict[str, BaseModelOutputWithPooling] | None = None,
    **kwargs: Unpack[TransformersKwargs],
) -> MultimodalCausalLMOutputWithPast:
    r"""
    second_per_grid_ts (`torch.Tensor` of shape `(num_videos)`, *optional*):
        The time interval (in seconds) for each grid along the temporal dimension in the 3D position IDs.
    labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
        Labels for computing the masked language modeling loss. Indices should either be in `[0, ...,
        config.text_config.vocab_size]` or -100. Tokens with indices set to `-100` are ignored (masked). With labels
        while training (shifted inside, or used as given in `shift_labels`), the output's `logits` is `None` and the
        loss is, for many logits, `linear_cross_entropy` of the last hidden states and the `lm_head` weight (a fused
        kernel in GPU files: the logits are never materialised), else upstream's loss. In evaluation both are
        returned, as upstream computes them.
    """
    # Qwen2.5-VL's arguments (video frames' `second_per_grid_ts`)
    model_inputs = dict(
        input_ids=input_ids,
        pixel_values=pixel_values,
        pixel_values_videos=pixel_values_videos,
        image_grid_thw=image_grid_thw,
        video_grid_thw=video_grid_thw,
        second_per_grid_ts=second_per_grid_ts,
        mm_token_type_ids=mm_token_type_ids,
        position_ids=position_ids,
        attention_mask=attention_mask,
        cache=cache,
        inputs_embeds=inputs_embeds,
        use_cache=use_cache,
        mm_encoder_outputs=mm_encoder_outputs,
    )
    return multimodal_loss_forward(self, model_inputs, labels, logits_to_keep, kwargs)


def vision_language_forward(
    self,
    input_ids: torch.LongTensor | None = None,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.LongTensor | None = None,
    cache: Cache | None = None,
    inputs_embeds: torch.Tensor | None = None,
    labels: torch.LongTensor | None = None,
    use_cache: bool | None = None,
    pixel_values: torch.Tensor | None = None,
    pixel_values_videos: torch.Tensor | None = None,
    image_grid_thw: torch.LongTensor | None = None,
    video_grid_thw: torch.LongTensor | None = None,
    mm_token_type_ids: torch.IntTensor | None = None,
    logits_to_keep: int | torch.Tensor = 0,
    mm_encoder_outputs: dict[str, BaseModelOutputWithPooling] | None = None,
    **kwargs: Unpack[TransformersKwargs],
) -> MultimodalCausalLMOutputWithPast:
    r"""
    labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
        Labels for computing the masked language modeling loss. Indices should either be in `[0, ...,
        config.text_config.vocab_size]` or -100. Tokens with indices set to `-100` are ignored (masked). With labels
        while training (shifted inside, or used as given in `shift_labels`), the output's `logits` is `None` and the
        loss is, for many logits, `linear_cross_entropy` of the last hidden states and the `lm_head` weight (a fused
        kernel in GPU files: the logits are never materialised), else upstream's loss. In evaluation both are
        returned, as upstream computes them.
    """
    # Qwen2-VL's arguments (no `second_per_grid_ts`: its video positions do not scale with frame time)
    model_inputs = dict(
        input_ids=input_ids,
        pixel_values=pixel_values,
        pixel_values_videos=pixel_values_videos,
        image_grid_thw=image_grid_thw,
        video_grid_thw=video_grid_thw,
        mm_token_type_ids=mm_token_type_ids,
        position_ids=position_ids,
        attention_mask=attention_mask,
        cache=cache,
        inputs_embeds=inputs_embeds,
        use_cache=use_cache,
        mm_encoder_outputs=mm_encoder_outputs,
    )
    return multimodal_loss_forward(self, model_inputs, labels, logits_to_keep, kwargs)


def vision_language_forward_without_use_cache(
    self,
    input_ids: torch.LongTensor | None = None,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.LongTensor | None = None,
    cache: Cache | None = None,
    inputs_embeds: torch.Tensor | None = None,
    labels: torch.LongTensor | None = None,
    pixel_values: torch.Tensor | None = None,
    pixel_values_videos: torch.Tensor | None = None,
    image_grid_thw: torch.LongTensor | None = None,
    video_grid_thw: torch.LongTensor | None = None,
    mm_token_type_ids: torch.IntTensor | None = None,
    logits_to_keep: int | torch.Tensor = 0,
    mm_encoder_outputs: dict[str, BaseModelOutputWithPooling] | None = None,
    **kwargs: Unpack[TransformersKwargs],
) -> MultimodalCausalLMOutputWithPast:
    r"""
    labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
        Labels for computing the masked language modeling loss. Indices should either be in `[0, ...,
        config.text_config.vocab_size]` or -100. Tokens with indices set to `-100` are ignored (masked). With labels
        while training (shifted inside, or used as given in `shift_labels`), the output's `logits` is `None` and the
        loss is, for many logits, `linear_cross_entropy` of the last hidden states and the `lm_head` weight (a fused
        kernel in GPU files: the logits are never materialised), else upstream's loss. In evaluation both are
        returned, as upstream computes them.
    """
    # Qwen3-VL's and Qwen3.5's arguments (`use_cache` passes on in **kwargs, as upstream's)
    model_inputs = dict(
        input_ids=input_ids,
        pixel_values=pixel_values,
        pixel_values_videos=pixel_values_videos,
        image_grid_thw=image_grid_thw,
        video_grid_thw=video_grid_thw,
        mm_token_type_ids=mm_token_type_ids,
        position_ids=position_ids,
        attention_mask=attention_mask,
        cache=cache,
        inputs_embeds=inputs_embeds,
        mm_encoder_outputs=mm_encoder_outputs,
    )
    return multimodal_loss_forward(self, model_inputs, labels, logits_to_keep, kwargs)


def multimodal_loss_set(text_set: PatchSet, forward=multimodal_linear_cross_entropy_forward) -> PatchSet:
    """The multimodal forward as a set, with `linear_cross_entropy` bound to the kernel `text_set` imports.

    `forward` names the model's arguments, in upstream's order (`multimodal_linear_cross_entropy_forward`:
    Qwen2.5-VL's; `vision_language_forward`: Qwen2-VL's, no `second_per_grid_ts`;
    `vision_language_forward_without_use_cache`: Qwen3-VL's); every one calls the same body,
    `multimodal_loss_forward`. The output class is the `multimodal_output` step (`MultimodalCausalLMOutputWithPast`
    unless a config binds another).
    """
    suffix = "" if forward is multimodal_linear_cross_entropy_forward else f"_{forward.__name__}"
    patch_set = PatchSet(f"multimodal_{text_set.name}{suffix}", f"{text_set.description}, for a vision-language model")
    patch_set.override_method(
        "conditional_generation.forward",
        description=(
            "with labels, the loss of the text families' fused-loss forward (kernel for many logits, upstream's "
            "loss for few, logits=None while training); upstream's signature and output kept"
        ),
    )(forward)
    patch_set.extra_imports.extend(text_set.extra_imports)  # the same kernel under the same name
    # the text set's logits rule: `lm_head(hidden)`, no final soft-capping
    patch_set.requires_config(
        "conditional_generation",
        final_logit_softcapping=None,
        otherwise="upstream's forward (and loss) for soft-capped logits",
    )
    return patch_set


# Qwen2.5-VL's forward; other signatures: `multimodal_loss_set(TORCH_LINEAR_CROSS_ENTROPY, vision_language_forward)`
MULTIMODAL_FASTEST_LINEAR_CROSS_ENTROPY = multimodal_loss_set(FASTEST_LINEAR_CROSS_ENTROPY)
MULTIMODAL_CHUNKED_LINEAR_CROSS_ENTROPY = multimodal_loss_set(CHUNKED_LINEAR_CROSS_ENTROPY)
MULTIMODAL_LIGER_FUSED_LINEAR_CROSS_ENTROPY = multimodal_loss_set(LIGER_FUSED_LINEAR_CROSS_ENTROPY)
MULTIMODAL_TORCH_LINEAR_CROSS_ENTROPY = multimodal_loss_set(TORCH_LINEAR_CROSS_ENTROPY)
