"""Ulysses sequence parallelism for HF decoder attention, written once for every Llama-style model.

Two patches for an `...Attention` class:

- `ulysses_attention_init` (`config.modify_init`): fixes the layer's head layout for the
  sequence-parallel group set at construction, and fails there when the heads do not divide by it.
- `ulysses_attention_forward` (`config.override_method("...Attention.forward")`): the upstream forward
  with the two all-to-alls of Ulysses around the attention call. With no sequence-parallel group it
  runs exactly the upstream operations, so one generated file serves single-GPU and SP training.

The forward is model-agnostic: per-head norms (`q_norm`/`k_norm`, Qwen3/OLMo-2 style) and a
`sliding_window` (the layer's, else the config's) are used when the model has them. It keeps the upstream dispatch through
`ALL_ATTENTION_FUNCTIONS.get_interface(...)` literally, because transformers reads the module source
for it to allow `model.set_attn_implementation(...)`.

`apply_rotary_pos_emb` and `eager_attention_forward` are not imported here: every modeling module
defines its own, and the copied forward must call the one of the file it is spliced into (a patched
rope included). They are imported for type checkers only; the generator resolves them in the output.
The distributed parts come from `patchgen.runtime`, which generated files import.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from transformers.cache_utils import Cache
from transformers.modeling_flash_attention_utils import FlashAttentionKwargs
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.processing_utils import Unpack

from patchgen.runtime.sequence_parallel import (
    check_no_cached_tokens,
    head_to_sequence_shards,
    replicate_key_value_heads,
    sequence_parallel_attention_mask,
    sequence_parallel_enabled,
    sequence_to_head_shards,
    ulysses_head_layout,
)


if TYPE_CHECKING:  # provided by the modeling module the patches are spliced into
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb, eager_attention_forward


def ulysses_attention_init(original_init, self, *args, **kwargs):
    original_init(self, *args, **kwargs)
    # Sequence parallelism (Ulysses): each rank attends with heads/P of the heads, so the layout is fixed
    # here, for the group set now, and a head count that does not divide by P fails at construction.
    self.sequence_parallel_layout = ulysses_head_layout(
        self.config.num_attention_heads, getattr(self.config, "num_key_value_heads", None)
    )
    # What the attention functions expand key/value heads by: query heads per key/value head *on one rank*
    # (the upstream value unless key/value heads are replicated because there are fewer than ranks).
    self.num_key_value_groups = self.sequence_parallel_layout.local_key_value_groups


def ulysses_attention_forward(
    self,
    hidden_states: torch.Tensor,
    position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
    attention_mask: torch.Tensor | None = None,
    past_key_values: Cache | None = None,
    **kwargs: Unpack[FlashAttentionKwargs],
) -> tuple[torch.Tensor, torch.Tensor | None]:
    input_shape = hidden_states.shape[:-1]
    hidden_shape = (*input_shape, -1, self.head_dim)

    query_states = self.q_proj(hidden_states).view(hidden_shape)
    key_states = self.k_proj(hidden_states).view(hidden_shape)
    value_states = self.v_proj(hidden_states).view(hidden_shape)
    # per-head RMSNorm before rope, in models that have one (Qwen3, OLMo-2)
    if getattr(self, "q_norm", None) is not None:
        query_states = self.q_norm(query_states)
    if getattr(self, "k_norm", None) is not None:
        key_states = self.k_norm(key_states)
    query_states = query_states.transpose(1, 2)
    key_states = key_states.transpose(1, 2)
    value_states = value_states.transpose(1, 2)

    # Under sequence parallelism these are this rank's tokens and cos/sin come from their global positions.
    cos, sin = position_embeddings
    query_states, key_states = apply_rotary_pos_emb(query_states, key_states, cos, sin)

    if past_key_values is not None:
        key_states, value_states = past_key_values.update(key_states, value_states, self.layer_idx)

    # the layer's own window (Qwen2/Qwen3/Gemma 3 set one per layer type), else the config's (Mistral), else none
    sliding_window = getattr(self, "sliding_window", getattr(self.config, "sliding_window", None))

    # ---- sequence parallelism (Ulysses): begin ----
    # This rank holds seq/P tokens of every head; attention needs every token of a head. One all-to-all per
    # tensor trades the sequence shard for a head shard: [batch, heads, seq/P, dim] -> [batch, heads/P, seq, dim].
    sequence_parallel = sequence_parallel_enabled(self.sequence_parallel_layout)
    if sequence_parallel:
        check_no_cached_tokens(query_states, key_states)
        # fewer key/value heads than ranks: repeat each so every rank receives the one its query heads share
        key_states = replicate_key_value_heads(key_states, self.sequence_parallel_layout)
        value_states = replicate_key_value_heads(value_states, self.sequence_parallel_layout)
        query_states = sequence_to_head_shards(query_states)
        key_states = sequence_to_head_shards(key_states)
        value_states = sequence_to_head_shards(value_states)
        # the model built the mask for this rank's shard; attention now spans the whole (causal) sequence
        attention_mask = sequence_parallel_attention_mask(
            self.config._attn_implementation, query_states, sliding_window
        )
        # the position ids describe the shard, not the gathered sequence (flash attention would read them)
        kwargs.pop("position_ids", None)
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
        sliding_window=sliding_window,
        **kwargs,
    )

    # ---- sequence parallelism (Ulysses): begin ----
    if sequence_parallel:
        # back to sequence shards: [batch, seq, heads/P, dim] -> [batch, seq/P, heads, dim]
        attn_output = head_to_sequence_shards(attn_output)
    # ---- sequence parallelism (Ulysses): end ----

    attn_output = attn_output.reshape(*input_shape, -1).contiguous()
    attn_output = self.o_proj(attn_output)
    return attn_output, attn_weights
