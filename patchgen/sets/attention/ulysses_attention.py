"""Ulysses sequence parallelism for HF decoder attention, written once for every Llama-style model.

Two patches for an `...Attention` class:

- `ulysses_attention_init` (`config.modify_init`): fixes the layer's head layout for the
  sequence-parallel group set at construction, and fails there when the heads do not divide by it.
- `ulysses_attention_forward` (`config.override_method("...Attention.forward")`): the upstream forward
  with the two all-to-alls of Ulysses around the attention call. With no sequence-parallel group it
  runs exactly the upstream operations, so one generated file serves single-GPU and SP training.

The forward is one function for every family; where families differ it calls a *step* through a
module-level slot: the q/k/v projection (`project_qkv`: three projections, Phi-3's fused `qkv_proj`,
or Qwen3-Next's `q_proj` holding a query and an output gate per head), the q/k norm (`qk_norm`: per
head after the view as Qwen3, over the whole projection before the view as OLMo-2, or none), rope
(`rotary`: the whole head, or the leading channels with `partial_rotary_factor` as Phi-3) and the
output projection (`project_output`: `o_proj`, or `o_proj` of the output gated by
`sigmoid(gate)` as Qwen3-Next). A family picks its steps; no family copies the forward. The
attention call is the same for every family and stays in the forward:
the call keeps the upstream dispatch through `ALL_ATTENTION_FUNCTIONS.get_interface(...)` literally,
because transformers reads the module source for it to allow `model.set_attn_implementation(...)`.
A `sliding_window` (the layer's, else the config's) is used when the model has one.

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

from patchgen.runtime.sequence_mask import gathered_sequence_attention_mask
from patchgen.runtime.sequence_parallel import (
    check_no_cached_tokens,
    head_to_sequence_shards,
    replicate_key_value_heads,
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


# -- steps: the parts of the forward where families differ -------------------------------------------
#
# The forward calls each step through a slot (`project_qkv`, `qk_norm`, `rotary`, `project_output`, bound at
# the end of this section); a family binds the step that fits its upstream attention. A projection step returns
# query, key, value and the output gate (None where the attention has none) that the output step applies. A
# step's docstring says what it requires of the upstream class ("Requires: ..."), so a patch set can declare it
# and the generator check it.


def separate_qkv_projection(
    self, hidden_states: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Query, key and value from three projections, each `[batch, seq, heads * head_dim]`; no output gate.

    Requires: the attention's `__init__` defines `q_proj`, `k_proj` and `v_proj` (Llama, Qwen, Mistral,
    Gemma, OLMo-2).
    """
    return self.q_proj(hidden_states), self.k_proj(hidden_states), self.v_proj(hidden_states), None


