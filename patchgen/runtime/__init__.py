"""What generated modeling files import from patchgen at run time, and nothing else.

Generated files are self-contained except for state that must be shared by every module of a
process: the sequence-parallel process group. That part, and the few distributed helpers that go
with it, live here so that every generated file (and the training loop) sees the same group.

`patchgen.runtime.sequence_parallel` (Ulysses sequence parallelism):
- `set_sequence_parallel_group(group)` / `get_sequence_parallel_group()`: the SP group; set it before
  the model is built. No group (the default): generated models compute exactly what upstream does.
- `sequence_to_head_shards` / `head_to_sequence_shards`: the two all-to-alls around attention, as
  autograd functions (their backward is the opposite all-to-all).
- `ulysses_head_layout`, `replicate_key_value_heads`: the head split (with key/value head replication
  when there are fewer than ranks).
- `reduce_loss(loss)`: the token-mean loss of the whole sequence from the per-rank shares.
- `sequence_parallel_enabled`, `check_no_cached_tokens`, `check_sequence_parallel_inputs`: guards the
  generated forwards call so that misuse (group changed after construction, KV-cache decoding, a shard
  without global positions or without the batch's label count) fails with a one-line error.

`patchgen.runtime.sequence_batch`: `shard_batch(batch)`, this rank's slice of a plain, packed
(`position_ids` restarting per document) or padded (`attention_mask`) batch, with labels shifted and
masked at document boundaries before slicing, and the whole batch's layout (`FullSequence`) that
attention needs after the all-to-all.

`patchgen.runtime.sequence_mask`: `gathered_sequence_attention_mask`, the causal / sliding-window /
packed-document / padding mask over the gathered sequence, in the form each attention implementation
takes.

This package imports only torch, so a GPU machine that has torch and transformers can run
generated files from a checkout without installing patchgen's generator dependencies.
"""

from patchgen.runtime.sequence_batch import FullSequence, SequenceShard, shard_batch
from patchgen.runtime.sequence_parallel import (
    UlyssesHeadLayout,
    get_sequence_parallel_group,
    head_to_sequence_shards,
    reduce_loss,
    sequence_parallel_rank,
    sequence_parallel_world_size,
    sequence_to_head_shards,
    set_sequence_parallel_group,
    ulysses_head_layout,
)


__all__ = [
    "FullSequence",
    "SequenceShard",
    "UlyssesHeadLayout",
    "get_sequence_parallel_group",
    "head_to_sequence_shards",
    "reduce_loss",
    "sequence_parallel_rank",
    "sequence_parallel_world_size",
    "sequence_to_head_shards",
    "set_sequence_parallel_group",
    "shard_batch",
    "ulysses_head_layout",
]
