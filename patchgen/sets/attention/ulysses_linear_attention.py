"""Ulysses sequence parallelism for gated delta-net linear attention (Qwen3-Next's and Qwen3.5's linear-attention layers).

A gated delta-net layer mixes tokens in two places, both along the sequence and both per channel:
a short causal depthwise convolution over the q/k/v channels (`conv1d`, groups = channels), and the
delta-rule recurrence, whose state is per value head. Neither mixes heads. So Ulysses works here as
for softmax attention, with the all-to-all placed *before the convolution*: each rank projects its
`seq/P` tokens (every head), trades them for every token of `heads/P` key heads (with their value
heads, betas and decays), runs the convolution on its heads' channels and the recurrence over the whole
sequence, and trades the output back. After the all-to-all the convolution and the recurrent state see
the whole sequence of their heads, exactly as one process does; no state is passed between ranks.

- `ulysses_gated_delta_net_init` (`modify_init`): fixes the layer's head split at construction and
  refuses key heads that do not divide by the sequence-parallel degree.
- `ulysses_gated_delta_net_forward` (`override_method`): upstream's forward (cache paths included) with
  the two all-to-alls; with no sequence-parallel group it runs exactly the upstream operations. The input
  projection is a step a family binds (`project_linear_inputs`), as the shared attention forward's are.

Heads are split by *key* head: a value head `j` reads key head `j // (value_heads / key_heads)` (the
delta rule's `repeat_interleave`), so a rank holding key heads `[r * nk / P, (r + 1) * nk / P)` holds
their value heads too, however the projection lays them out: the projection step
(`project_linear_inputs`: Qwen3-Next's per-key-head `in_proj_qkvz` / `in_proj_ba`, or Qwen3.5's
separate `in_proj_qkv` / `in_proj_z` / `in_proj_b` / `in_proj_a`) returns them split into heads. One all-to-all carries q, k, v, b, a
together (concatenated per key head); the gate `z` stays on its rank, because the gated RMSNorm runs per
token and head after the output comes back.

`apply_mask_to_padding_states`, `causal_conv1d_fn`, `causal_conv1d_forward`, `torch_chunk_gated_delta_rule`
and `torch_recurrent_gated_delta_rule` are not imported here: the forward must call those of the file it
is spliced into (a kernel a set bound included). They are imported for type checkers only.
"""

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from transformers.cache_utils import Cache
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs

from patchgen.dsl.patch_sets import PatchSet
from patchgen.runtime.sequence_parallel import (
    UlyssesHeadLayout,
    head_to_sequence_shards,
    sequence_parallel_enabled,
    sequence_parallel_rank,
    sequence_parallel_world_size,
    sequence_to_head_shards,
)


if TYPE_CHECKING:  # provided by the modeling module the patches are spliced into
    from transformers.models.qwen3_next.modeling_qwen3_next import (
        apply_mask_to_padding_states,
        causal_conv1d_fn,
        causal_conv1d_forward,
        torch_chunk_gated_delta_rule,
        torch_recurrent_gated_delta_rule,
    )


def linear_attention_head_layout(num_key_heads: int, num_value_heads: int) -> UlyssesHeadLayout:
    """The split of a linear-attention layer's key heads (value heads follow them) over the group set now."""
    world_size = sequence_parallel_world_size()
    if num_key_heads % world_size:
        raise ValueError(
            f"sequence parallelism: linear_num_key_heads ({num_key_heads}) is not divisible by the sequence-parallel "
            f"degree ({world_size}); use a degree that divides {num_key_heads}"
        )
    return UlyssesHeadLayout(world_size, num_value_heads, num_value_heads)


def ulysses_gated_delta_net_init(original_init, self, *args, **kwargs):
    original_init(self, *args, **kwargs)
    # Sequence parallelism (Ulysses): each rank runs the convolution and the recurrence for key heads/P (and their
    # value heads) over the whole sequence, so the split is fixed here and a bad head count fails at construction.
    self.sequence_parallel_layout = linear_attention_head_layout(self.num_k_heads, self.num_v_heads)


