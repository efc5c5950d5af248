"""Ulysses sequence parallelism for *gated* softmax attention (Qwen3-Next's full-attention layers).

Qwen3-Next's full-attention layer differs from the Llama-style attention of `ulysses_attention.py` in one
place the shared forward has no slot for: an **output gate**. `q_proj` is twice as wide as the heads need;
per head it holds the query and then a gate of the same width, and the layer returns
`o_proj(attention * sigmoid(gate))`. The gate is computed from the same projection as the query, before
attention, and applied after it, so it cannot be a projection step or a q/k-norm step of the shared
forward, whose output projection is fixed (`self.o_proj(attn_output)`).

So this module holds a forward for gated attention that takes everything else from the shared module:
the head layout (`ulysses_attention_init`), the per-head q/k norm and the partial rope steps
(`per_head_qk_norm`, `partial_rotary`), and the same runtime all-to-alls and gathered mask. The gate is
applied on this rank's tokens after the second all-to-all, where every head of a token is back on its
rank, as upstream applies it. (Were the shared forward given an output slot, e.g.
`project_output(self, attn_output, gate)`, this forward would become one bound step:
`gated_query_projection` below and `o_proj(attn_output * sigmoid(gate))`.)

The call keeps `ALL_ATTENTION_FUNCTIONS.get_interface(...)` literally, because transformers reads the
module source for it to allow `model.set_attn_implementation(...)`.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from transformers.cache_utils import Cache
from transformers.modeling_flash_attention_utils import FlashAttentionKwargs
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.processing_utils import Unpack

from models.common.ulysses_attention import partial_rotary, per_head_qk_norm, ulysses_attention_init
from patchgen.patch_sets import PatchSet
from patchgen.runtime.sequence_mask import gathered_sequence_attention_mask
from patchgen.runtime.sequence_parallel import (
    check_no_cached_tokens,
    head_to_sequence_shards,
    replicate_key_value_heads,
    sequence_parallel_enabled,
    sequence_to_head_shards,
)


if TYPE_CHECKING:  # provided by the modeling module the patches are spliced into
    from transformers.models.qwen3_next.modeling_qwen3_next import eager_attention_forward


def gated_query_projection(
    self, hidden_states: torch.Tensor, hidden_shape: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Query, key, value and the output gate; query and gate cut per head from one `q_proj` (Qwen3-Next).

    Requires: `__init__` defines `q_proj` of width `num_attention_heads * head_dim * 2`, laid out per head as
    [query | gate], and `k_proj` / `v_proj`. Returns the gate flattened to `[batch, seq, heads * head_dim]`,
    the query and key projections unnormalised and not yet split into heads for the key.
    """
    input_shape = hidden_shape[:-2]
    query_states, gate = torch.chunk(self.q_proj(hidden_states).view(*input_shape, -1, self.head_dim * 2), 2, dim=-1)
    gate = gate.reshape(*input_shape, -1)
    return query_states, self.k_proj(hidden_states), self.v_proj(hidden_states), gate


def gated_ulysses_attention_forward(
    self,
    hidden_states: torch.Tensor,
    position_embeddings: tuple[torch.Tensor, torch.Tensor],
    attention_mask: torch.Tensor | None,
    past_key_values: Cache | None = None,
    **kwargs: Unpack[FlashAttentionKwargs],
) -> tuple[torch.Tensor, torch.Tensor | None]:
    input_shape = hidden_states.shape[:-1]
    hidden_shape = (*input_shape, -1, self.head_dim)

    query_states, key_states, value_states, gate = gated_query_projection(self, hidden_states, hidden_shape)
    query_states, key_states = per_head_qk_norm(self, query_states, key_states, hidden_shape)
    query_states = query_states.transpose(1, 2)
    key_states = key_states.transpose(1, 2)
    value_states = value_states.view(hidden_shape).transpose(1, 2)

    # Under sequence parallelism these are this rank's tokens and cos/sin come from their global positions;
    # partial_rotary_factor: cos/sin cover the leading channels of each head only.
    cos, sin = position_embeddings
    query_states, key_states = partial_rotary(query_states, key_states, cos, sin)

    if past_key_values is not None:
        key_states, value_states = past_key_values.update(key_states, value_states, self.layer_idx)

    # ---- sequence parallelism (Ulysses): begin ----
    # the whole batch's positions, packed documents and padding (patchgen.runtime.shard_batch); None without SP
    full_sequence = kwargs.pop("full_sequence", None)
    # [batch, heads, seq/P, dim] -> [batch, heads/P, seq, dim]: attention needs every token of a head
    sequence_parallel = sequence_parallel_enabled(self.sequence_parallel_layout)
    if sequence_parallel:
        check_no_cached_tokens(query_states, key_states)
        key_states = replicate_key_value_heads(key_states, self.sequence_parallel_layout)
        value_states = replicate_key_value_heads(value_states, self.sequence_parallel_layout)
        query_states = sequence_to_head_shards(query_states)
        key_states = sequence_to_head_shards(key_states)
        value_states = sequence_to_head_shards(value_states)
        # causal, within each packed document, padding masked, over the whole sequence
        attention_mask = gathered_sequence_attention_mask(
            self.config._attn_implementation, query_states, full_sequence, None
        )
        kwargs["position_ids"] = full_sequence.position_ids
    # ---- sequence parallelism (Ulysses): end ----

    attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
        self.config._attn_implementation, eager_attention_forward
    )

    attn_output, attn_weights = attention_interface(
        self,
        query_states,
        key_states,
        value_states,
        attention_mask,
        dropout=0.0 if not self.training else self.attention_dropout,
        scaling=self.scaling,
        **kwargs,
    )

    # ---- sequence parallelism (Ulysses): begin ----
    if sequence_parallel:
        # back to sequence shards: [batch, seq, heads/P, dim] -> [batch, seq/P, heads, dim]
        attn_output = head_to_sequence_shards(attn_output)
    # ---- sequence parallelism (Ulysses): end ----

    attn_output = attn_output.reshape(*input_shape, -1).contiguous()
    # the output gate, on this rank's tokens and every head, as upstream applies it
    attn_output = attn_output * torch.sigmoid(gate)

    attn_output = self.o_proj(attn_output)
    return attn_output, attn_weights


GATED_ULYSSES_ATTENTION = PatchSet(
    "gated_ulysses_attention", "Ulysses sequence parallelism around gated attention (query + output gate in q_proj)"
)
GATED_ULYSSES_ATTENTION.modify_init("attention", description="fix the sequence-parallel head layout at construction")(
    ulysses_attention_init
)
GATED_ULYSSES_ATTENTION.override_method(
    "attention.forward",
    description="Ulysses sequence parallelism: all-to-alls around the attention call; output gate, per-head q/k norm "
    "and partial rope as upstream",
)(gated_ulysses_attention_forward)
GATED_ULYSSES_ATTENTION.requires_attributes(
    "attention", "q_proj", "k_proj", "v_proj", "o_proj", "q_norm", "k_norm", otherwise="ULYSSES_ATTENTION"
)
