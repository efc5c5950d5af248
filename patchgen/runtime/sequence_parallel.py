"""Ulysses sequence parallelism: the process group, the head layout, the all-to-alls and loss reduction.

Each of the P ranks of the sequence-parallel (SP) group holds `seq/P` consecutive tokens of every
sequence. Attention needs every token of a head, so around attention one all-to-all trades the
sequence shard for a head shard (`[batch, heads, seq/P, dim] -> [batch, heads/P, seq, dim]`) and a
second one trades it back. Everything else in the model (projections, norms, MLP, loss) works on
tokens independently and runs on the shard as is.

The group is process-global state: set it once, before the model is built (the head layout of the
attention layers is fixed at construction), with `set_sequence_parallel_group`. With no group set,
every function here is the identity and the generated model computes exactly what upstream does.
Batches are sharded by `patchgen.runtime.sequence_batch.shard_batch` (plain, packed or padded), and
the attention mask over the gathered sequence is built by `patchgen.runtime.sequence_mask`.

    set_sequence_parallel_group(dist.new_group(ranks))   # before building the model
    model = Qwen3ForCausalLM(config)
    shard = shard_batch({"input_ids": ids, "labels": ids})  # same full batch on every SP rank
    loss = model(**shard).loss                             # this rank's share of the token mean
    loss.backward()                                        # then sum parameter gradients over the SP group
    print(reduce_loss(loss))                               # the token mean of the whole sequence
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist


_GROUP: dist.ProcessGroup | None = None


# -- the sequence-parallel group ------------------------------------------------------------------


def set_sequence_parallel_group(group: dist.ProcessGroup | None) -> None:
    """Use `group` for sequence parallelism from now on (`None` turns it off)."""
    global _GROUP
    _GROUP = group


def get_sequence_parallel_group() -> dist.ProcessGroup | None:
    return _GROUP


def sequence_parallel_world_size() -> int:
    """The SP degree P: 1 when no group is set."""
    return 1 if _GROUP is None else dist.get_world_size(_GROUP)


def sequence_parallel_rank() -> int:
    """This process's rank inside the SP group: which slice of the sequence it holds."""
    return 0 if _GROUP is None else dist.get_rank(_GROUP)


# -- head layout of an attention layer --------------------------------------------------------------