def sequence_to_key_head_shards(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, b: torch.Tensor, a: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One all-to-all for q, k, v, b, a: this rank's tokens of every head -> every token of its key heads.

    In: query/key `[batch, seq/P, key_heads, key_dim]`, value `[batch, seq/P, value_heads, value_dim]`,
    b/a `[batch, seq/P, value_heads]`. Out: the same with `seq` tokens and heads/P heads. The value heads
    of a key head travel with it (they are concatenated per key head).
    """
    batch, local_seq, key_heads, key_dim = query.shape
    value_dim = value.shape[-1]
    per_key_head = value.shape[2] // key_heads
    grouped = torch.cat(
        [
            query,
            key,
            value.reshape(batch, local_seq, key_heads, per_key_head * value_dim),
            b.reshape(batch, local_seq, key_heads, per_key_head),
            a.reshape(batch, local_seq, key_heads, per_key_head),
        ],
        dim=-1,
    )
    # [batch, key_heads, seq/P, width] -> [batch, key_heads/P, seq, width]
    grouped = sequence_to_head_shards(grouped.transpose(1, 2)).transpose(1, 2)
    query, key, value, b, a = torch.split(
        grouped, [key_dim, key_dim, per_key_head * value_dim, per_key_head, per_key_head], dim=-1
    )
    batch, seq, local_key_heads, _ = query.shape
    value = value.reshape(batch, seq, local_key_heads * per_key_head, value_dim)
    b = b.reshape(batch, seq, local_key_heads * per_key_head)
    a = a.reshape(batch, seq, local_key_heads * per_key_head)
    return query, key, value, b, a


def local_conv_weight(self) -> torch.Tensor:
    """The depthwise convolution's `[channels, kernel]` weight for this rank's heads only.

    The channels are [query | key | value], each head-major; under sequence parallelism this rank keeps the
    channels of its key heads in the query and key blocks and of its value heads in the value block.
    """
    weight = self.conv1d.weight.squeeze(1)
    world_size, rank = self.sequence_parallel_layout.world_size, sequence_parallel_rank()
    if world_size == 1:
        return weight
    key_block, value_block = self.key_dim // world_size, self.value_dim // world_size
    query_channels = weight[rank * key_block : (rank + 1) * key_block]
    key_channels = weight[self.key_dim + rank * key_block : self.key_dim + (rank + 1) * key_block]
    value_start = 2 * self.key_dim + rank * value_block
    value_channels = weight[value_start : value_start + value_block]
    return torch.cat([query_channels, key_channels, value_channels])


def local_value_heads(self) -> slice:
    """The value heads this rank's recurrence runs (all of them without sequence parallelism)."""
    heads = self.num_v_heads // self.sequence_parallel_layout.world_size
    rank = sequence_parallel_rank()
    return slice(rank * heads, (rank + 1) * heads)


# -- steps: the input projection, where families differ ------------------------------------------------
#
# The forward calls `project_linear_inputs` (bound below); a family binds the step that fits its upstream layer.
# Every step returns query/key `[batch, seq, key_heads, key_dim]`, value and the gate z `[batch, seq, value_heads,
# value_dim]`, b/a `[batch, seq, value_heads]`: this rank's tokens of every head.


def fused_qkvz_ba_projection(
    self, hidden_states: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v, z from one projection and b, a from another, both laid out per key head (Qwen3-Next).

    Requires: `in_proj_qkvz`, `in_proj_ba` and upstream's `fix_query_key_value_ordering`, which cuts them per key head.
    """
    projected_states_qkvz = self.in_proj_qkvz(hidden_states)
    projected_states_ba = self.in_proj_ba(hidden_states)
    return self.fix_query_key_value_ordering(projected_states_qkvz, projected_states_ba)


def separate_qkv_z_b_a_projection(
    self, hidden_states: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v from one projection laid out [query | key | value] (each head-major), z, b, a from their own (Qwen3.5).

    Requires: `in_proj_qkv` of width `2 * key_dim + value_dim`, and `in_proj_z`, `in_proj_b`, `in_proj_a`.
    """
    batch_size, seq_len, _ = hidden_states.shape
    query, key, value = torch.split(
        self.in_proj_qkv(hidden_states), [self.key_dim, self.key_dim, self.value_dim], dim=-1
    )
    query = query.reshape(batch_size, seq_len, -1, self.head_k_dim)
    key = key.reshape(batch_size, seq_len, -1, self.head_k_dim)
    value = value.reshape(batch_size, seq_len, -1, self.head_v_dim)
    z = self.in_proj_z(hidden_states).reshape(batch_size, seq_len, -1, self.head_v_dim)
    return query, key, value, z, self.in_proj_b(hidden_states), self.in_proj_a(hidden_states)


# The slot the forward calls, Qwen3-Next's step unless a config binds another:
#     config.use(ULYSSES_GATED_DELTA_NET, linear_attention="Qwen3_5GatedDeltaNet",
#                bind={"project_linear_inputs": separate_qkv_z_b_a_projection})
project_linear_inputs = fused_qkvz_ba_projection


def ulysses_gated_delta_net_forward(
    self,
    hidden_states: torch.Tensor,
    cache: Cache | None = None,
    attention_mask: torch.Tensor | None = None,
    **kwargs: Unpack[TransformersKwargs],
):
    # padding is zeroed per token, on this rank's tokens (the mask is this rank's slice under sequence parallelism)
    hidden_states = apply_mask_to_padding_states(hidden_states, attention_mask)

    # Set up dimensions for reshapes later
    seq_len = hidden_states.shape[1]
    # Retrieve the recurrent state if there is a cache. It may be None if the layer is not initialized.
    if cache is not None:
        recurrent_state = cache.get_recurrent_state(self.layer_idx, state_idx=0)
    else:
        recurrent_state = None

    query, key, value, z, b, a = project_linear_inputs(self, hidden_states)

    # ---- sequence parallelism (Ulysses): begin ----
    # the mask of the whole sequence is for softmax attention; the recurrence needs only the zeroed padding above
    kwargs.pop("full_sequence", None)
    sequence_parallel = sequence_parallel_enabled(self.sequence_parallel_layout)
    if sequence_parallel:
        if cache is not None:
            raise RuntimeError(
                "sequence parallelism does not support a recurrent cache (use_cache / cache); "
                "generate without a sequence-parallel group"
            )
        # [batch, seq/P, heads, dim] -> [batch, seq, heads/P, dim]: the convolution and the recurrence of a head
        # need every token of it
        query, key, value, b, a = sequence_to_key_head_shards(query, key, value, b, a)
    # ---- sequence parallelism (Ulysses): end ----
    query, key, value = (x.reshape(x.shape[0], x.shape[1], -1) for x in (query, key, value))
    key_dim, value_dim = query.shape[-1], value.shape[-1]

    mixed_qkv = torch.cat((query, key, value), dim=-1)
    mixed_qkv = mixed_qkv.transpose(1, 2)

    if sequence_parallel:
        # the depthwise convolution of this rank's channels over the whole sequence (no cache under SP)
        mixed_qkv = causal_conv1d_fn(
            mixed_qkv, local_conv_weight(self), self.conv1d.bias, activation=self.activation, **kwargs
        )
    else:
        mixed_qkv = causal_conv1d_forward(
            self.conv1d,
            mixed_qkv,
            cache,
            self.layer_idx,
            activation=self.activation,
            **kwargs,
        )

    mixed_qkv = mixed_qkv.transpose(1, 2)
    query, key, value = torch.split(mixed_qkv, [key_dim, key_dim, value_dim], dim=-1)
    query = query.reshape(query.shape[0], query.shape[1], -1, self.head_k_dim)
    key = key.reshape(key.shape[0], key.shape[1], -1, self.head_k_dim)
    value = value.reshape(value.shape[0], value.shape[1], -1, self.head_v_dim)

    beta = b.sigmoid()
    # If the model is loaded in fp16, without the .float() here, A might be -inf
    heads = local_value_heads(self)
    g = -self.A_log[heads].float().exp() * F.softplus(a.float() + self.dt_bias[heads])

    if recurrent_state is not None and seq_len == 1:
        core_attn_out, last_recurrent_state = torch_recurrent_gated_delta_rule(
            query,
            key,
            value,
            g=g,
            beta=beta,
            initial_state=recurrent_state,
            output_final_state=cache is not None,
            use_qk_l2norm_in_kernel=True,
            cu_seqlens=kwargs.pop("cu_seq_lens_q", None),
            **kwargs,
        )
    else:
        # as upstream: a cache may ask for the recurrent states after each of the last tokens (speculative decoding)
        local_seq_len = query.shape[1]
        num_intermediate_recurrent_states = (
            cache.get_recurrent_states_to_keep(self.layer_idx) if cache is not None else 0
        )
        num_intermediate_recurrent_states = min(num_intermediate_recurrent_states, local_seq_len)
        effective_sequence_length = local_seq_len - num_intermediate_recurrent_states
        chunked_query, sequential_query = torch.tensor_split(query, [effective_sequence_length], dim=1)
        chunked_key, sequential_key = torch.tensor_split(key, [effective_sequence_length], dim=1)
        chunked_value, sequential_value = torch.tensor_split(value, [effective_sequence_length], dim=1)
        chunked_beta, sequential_beta = torch.tensor_split(beta, [effective_sequence_length], dim=1)
        chunked_g, sequential_g = torch.tensor_split(g, [effective_sequence_length], dim=1)

        all_outputs = []
        chunked_attn_out, chunked_last_recurrent_state = torch_chunk_gated_delta_rule(
            chunked_query,
            chunked_key,
            chunked_value,
            g=chunked_g,
            beta=chunked_beta,
            initial_state=recurrent_state,
            output_final_state=cache is not None,
            use_qk_l2norm_in_kernel=True,
            cu_seqlens=kwargs.pop("cu_seq_lens_q", None),
            **kwargs,
        )
        all_outputs.append(chunked_attn_out)
        intermediate_recurrent_states = []
        last_recurrent_state = chunked_last_recurrent_state
        for i in range(num_intermediate_recurrent_states):
            local_attn_out, last_recurrent_state = torch_recurrent_gated_delta_rule(
                sequential_query[:, i : i + 1, ...],
                sequential_key[:, i : i + 1, ...],
                sequential_value[:, i : i + 1, ...],
                g=sequential_g[:, i : i + 1, ...],
                beta=sequential_beta[:, i : i + 1, ...],
                initial_state=last_recurrent_state,
                output_final_state=True,
                use_qk_l2norm_in_kernel=True,
                **kwargs,
            )
            all_outputs.append(local_attn_out)
            intermediate_recurrent_states.append(last_recurrent_state)

        core_attn_out = torch.cat(all_outputs, dim=1)
        last_recurrent_state = (
            intermediate_recurrent_states if len(intermediate_recurrent_states) > 0 else chunked_last_recurrent_state
        )

    # Update cache
    if cache is not None:
        cache.update_recurrent_state(last_recurrent_state, self.layer_idx)

    # ---- sequence parallelism (Ulysses): begin ----
    if sequence_parallel:
        # back to sequence shards: [batch, seq, value_heads/P, dim] -> [batch, seq/P, value_heads, dim]
        core_attn_out = head_to_sequence_shards(core_attn_out)
    # ---- sequence parallelism (Ulysses): end ----

    z_shape_og = z.shape
    # reshape input data into 2D tensor
    core_attn_out = core_attn_out.reshape(-1, core_attn_out.shape[-1])
    z = z.reshape(-1, z.shape[-1])
    core_attn_out = self.norm(core_attn_out, z)
    core_attn_out = core_attn_out.reshape(z_shape_og)
    core_attn_out = core_attn_out.reshape(core_attn_out.shape[0], core_attn_out.shape[1], -1)

    output = self.out_proj(core_attn_out)
    return output


ULYSSES_GATED_DELTA_NET = PatchSet(
    "ulysses_gated_delta_net",
    "Ulysses sequence parallelism around the convolution and delta rule of a gated delta-net",
)
ULYSSES_GATED_DELTA_NET.modify_init(
    "linear_attention", description="fix the sequence-parallel split of the key/value heads at construction"
)(ulysses_gated_delta_net_init)
ULYSSES_GATED_DELTA_NET.override_method(
    "linear_attention.forward",
    description="Ulysses sequence parallelism: one all-to-all of q/k/v/beta/decay inputs before the short "
    "convolution, the convolution and delta rule over the whole sequence of this rank's heads, one all-to-all back",
)(ulysses_gated_delta_net_forward)
ULYSSES_GATED_DELTA_NET.requires_attributes(
    "linear_attention",
    "in_proj_qkvz",
    "in_proj_ba",
    otherwise="bind project_linear_inputs=separate_qkv_z_b_a_projection for in_proj_qkv/in_proj_z/in_proj_b/in_proj_a",
    step=("project_linear_inputs", fused_qkvz_ba_projection),
)
ULYSSES_GATED_DELTA_NET.requires_attributes(
    "linear_attention",
    "in_proj_qkv",
    "in_proj_z",
    "in_proj_b",
    "in_proj_a",
    otherwise="bind project_linear_inputs=fused_qkvz_ba_projection for in_proj_qkvz/in_proj_ba",
    step=("project_linear_inputs", separate_qkv_z_b_a_projection),
)
ULYSSES_GATED_DELTA_NET.requires_attributes(
    "linear_attention",
    "conv1d",
    "A_log",
    "dt_bias",
    "norm",
    "out_proj",
    otherwise="a forward written for that layer's projections",
)
