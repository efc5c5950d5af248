"""The three kinds of batch sequence parallelism must handle, and one training step on each.

Imported by the sequence-parallel tests (the Qwen3 file in depth, every family once). Batches are
2 rows of 16 tokens; documents and padding cross the slice boundaries of 2 and 4 ranks (8; 4, 8, 12).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from patchgen.runtime import sequence_parallel as sp
from patchgen.runtime.sequence_batch import shard_batch


BATCH, SEQ_LEN = 2, 16
IGNORED_PREFIX = 3  # plain batches: uneven label counts per rank, so each rank's loss must be its *share*
DOCUMENT_LENGTHS = ([5, 7, 4], [9, 7])  # packed rows: document 2 of row 0 spans tokens 5-11
PADDING = ((0, 3), (4, 0))  # padded rows: (left, right) padding tokens; row 1 is left-padded
PAD_TOKEN_ID = 0


def _tokens(vocab_size: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(1, vocab_size, (BATCH, SEQ_LEN), generator=generator)


def plain_batch(vocab_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    input_ids = _tokens(vocab_size, seed)
    labels = input_ids.clone()
    labels[:, :IGNORED_PREFIX] = -100
    return {"input_ids": input_ids, "labels": labels}


def packed_position_ids(document_lengths=DOCUMENT_LENGTHS) -> torch.Tensor:
    """Positions restarting at 0 at each document, as a packing collator writes them."""
    return torch.stack([torch.cat([torch.arange(n) for n in row]) for row in document_lengths])


def packed_batch(vocab_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    input_ids = _tokens(vocab_size, seed)
    return {"input_ids": input_ids, "labels": input_ids.clone(), "position_ids": packed_position_ids()}


def padded_batch(vocab_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    input_ids = _tokens(vocab_size, seed)
    attention_mask = torch.ones(BATCH, SEQ_LEN, dtype=torch.long)
    for row, (left, right) in enumerate(PADDING):
        attention_mask[row, :left] = 0
        attention_mask[row, SEQ_LEN - right :] = 0
    input_ids = input_ids.masked_fill(attention_mask == 0, PAD_TOKEN_ID)
    return {"input_ids": input_ids, "labels": input_ids.clone(), "attention_mask": attention_mask}


BATCHES = {"plain": plain_batch, "packed": packed_batch, "padded": padded_batch}


def training_step(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Forward + backward of `model` on this process's `shard_batch` slice; returns the loss (share).

    The shard carries `labels` and `shift_labels`: every causal-LM forward (stock's `ForCausalLMLoss` and the
    fused-loss forward alike) computes a loss only when given `labels`, and then from `shift_labels`.
    """
    shard = shard_batch(batch)
    loss = model(**shard).loss
    loss.backward()
    return loss.detach()


def take_gradients(model) -> dict[str, torch.Tensor]:
    """Every parameter's gradient, by name (none for parts the batch never reached, e.g. a VLM's vision tower on
    text); the model's gradients are cleared for the next batch."""
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


@contextmanager
def sequence_parallel_rank(rank: int, world_size: int, out_dir: Path) -> Iterator[None]:
    """One forked rank of a Ulysses test: one thread, a gloo group over a file store in `out_dir`, the whole world as
    the sequence-parallel group; both taken down again when the block ends."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{out_dir / 'store'}",
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=60),
    )
    try:
        sp.set_sequence_parallel_group(dist.group.WORLD)
        yield
    finally:
        sp.set_sequence_parallel_group(None)
        dist.destroy_process_group()
