"""Batches for Ulysses sequence parallelism: one rank's slice of a plain, packed or padded batch.

Every rank of the sequence-parallel (SP) group passes the same full batch to `shard_batch` and gets
its `seq/P` consecutive tokens back, ready for `model(**shard)`. Three kinds of batch:

- plain: one document per row; positions are `0..seq-1` unless the batch gives `position_ids`;
- packed: several documents per row, `position_ids` restarting at 0 (or jumping) where a document
  starts, no `attention_mask`. Attention must stay inside each document: transformers builds that
  block-diagonal causal mask from `position_ids` when a model gets no `attention_mask`;
- padded: an `attention_mask` with zeros (left or right padding); keys at padding are masked.

Two things about the whole sequence cannot be seen from one rank's slice, and `shard_batch` settles
them here, where every rank still holds the full batch:

1. **The loss.** Labels are shifted *before* slicing (the last token of a slice predicts the first
   token of the next slice). Nothing learns to predict the first token of a document from the
   previous document's last token, nor anything to or from padding (`shift_and_mask_labels`): this
   is where packed documents are kept apart in the loss, as `transformers.DataCollatorWithFlattening`
   labels them. `num_items_in_batch` counts the labels left, so each rank's loss is its share of the
   token mean of the whole batch.
2. **The attention mask after the all-to-all.** There each rank holds every token of heads/P heads,
   so it needs the document boundaries and padding of the *whole* sequence, while the model only saw
   its slice. Under SP the shard carries them as `full_sequence` (a `FullSequence`), which the model
   forwards through `**kwargs` to every attention layer; the Ulysses attention builds the mask of the
   whole sequence from it (`patchgen.runtime.sequence_mask`). No collective is needed for it.

A batch that is both padded and packed is refused: transformers ignores `position_ids` for the mask
whenever an `attention_mask` is given, so its documents would attend to each other. Pad a packed row
with one more "document" of padding tokens (positions restarting, labels `-100`) instead. An
`attention_mask` of all ones is dropped, as if absent (so `position_ids` decide the documents).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from patchgen.runtime.sequence_parallel import sequence_parallel_rank, sequence_parallel_world_size


IGNORE_INDEX = -100


@dataclass(frozen=True)
class FullSequence:
    """What attention over the gathered sequence needs to know about the whole batch (every rank has it).

    `position_ids` are the global positions of every token `[batch, seq]`; `document_ids` number the
    packed documents of each row (`None` when every row holds one document); `attention_mask` is the
    2-D padding mask `[batch, seq]` (`None` without padding). At most one of the last two is set.
    """

    position_ids: torch.Tensor
    document_ids: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None


class SequenceShard(dict):
    """A batch that `shard_batch` produced: this rank's slice, ready for `model(**shard)`."""


def document_ids(position_ids: torch.Tensor) -> torch.Tensor | None:
    """Number the documents of each row: a document starts where a position does not follow the previous one.

    `[[0, 1, 2, 0, 1, 0]] -> [[0, 0, 0, 1, 1, 2]]`; `None` when no row has a second document (the rule of
    `transformers.masking_utils.find_packed_sequence_indices`, so both build the same mask).
    """
    starts = document_starts(position_ids)
    if not bool(starts.any()):
        return None
    return starts.long().cumsum(-1)


def document_starts(position_ids: torch.Tensor) -> torch.Tensor:
    """True at every token that starts a document other than the row's first (`[batch, seq]`, bool)."""
    starts = torch.zeros_like(position_ids, dtype=torch.bool)
    starts[:, 1:] = position_ids[:, 1:] != position_ids[:, :-1] + 1
    return starts


