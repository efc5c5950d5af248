"""Ulysses sequence parallelism for a vision-language model: the sequence is sharded after the images are merged.

A text family shards its batch before the model (`patchgen.runtime.shard_batch`): each rank embeds
its `seq/P` tokens. A vision-language model cannot: the vision tower's features replace the
embeddings of the image placeholder tokens wherever they sit in the sequence (`masked_scatter`, which
needs every placeholder), and the 3-D multimodal rope positions (temporal, height, width) of a token
depend on the images and text before it (`get_rope_index` walks the whole row). So under SP every
rank gets the *whole* sequence (`shard_multimodal_batch`), embeds it, merges the image features and
computes the 3-D positions for all of it, exactly as one process does, and only then, where the text
decoder starts, keeps its own `seq/P` slice of the merged embeddings, of the positions (every rope
row: `[3 or 4, batch, seq]`) and of the padding mask (`whole_sequence_text_forward`). From there on
the decoder runs as in a text family: the shared Ulysses attention gathers the sequence per head and
masks it from `full_sequence`, and each rank's loss is its share of the token mean (`shift_labels`).

Every rank runs the vision tower on all the batch's images (it is small next to the decoder); the
gradient of its parameters on one rank comes from that rank's tokens only, so summing parameter
gradients over the SP group (as for every other parameter) gives the whole batch's gradient.

A text-only batch may also come sharded the text families' way (`shard_batch`: this rank's tokens and
their global positions): the text model tells the two apart by length (`seq` or `seq/P`).
"""

from collections.abc import Mapping

import torch
from transformers.cache_utils import Cache
from transformers.modeling_flash_attention_utils import FlashAttentionKwargs
from transformers.modeling_outputs import BaseModelOutputWithPast
from transformers.processing_utils import Unpack

from patchgen.dsl.patch_sets import PatchSet
from patchgen.runtime.sequence_batch import FullSequence, SequenceShard, shard_batch
from patchgen.runtime.sequence_parallel import (
    check_sequence_parallel_inputs,
    sequence_parallel_rank,
    sequence_parallel_world_size,
)
from patchgen.sets.attention import ulysses_attention


def shard_multimodal_batch(batch: Mapping[str, torch.Tensor]) -> SequenceShard:
    """What one rank passes to the vision-language model under sequence parallelism: `model(**shard)`.

    Every rank of the SP group passes the same full batch: `input_ids` with the image placeholder tokens,
    optionally `labels`, `attention_mask` (padding), `position_ids` (packed documents: upstream's `[4, batch, seq]`,
    text positions restarting per document then the 3 rope rows; with `[batch, seq]` positions attention crosses
    documents, as upstream's does, and only the labels stop at them) and the vision inputs
    (`pixel_values`, `image_grid_thw`, `mm_token_type_ids`, ...). The shard keeps the sequence tensors
    whole (the model merges the images and computes the 3-D positions first, then keeps this rank's
    slice) and adds what `shard_batch` settles on the whole batch: `shift_labels` for this rank's
    tokens, `num_items_in_batch` and `full_sequence` (documents and padding of the whole sequence).
    """
    position_ids = batch.get("position_ids")
    # the positions that say where packed documents start: the text row of upstream's packed 4-row layout
    text_positions = position_ids[0] if position_ids is not None and position_ids.dim() == 3 else position_ids
    if position_ids is not None and position_ids.dim() == 3 and position_ids.shape[0] != 4:
        text_positions = None  # 3 rope rows alone: upstream builds no packed mask from them either
    text_batch = {key: batch[key] for key in ("input_ids", "labels", "attention_mask") if key in batch}
    if text_positions is not None:
        text_batch["position_ids"] = text_positions
    shard = shard_batch(text_batch)
    # whole-sequence inputs: the model slices them after the images are merged
    shard["input_ids"] = batch["input_ids"]
    if "attention_mask" in shard:  # shard_batch drops a mask without padding; keep that choice
        shard["attention_mask"] = batch["attention_mask"]
    del shard["position_ids"]
    shard.update({key: value for key, value in batch.items() if key not in ("input_ids", "labels", "attention_mask")})
    return shard


