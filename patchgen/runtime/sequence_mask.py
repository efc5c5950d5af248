"""The attention mask over the gathered sequence, after the first Ulysses all-to-all.

The model built its attention mask for this rank's `seq/P` tokens; after the all-to-all, attention
spans all `seq` tokens of heads/P heads, so the mask is rebuilt here for the whole sequence from the
batch's `FullSequence` (`patchgen.runtime.sequence_batch`), in the form transformers gives each
attention implementation for the same batch in one process:

    eager  -> additive float mask [batch, 1, seq, seq]: 0 where allowed, the dtype's minimum elsewhere
    sdpa   -> boolean mask [batch, 1, seq, seq] (True = attend), or None for a plain causal sequence
              (then `sdpa_attention_forward` passes `is_causal=True`)
    flash  -> the 2-D padding mask or None; packed documents are read from the full `position_ids`,
              which the attention passes as the `position_ids` keyword

A key is allowed for a query when it is not after it (causal), inside the sliding window when the
layer has one (`kv > q - window`), in the same packed document, and not padding: the mask functions
of `transformers.masking_utils` (causal, sliding window, packed sequence, padding), combined the same
way.
"""

from __future__ import annotations

import torch

from patchgen.runtime.sequence_batch import FullSequence


def gathered_sequence_attention_mask(
    attn_implementation: str,
    query: torch.Tensor,
    full_sequence: FullSequence | None,
    sliding_window: int | None = None,
) -> torch.Tensor | None:
    """The mask for attention over the whole gathered sequence (`query` is `[batch, heads/P, seq, dim]`)."""
    if full_sequence is None:
        raise ValueError(
            "sequence parallelism: the attention needs the whole batch's layout (packed documents, padding); pass "
            "the shard that patchgen.runtime.shard_batch returns (its full_sequence entry) to the model"
        )
    if "flash" in attn_implementation:
        return full_sequence.attention_mask
    if attn_implementation not in ("eager", "sdpa"):
        raise ValueError(
            f"sequence parallelism supports the eager, sdpa and flash_attention_* implementations, "
            f"not {attn_implementation!r}"
        )
    documents, padding = full_sequence.document_ids, full_sequence.attention_mask
    if attn_implementation == "sdpa" and sliding_window is None and documents is None and padding is None:
        return None
    allowed = _allowed_keys(query.shape[2], query.device, sliding_window, documents, padding)
    if attn_implementation == "sdpa":
        return allowed
    mask = torch.zeros(allowed.shape, dtype=query.dtype, device=query.device)
    return mask.masked_fill(~allowed, torch.finfo(query.dtype).min)


def _allowed_keys(
    seq_len: int,
    device: torch.device,
    sliding_window: int | None,
    documents: torch.Tensor | None,
    padding: torch.Tensor | None,
) -> torch.Tensor:
    """`[batch or 1, 1, seq, seq]`, True where query (row) may attend to key (column)."""
    q_idx = torch.arange(seq_len, device=device)[:, None]
    kv_idx = torch.arange(seq_len, device=device)[None, :]
    allowed = (kv_idx <= q_idx)[None]
    if sliding_window is not None:
        allowed = allowed & (kv_idx > q_idx - sliding_window)
    if documents is not None:
        documents = documents.to(device)
        allowed = allowed & (documents[:, :, None] == documents[:, None, :])
    if padding is not None:
        allowed = allowed & padding.to(device=device, dtype=torch.bool)[:, None, :]
    return allowed[:, None]