@dataclass(frozen=True)
class UlyssesHeadLayout:
    """How one attention layer's heads are split over the SP ranks.

    When there are fewer key/value heads than ranks, each key/value head is repeated `kv_replication`
    times before the all-to-all so that every rank receives the one its query heads share.
    """

    world_size: int
    num_heads: int
    num_key_value_heads: int

    @property
    def kv_replication(self) -> int:
        return max(1, self.world_size // self.num_key_value_heads)

    @property
    def local_heads(self) -> int:
        return self.num_heads // self.world_size

    @property
    def local_key_value_heads(self) -> int:
        return self.num_key_value_heads * self.kv_replication // self.world_size

    @property
    def local_key_value_groups(self) -> int:
        """Query heads per key/value head on one rank: what `repeat_kv` must expand by."""
        return self.local_heads // self.local_key_value_heads


def ulysses_head_layout(num_heads: int, num_key_value_heads: int | None = None) -> UlyssesHeadLayout:
    """The layout for the SP group set now; a clear error when the heads cannot be split evenly."""
    world_size = sequence_parallel_world_size()
    num_key_value_heads = num_key_value_heads or num_heads
    if num_heads % world_size:
        raise ValueError(
            f"sequence parallelism: num_attention_heads ({num_heads}) is not divisible by the sequence-parallel "
            f"degree ({world_size}); use a degree that divides {num_heads}"
        )
    if num_key_value_heads % world_size and world_size % num_key_value_heads:
        raise ValueError(
            f"sequence parallelism: num_key_value_heads ({num_key_value_heads}) and the sequence-parallel degree "
            f"({world_size}) must divide one another (key/value heads are split, or replicated when fewer)"
        )
    return UlyssesHeadLayout(world_size, num_heads, num_key_value_heads)


def sequence_parallel_enabled(layout: UlyssesHeadLayout) -> bool:
    """Whether the attention layer must run the Ulysses path; refuses a group changed since construction."""
    world_size = sequence_parallel_world_size()
    if world_size != layout.world_size:
        raise RuntimeError(
            f"sequence parallelism: the model was built for a sequence-parallel degree of {layout.world_size} but "
            f"the current group has {world_size} ranks; call set_sequence_parallel_group before building the model"
        )
    return world_size > 1


def replicate_key_value_heads(states: torch.Tensor, layout: UlyssesHeadLayout) -> torch.Tensor:
    """`[batch, kv_heads, seq, dim]` with each head repeated `kv_replication` times (a no-op when 1)."""
    if layout.kv_replication == 1:
        return states
    return states.repeat_interleave(layout.kv_replication, dim=1)


# -- the all-to-alls --------------------------------------------------------------------------------


def _all_to_all(x: torch.Tensor, scatter_dim: int, gather_dim: int, group: dist.ProcessGroup) -> torch.Tensor:
    """Split `x` in P blocks along `scatter_dim`, send block i to rank i, concatenate what arrives along
    `gather_dim` in rank order."""
    world_size = dist.get_world_size(group)
    if x.size(scatter_dim) % world_size:
        raise ValueError(
            f"sequence parallelism: dimension {scatter_dim} of a {tuple(x.shape)} tensor is not divisible by the "
            f"sequence-parallel degree ({world_size})"
        )
    send = torch.stack(x.chunk(world_size, dim=scatter_dim)).contiguous()
    received = torch.empty_like(send)
    dist.all_to_all_single(received, send, group=group)
    return torch.cat(received.unbind(0), dim=gather_dim)


class _AllToAll(torch.autograd.Function):
    """All-to-all whose backward is the opposite all-to-all (gradients go back where the values came from)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scatter_dim: int, gather_dim: int, group: dist.ProcessGroup):
        ctx.dims, ctx.group = (scatter_dim, gather_dim), group
        return _all_to_all(x, scatter_dim, gather_dim, group)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        scatter_dim, gather_dim = ctx.dims
        return _all_to_all(grad.contiguous(), gather_dim, scatter_dim, ctx.group), None, None, None


def sequence_to_head_shards(states: torch.Tensor) -> torch.Tensor:
    """`[batch, heads, seq/P, dim]` (all heads, my tokens) -> `[batch, heads/P, seq, dim]` (my heads, all tokens)."""
    if _GROUP is None:
        return states
    return _AllToAll.apply(states, 1, 2, _GROUP)


def head_to_sequence_shards(states: torch.Tensor) -> torch.Tensor:
    """`[batch, seq, heads/P, dim]` (attention output layout) -> `[batch, seq/P, heads, dim]`."""
    if _GROUP is None:
        return states
    return _AllToAll.apply(states, 1, 2, _GROUP)


# -- guards --------------------------------------------------------------------------------------


def check_no_cached_tokens(query: torch.Tensor, key: torch.Tensor) -> None:
    """Decoding with a KV cache is not sequence-parallel: refuse keys longer than the queries."""
    if key.shape[2] != query.shape[2]:
        raise RuntimeError(
            "sequence parallelism does not support decoding with a KV cache (the keys hold "
            f"{key.shape[2]} tokens, the queries {query.shape[2]}); generate without a sequence-parallel group"
        )


# -- losses --------------------------------------------------------------------------------------


def check_sequence_parallel_inputs(
    position_ids: torch.Tensor | None, num_items_in_batch: torch.Tensor | int | None, computes_loss: bool
) -> None:
    """Refuse model inputs that would silently give wrong results on a sequence shard."""
    if sequence_parallel_world_size() == 1:
        return
    if position_ids is None:
        raise ValueError(
            "sequence parallelism: pass the global position_ids of this rank's tokens (shard_batch returns them); "
            "without them every rank's rope would start at position 0"
        )
    if computes_loss and num_items_in_batch is None:
        raise ValueError(
            "sequence parallelism: pass num_items_in_batch, the non-ignored labels of the whole batch (shard_batch "
            "returns it); a mean over this rank's tokens alone is not its share of the batch's token mean"
        )


def reduce_loss(loss: torch.Tensor) -> torch.Tensor:
    """Sum the per-rank shares of the token mean over the SP group: the loss of the whole sequence.

    For reporting (no gradient). For training, each rank backpropagates its own share and the
    parameter gradients are summed over the SP group; a data-parallel wrapper that *averages* over
    ranks (FSDP, DDP) needs the share scaled by `sequence_parallel_world_size()` first.
    """
    total = loss.detach().clone()
    if _GROUP is not None:
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=_GROUP)
    return total