def whole_sequence_text_forward(
    self,
    input_ids: torch.LongTensor | None = None,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.LongTensor | None = None,
    cache: Cache | None = None,
    inputs_embeds: torch.Tensor | None = None,
    use_cache: bool | None = None,
    **kwargs: Unpack[FlashAttentionKwargs],
) -> BaseModelOutputWithPast:
    # Sequence parallelism: the whole sequence arrives here (images merged, 3-D positions computed over all of it);
    # this rank keeps its seq/P tokens of every sequence tensor. Without SP, or given a shard, nothing changes.
    input_ids, attention_mask, position_ids, inputs_embeds = this_ranks_tokens(
        input_ids, attention_mask, position_ids, inputs_embeds, kwargs
    )
    if kwargs.get("full_sequence") is not None:  # the whole batch's documents, as upstream reads them from positions
        kwargs["full_sequence"] = documents_as_upstream_reads_them(kwargs["full_sequence"], position_ids)
    return self.upstream_forward(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        cache=cache,
        inputs_embeds=inputs_embeds,
        use_cache=use_cache,
        **kwargs,
    )


def this_ranks_tokens(
    input_ids: torch.LongTensor | None,
    attention_mask: torch.Tensor | None,
    position_ids: torch.LongTensor | None,
    inputs_embeds: torch.Tensor | None,
    kwargs: dict,
) -> tuple[torch.LongTensor | None, torch.Tensor | None, torch.LongTensor | None, torch.Tensor | None]:
    """This rank's slice of the text model's sequence inputs.

    The inputs pass unchanged without SP (no `full_sequence` in `kwargs`); a shard of the sequence (a text-only batch
    sharded by `shard_batch`) keeps its tokens and must carry their global positions.
    """
    full_sequence = kwargs.get("full_sequence")
    tokens = inputs_embeds if inputs_embeds is not None else input_ids
    if full_sequence is not None and tokens is not None:
        whole = whole_sequence_length(full_sequence, tokens.shape[1])
        if whole:
            if position_ids is None:  # upstream's default, for the whole sequence (no cache under SP)
                position_ids = torch.arange(whole, device=tokens.device).view(1, 1, -1).expand(3, tokens.shape[0], -1)
            local = local_tokens(whole)
            input_ids = None if input_ids is None else input_ids[:, local]
            inputs_embeds = None if inputs_embeds is None else inputs_embeds[:, local]
            attention_mask = None if attention_mask is None else attention_mask[:, local]
            position_ids = position_ids[..., local]  # [batch, seq] or [3 or 4 rope rows, batch, seq]
        else:
            # a shard of the sequence: its rope needs the global positions of its tokens
            check_sequence_parallel_inputs(position_ids, None, computes_loss=False)
    return input_ids, attention_mask, position_ids, inputs_embeds


def whole_sequence_deepstack_text_forward(
    self,
    input_ids: torch.LongTensor | None = None,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.LongTensor | None = None,
    cache: Cache | None = None,
    inputs_embeds: torch.Tensor | None = None,
    use_cache: bool | None = None,
    visual_pos_masks: torch.Tensor | None = None,
    deepstack_visual_embeds: list[torch.Tensor] | None = None,
    **kwargs: Unpack[FlashAttentionKwargs],
) -> BaseModelOutputWithPast:
    # Qwen3-VL's DeepStack: the vision tower's intermediate features are added to the visual tokens' hidden states
    # after the first decoder layers (`visual_pos_masks` `[batch, seq]`, one feature row per visual token of the whole
    # batch in (batch, seq) order). Under sequence parallelism this rank keeps its tokens' mask and their rows, then
    # the sequence tensors are sliced as for every vision-language text model.
    if position_ids is not None and position_ids.ndim == 2:
        # upstream's first step: `[batch, seq]` positions are its packed layout's text row too (packed documents kept
        # apart, unlike Qwen2-VL's and Qwen2.5-VL's), so the gathered sequence's documents are read from them
        position_ids = position_ids[None, ...].expand(4, position_ids.shape[0], -1)
    full_sequence = kwargs.get("full_sequence")
    tokens = inputs_embeds if inputs_embeds is not None else input_ids
    if full_sequence is not None and tokens is not None and visual_pos_masks is not None:
        whole = whole_sequence_length(full_sequence, tokens.shape[1])
        if whole:
            local = local_tokens(whole)
            this_rank = torch.zeros_like(visual_pos_masks)
            this_rank[:, local] = True
            kept = this_rank[visual_pos_masks]  # per visual token of the whole batch: in this rank's slice
            if deepstack_visual_embeds is not None:
                deepstack_visual_embeds = [embeds[kept.to(embeds.device)] for embeds in deepstack_visual_embeds]
            visual_pos_masks = visual_pos_masks[:, local]
    input_ids, attention_mask, position_ids, inputs_embeds = this_ranks_tokens(
        input_ids, attention_mask, position_ids, inputs_embeds, kwargs
    )
    if kwargs.get("full_sequence") is not None:  # the whole batch's documents, as upstream reads them from positions
        kwargs["full_sequence"] = documents_as_upstream_reads_them(kwargs["full_sequence"], position_ids)
    return self.upstream_forward(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        cache=cache,
        inputs_embeds=inputs_embeds,
        use_cache=use_cache,
        visual_pos_masks=visual_pos_masks,
        deepstack_visual_embeds=deepstack_visual_embeds,
        **kwargs,
    )