def fused_qkv_projection(
    self, hidden_states: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Query, key and value cut from one fused projection (Phi-3): query heads first, then key, then value.

    Requires: `__init__` defines `qkv_proj` of width `(num_attention_heads + 2 * num_key_value_heads) *
    head_dim`, laid out [query | key | value], and `head_dim`. State-dict keys stay `qkv_proj.*`.
    """
    qkv = self.qkv_proj(hidden_states)
    query_end = self.config.num_attention_heads * self.head_dim
    key_end = query_end + self.config.num_key_value_heads * self.head_dim
    return qkv[..., :query_end], qkv[..., query_end:key_end], qkv[..., key_end:], None


def gated_query_projection(
    self, hidden_states: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Query and output gate cut per head from one `q_proj`, key and value from their own (Qwen3-Next).

    Requires: `__init__` defines `q_proj` of width `num_attention_heads * head_dim * 2`, laid out per head
    as [query | gate], and `k_proj` / `v_proj`. The query comes split into heads (`[batch, seq, heads,
    head_dim]`), the gate flattened to `[batch, seq, heads * head_dim]` for `gated_output_projection`.
    """
    input_shape = hidden_states.shape[:-1]
    query_states, gate = torch.chunk(self.q_proj(hidden_states).view(*input_shape, -1, self.head_dim * 2), 2, dim=-1)
    gate = gate.reshape(*input_shape, -1)
    return query_states, self.k_proj(hidden_states), self.v_proj(hidden_states), gate


def per_head_qk_norm(
    self, query_states: torch.Tensor, key_states: torch.Tensor, hidden_shape: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split into heads, then normalise each head: `q_norm(q.view(heads))` (Qwen3, Qwen3-MoE, Gemma 3).

    Requires: `q_norm` and `k_norm` normalise the last dimension of size `head_dim` (built with
    `head_dim`), applied upstream after the view into heads.
    """
    return self.q_norm(query_states.view(hidden_shape)), self.k_norm(key_states.view(hidden_shape))


def full_projection_qk_norm(
    self, query_states: torch.Tensor, key_states: torch.Tensor, hidden_shape: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalise the whole projection, then split into heads: `q_norm(q).view(heads)` (OLMo-2).

    Requires: `q_norm` / `k_norm` are built with `num_attention_heads * head_dim` /
    `num_key_value_heads * head_dim` and applied upstream before the view. Under sequence parallelism
    this runs before the all-to-all, where each rank still holds every head of its tokens, so the norm
    sees the full projection as upstream does.
    """
    return self.q_norm(query_states).view(hidden_shape), self.k_norm(key_states).view(hidden_shape)


def no_qk_norm(
    self, query_states: torch.Tensor, key_states: torch.Tensor, hidden_shape: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split into heads, no normalisation (Llama, Qwen2, Mistral, Phi-3).

    Requires: the upstream attention has no `q_norm` / `k_norm` (a model that has them needs one of the
    norm steps above, or they would be silently skipped).
    """
    return query_states.view(hidden_shape), key_states.view(hidden_shape)


def full_rotary(
    query_states: torch.Tensor, key_states: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rope over the whole head: the file's `apply_rotary_pos_emb` (upstream's, or the kernel a set bound).

    Requires: `cos`/`sin` are as wide as `head_dim` (no `partial_rotary_factor`), or a rope function
    that handles narrower ones itself.
    """
    return apply_rotary_pos_emb(query_states, key_states, cos, sin)


def partial_rotary(
    query_states: torch.Tensor, key_states: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rope over the first `cos.shape[-1]` channels of each head, the rest passed through (Phi-3, Phi-4-mini).

    With `partial_rotary_factor` < 1 the rotary embedding returns `cos`/`sin` of width
    `head_dim * partial_rotary_factor`; the file's `apply_rotary_pos_emb` (which may be a kernel that
    rotates the whole last dimension it is given) sees only those channels. Requires: the rotated
    channels lead each head, as in upstream's partial-rotary `apply_rotary_pos_emb`.
    """
    rotary_dim = cos.shape[-1]
    query_rot, query_pass = query_states[..., :rotary_dim], query_states[..., rotary_dim:]
    key_rot, key_pass = key_states[..., :rotary_dim], key_states[..., rotary_dim:]
    query_rot, key_rot = apply_rotary_pos_emb(query_rot, key_rot, cos, sin)
    return torch.cat([query_rot, query_pass], dim=-1), torch.cat([key_rot, key_pass], dim=-1)


def output_projection(self, attn_output: torch.Tensor, output_gate: torch.Tensor | None) -> torch.Tensor:
    """`o_proj` of the attention output (every family whose projection step returns no gate).

    Requires: `__init__` defines `o_proj`; the projection step bound with it returns no output gate.
    """
    return self.o_proj(attn_output)


def gated_output_projection(self, attn_output: torch.Tensor, output_gate: torch.Tensor | None) -> torch.Tensor:
    """`o_proj(attention * sigmoid(gate))`, the gate from `gated_query_projection` (Qwen3-Next).

    Under sequence parallelism this runs after the second all-to-all, on this rank's tokens with every
    head back on the rank, as upstream applies it. Requires: `o_proj`, and `gated_query_projection` bound
    as the projection step.
    """
    return self.o_proj(attn_output * torch.sigmoid(output_gate))


# The slots the forward calls, and the step each is bound to unless a config binds another:
#     config.use(ULYSSES_ATTENTION, attention="Phi3Attention", bind={"project_qkv": fused_qkv_projection, ...})
# The generated file then holds the bound step under its own name and the forward calls it by that name.
project_qkv = separate_qkv_projection
qk_norm = per_head_qk_norm
rotary = full_rotary
project_output = output_projection


def ulysses_attention_forward(
    self,
    hidden_states: torch.Tensor,
    position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
    attention_mask: torch.Tensor | None = None,
    cache: Cache | None = None,
    **kwargs: Unpack[FlashAttentionKwargs],
) -> tuple[torch.Tensor, torch.Tensor | None]:
    input_shape = hidden_states.shape[:-1]
    hidden_shape = (*input_shape, -1, self.head_dim)

    query_states, key_states, value_states, output_gate = project_qkv(self, hidden_states)
    query_states, key_states = qk_norm(self, query_states, key_states, hidden_shape)
    query_states = query_states.transpose(1, 2)
    key_states = key_states.transpose(1, 2)
    value_states = value_states.view(hidden_shape).transpose(1, 2)

    # Under sequence parallelism these are this rank's tokens and cos/sin come from their global positions.
    cos, sin = position_embeddings
    query_states, key_states = rotary(query_states, key_states, cos, sin)

    # the whole batch's positions, packed documents and padding (patchgen.runtime.shard_batch); None without SP.
    # Taken out first: the cache update below sees upstream's kwargs (a paged cache reads its batch layout there).
    full_sequence = kwargs.pop("full_sequence", None)

    if cache is not None:
        key_states, value_states = cache.update(key_states, value_states, self.layer_idx, kwargs=kwargs)

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
        # the model built the mask for this rank's shard; attention now spans the whole sequence: causal, within
        # each packed document, padding masked, as one process would mask it
        attention_mask = gathered_sequence_attention_mask(
            self.config._attn_implementation, query_states, full_sequence, sliding_window
        )
        # the whole sequence's positions, not the shard's (flash attention finds packed documents in them)
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
        sliding_window=sliding_window,
        **kwargs,
    )

    # ---- sequence parallelism (Ulysses): begin ----
    if sequence_parallel:
        # back to sequence shards: [batch, seq, heads/P, dim] -> [batch, seq/P, heads, dim]
        attn_output = head_to_sequence_shards(attn_output)
    # ---- sequence parallelism (Ulysses): end ----

    attn_output = attn_output.reshape(*input_shape, -1).contiguous()
    attn_output = project_output(self, attn_output, output_gate)
    return attn_output, attn_weights


# Seed-OSS's output step (kept at the end: the line numbers above are cited by every generated file's banners)
def output_projection_with_residual_dropout(
    self, attn_output: torch.Tensor, output_gate: torch.Tensor | None
) -> torch.Tensor:
    """`o_proj` of the attention output, then dropout at `self.residual_dropout` while training (Seed-OSS).

    Requires: `__init__` defines `o_proj` and `residual_dropout`; the projection step returns no output gate.
    """
    return torch.nn.functional.dropout(self.o_proj(attn_output), p=self.residual_dropout, training=self.training)