def shard_batch(batch: Mapping[str, torch.Tensor], *, ignore_index: int = IGNORE_INDEX) -> SequenceShard:
    """This rank's slice of a full batch (every SP rank passes the same full batch).

    Accepts `input_ids` and optionally `labels`, `position_ids` (packed documents restart them) and
    `attention_mask` (padding). Returns `input_ids`, global `position_ids`, the `attention_mask` slice
    when the batch is padded, and, with labels, this rank's `labels` (a causal-LM forward computes a loss
    only when given `labels`) and `shift_labels` (labels shifted before slicing, the loss's targets; `-100`
    where the next token is padding or starts a document) and `num_items_in_batch` (the labels left in
    the whole batch). Under sequence parallelism it adds `full_sequence` (see `FullSequence`).
    """
    if isinstance(batch, SequenceShard):
        raise ValueError(
            f"shard_batch: this batch is already sharded for sequence parallelism (rank "
            f"{sequence_parallel_rank()} of {sequence_parallel_world_size()}); pass the full batch once"
        )
    input_ids = batch["input_ids"]
    batch_size, seq_len = input_ids.shape
    world_size, rank = sequence_parallel_world_size(), sequence_parallel_rank()
    if seq_len % world_size:
        raise ValueError(
            f"shard_batch: sequence length {seq_len} is not divisible by the sequence-parallel degree "
            f"{world_size}; pad or cut the batch to a multiple of {world_size}"
        )
    position_ids = batch.get("position_ids")
    if position_ids is None:
        position_ids = torch.arange(seq_len, device=input_ids.device).expand(batch_size, seq_len)
    attention_mask = _padding_mask(batch.get("attention_mask"))
    documents = document_ids(position_ids)
    if attention_mask is not None and documents is not None:
        raise ValueError(
            "shard_batch: a batch with both padding (attention_mask with zeros) and packed documents (position_ids "
            "restarting) is not supported: transformers ignores position_ids for the mask when given an "
            "attention_mask; pad packed rows with a document of padding tokens (labels -100) and no attention_mask"
        )

    local = slice(rank * seq_len // world_size, (rank + 1) * seq_len // world_size)
    shard = SequenceShard(input_ids=input_ids[:, local], position_ids=position_ids[:, local])
    if attention_mask is not None:
        shard["attention_mask"] = attention_mask[:, local]
    labels = batch.get("labels")
    if labels is not None:
        shift_labels = shift_and_mask_labels(labels, position_ids, attention_mask, ignore_index)
        # both, as upstream's causal-LM forwards want them: a loss only when `labels` is given, and then
        # `shift_labels` (when given) is what it is computed from
        shard["labels"] = labels[:, local]
        shard["shift_labels"] = shift_labels[:, local].contiguous()
        shard["num_items_in_batch"] = (shift_labels != ignore_index).sum()
    if world_size > 1:
        shard["full_sequence"] = FullSequence(position_ids, documents, attention_mask)
    return shard


def shift_and_mask_labels(
    labels: torch.Tensor, position_ids: torch.Tensor, attention_mask: torch.Tensor | None, ignore_index: int
) -> torch.Tensor:
    """`shift_labels[t]` = the label of token t + 1, or `ignore_index` where nothing should be learnt.

    Ignored: the last token (nothing follows), a token followed by the start of another document (the
    documents of a packed row are unrelated), and with padding, a token that is padding or is followed
    by padding. For example, positions `[0, 1, 2, 0, 1]` and labels `[5, 6, 7, 8, 9]` give
    `[6, 7, -100, 9, -100]`.
    """
    labels = labels.masked_fill(document_starts(position_ids), ignore_index)
    if attention_mask is not None:
        labels = labels.masked_fill(~attention_mask.bool(), ignore_index)
    shift_labels = torch.nn.functional.pad(labels, (0, 1), value=ignore_index)[:, 1:]
    if attention_mask is not None:
        shift_labels = shift_labels.masked_fill(~attention_mask.bool(), ignore_index)
    return shift_labels


def _padding_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """The 2-D padding mask, or None when there is none (no mask, or one without zeros)."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    if attention_mask.dim() != 2:
        raise ValueError(
            f"shard_batch: attention_mask must be the 2-D padding mask [batch, seq], not a "
            f"{attention_mask.dim()}-D tensor; sequence parallelism builds the attention mask itself"
        )
    return attention_mask