def whole_sequence_length(full_sequence, length: int) -> int:
    """The sequence length when `length` tokens are the whole sequence, 0 when they are this rank's shard."""
    whole = full_sequence.position_ids.shape[-1]
    world_size = sequence_parallel_world_size()
    if length == whole:
        return whole
    if length * world_size == whole:
        return 0
    raise ValueError(
        f"sequence parallelism: the model got {length} tokens, neither the whole sequence ({whole}) nor one of "
        f"{world_size} shards of it; pass the batch that shard_multimodal_batch returns"
    )


def documents_of_four_row_positions(full_sequence: FullSequence, position_ids: torch.Tensor | None) -> FullSequence:
    """The whole batch's layout for the attention after the all-to-all, read as Qwen2-VL and Qwen2.5-VL read positions.

    Upstream keeps packed documents apart only when given its packed layout, `[4, batch, seq]` positions whose
    first row restarts per document (`Qwen2_5_VLTextModel.forward`: "text_position_ids"); with `[batch, seq]` or 3
    rope rows its attention crosses documents (no mask from positions, none to flash attention). So do the gathered
    sequence's: with any other layout its documents are dropped, its padding kept.
    """
    if position_ids is not None and position_ids.dim() == 3 and position_ids.shape[0] == 4:
        return full_sequence
    return without_documents(full_sequence)


def documents_of_text_positions(full_sequence: FullSequence, position_ids: torch.Tensor | None) -> FullSequence:
    """The same, read as Qwen3-VL and Qwen3.5 read positions: `[batch, seq]` positions count as the text row too.

    Their text model expands `[batch, seq]` positions to the 4-row layout, the text row first
    (`Qwen3_5TextModel.forward`: `position_ids[None, ...].expand(4, ...)`), so packed documents are kept apart for
    `[batch, seq]` and `[4, batch, seq]` positions alike; only 3 rope rows alone cross documents.
    """
    if position_ids is not None and (position_ids.dim() == 2 or position_ids.shape[0] == 4):
        return full_sequence
    return without_documents(full_sequence)


def without_documents(full_sequence: FullSequence) -> FullSequence:
    """The whole batch's layout with its packed documents dropped (one document per row), its padding kept."""
    batch_size, length = full_sequence.position_ids.shape
    whole = torch.arange(length, device=full_sequence.position_ids.device).expand(batch_size, length)
    return FullSequence(whole, None, full_sequence.attention_mask)


# The slot the text model's forward calls, bound per family as upstream reads packed documents from positions:
#     config.use(ULYSSES_WHOLE_SEQUENCE_TEXT_MODEL, "Qwen3_5TextModel",
#                bind={"documents_as_upstream_reads_them": documents_of_text_positions})
documents_as_upstream_reads_them = documents_of_four_row_positions


def local_tokens(whole: int) -> slice:
    """This rank's `whole/P` consecutive tokens of a sequence of `whole` tokens."""
    world_size, rank = sequence_parallel_world_size(), sequence_parallel_rank()
    return slice(rank * whole // world_size, (rank + 1) * whole // world_size)


def check_loss_inputs(num_items_in_batch: torch.Tensor | int | None, computes_loss: bool) -> None:
    """Under sequence parallelism a loss share needs the whole batch's label count (`shard_multimodal_batch`)."""
    if sequence_parallel_world_size() > 1 and computes_loss and num_items_in_batch is None:
        raise ValueError(
            "sequence parallelism: pass num_items_in_batch, the non-ignored labels of the whole batch "
            "(shard_multimodal_batch returns it); a mean over this rank's tokens alone is not its share of the mean"
        )


# The text model's forward as a set (role `text_model`: e.g. Qwen2_5_VLTextModel). Upstream's forward is kept as
# `upstream_forward`, with its decorators (output capturing, config defaults); the override only slices and calls it.
ULYSSES_WHOLE_SEQUENCE_TEXT_MODEL = PatchSet(
    "ulysses_whole_sequence_text_model",
    "sequence parallelism for a vision-language model: the text model keeps this rank's slice of the merged sequence",
)
ULYSSES_WHOLE_SEQUENCE_TEXT_MODEL.override_method(
    "text_model.forward",
    description=(
        "under sequence parallelism, keep this rank's slice of the whole sequence (image features merged, 3-D rope "
        "positions computed over all of it), then run upstream's forward"
    ),
    keep_upstream_decorators=False,
    keep_original_as="upstream_forward",
)(whole_sequence_text_forward)


# The same for a text model that also takes DeepStack's visual features (Qwen3-VL): they are sliced with the sequence.
ULYSSES_WHOLE_SEQUENCE_DEEPSTACK_TEXT_MODEL = PatchSet(
    "ulysses_whole_sequence_deepstack_text_model",
    "sequence parallelism for a vision-language model with DeepStack: the text model keeps this rank's slice of the "
    "merged sequence and of the visual features added to it",
)
ULYSSES_WHOLE_SEQUENCE_DEEPSTACK_TEXT_MODEL.override_method(
    "text_model.forward",
    description=(
        "under sequence parallelism, keep this rank's slice of the whole sequence (image features merged, 3-D rope "
        "positions computed over all of it) and its visual tokens' DeepStack features, then run upstream's forward"
    ),
    keep_upstream_decorators=False,
    keep_original_as="upstream_forward",
)(whole_sequence_deepstack_text_forward)


def attention_forward_with_position_ids(
    self,
    hidden_states: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.LongTensor | None = None,
    cache: Cache | None = None,
    position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
    **kwargs: Unpack[FlashAttentionKwargs],
) -> tuple[torch.Tensor, torch.Tensor | None]:
    # Upstream's parameters, in upstream's order (position_ids second: flash attention finds packed documents in
    # them); the shared Ulysses forward takes them through **kwargs, as it hands them to the attention function.
    return self.ulysses_forward(
        hidden_states, position_embeddings, attention_mask, cache, position_ids=position_ids, **kwargs
    )


# The shared Ulysses attention (patchgen/sets/attention/ulysses_attention.py, steps bound per family as for ULYSSES_ATTENTION)
# for an attention whose forward takes `position_ids` before `cache` and `position_embeddings`, as
# Qwen2.5-VL's text attention does: the shared forward is added under its own name and `forward` keeps upstream's
# parameters, so a caller passing them by position still reaches the right ones.
ULYSSES_ATTENTION_WITH_POSITION_IDS = PatchSet(
    "ulysses_attention_with_position_ids",
    "Ulysses sequence parallelism around the attention call, behind upstream's (attention_mask, position_ids, ...) order",
)
ULYSSES_ATTENTION_WITH_POSITION_IDS.modify_init(
    "attention", description="fix the sequence-parallel head layout at construction"
)(ulysses_attention.ulysses_attention_init)
ULYSSES_ATTENTION_WITH_POSITION_IDS.add_method(
    "attention.ulysses_forward",
    description="the shared Ulysses forward: all-to-alls around the attention call (ulysses_attention.py)",
)(ulysses_attention.ulysses_attention_forward)
ULYSSES_ATTENTION_WITH_POSITION_IDS.override_method(
    "attention.forward", description="upstream's parameters, handed to the shared Ulysses forward"
)(attention_forward_with_position_ids)
