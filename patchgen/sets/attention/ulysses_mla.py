"""Ulysses sequence parallelism for multi-head latent attention (MLA: DeepSeek-V3), as a patch set.

MLA compresses keys and values into one latent per token (`kv_a_proj_with_mqa` -> `kv_lora_rank`
channels plus one rope key of `qk_rope_head_dim` shared by every head) and decompresses it into
per-head keys and values with `kv_b_proj`. The shared Ulysses forward (`ulysses_attention.py`) cannot
serve it: there is no `k_proj`/`v_proj`, the key is assembled from two parts, the value head is
narrower than the query/key head, and the rope runs on part of each head (interleaved or not). So the
forward here is upstream's `DeepseekV3Attention.forward` with the Ulysses steps around the attention
call, reusing the shared runtime (`patchgen.runtime`): the layout, the all-to-alls, the guard against a
KV cache and the mask of the whole sequence.

Where the all-to-all sits: after the latent is decompressed into heads, as in every Ulysses layer
(each rank decompresses its own tokens, so `kv_b_proj` costs what it costs in one process, split P
ways). Per head, the key's non-rope part and the value travel in one all-to-all
(`decompressed_head_shards`). The rope part of the key is one head shared by every head: it is gathered
over the sequence once (`gather_shared_rope_key`: seq x qk_rope_head_dim per rank) and broadcast over
this rank's heads afterwards, instead of being copied into every head and sent heads times.

With no sequence-parallel group the forward runs upstream's operations (including `expand_kv`), so one
generated file serves single-GPU and SP training. The call keeps
`ALL_ATTENTION_FUNCTIONS.get_interface(...)` literally: transformers reads the module source for it to
allow `model.set_attn_implementation(...)`.

`apply_rotary_pos_emb`, `apply_rotary_pos_emb_interleave` and `eager_attention_forward` are the
modeling module's own (imported for type checkers only; the generator resolves them in the output).
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from transformers.cache_utils import Cache
from transformers.modeling_flash_attention_utils import FlashAttentionKwargs
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.processing_utils import Unpack

from patchgen.dsl.patch_sets import PatchSet
from patchgen.runtime.sequence_mask import gathered_sequence_attention_mask
from patchgen.runtime.sequence_parallel import (
    check_no_cached_tokens,
    head_to_sequence_shards,
    sequence_parallel_enabled,
    sequence_parallel_world_size,
    sequence_to_head_shards,
    ulysses_head_layout,
)


if TYPE_CHECKING:  # provided by the modeling module the patches are spliced into
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import (
        apply_rotary_pos_emb,
        apply_rotary_pos_emb_interleave,
        eager_attention_forward,
    )


ULYSSES_MLA_ATTENTION = PatchSet(
    "ulysses_mla_attention", "Ulysses sequence parallelism for multi-head latent attention (decompressed heads)"
)
ULYSSES_MLA_ATTENTION.requires_attributes(
    "attention",
    "kv_a_proj_with_mqa",
    "kv_a_layernorm",
    "kv_b_proj",
    "o_proj",
    otherwise="ULYSSES_ATTENTION (patchgen/sets/training_sets.py) for attention with q/k/v projections",
)


@ULYSSES_MLA_ATTENTION.modify_init("attention", description="fix the sequence-parallel head layout at construction")
def ulysses_mla_attention_init(original_init, self, *args, **kwargs):
    original_init(self, *args, **kwargs)
    # Sequence parallelism (Ulysses): each rank attends with heads/P of the heads. kv_b_proj gives every query head
    # its own key and value head, so the layout splits num_heads on both sides; a head count that does not divide
    # by P fails here, at construction.
    self.sequence_parallel_layout = ulysses_head_layout(self.num_heads)


def gather_shared_rope_key(k_rot: torch.Tensor) -> torch.Tensor:
    """`[batch, 1, seq/P, rope_dim]` (this rank's tokens) -> `[batch, 1, seq, rope_dim]` (every token), on every rank.

    The rope key is one head shared by all heads, and every rank needs all of its tokens. An all-gather
    written as the Ulysses all-to-all of P copies (one per rank): its backward sends each copy's gradient
    back to the rank that owns the tokens, where the copies' gradients add up.
    """
    copies = k_rot.expand(-1, sequence_parallel_world_size(), -1, -1)
    return sequence_to_head_shards(copies)


def decompressed_head_shards(self, kv_nope: torch.Tensor, k_rot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values of this rank's heads over the whole sequence, from the latents of this rank's tokens.

    `kv_nope` `[batch, 1, seq/P, kv_lora_rank]` and `k_rot` `[batch, 1, seq/P, qk_rope_head_dim]` (roped)
    are upstream's inputs to `expand_kv`. `kv_b_proj` decompresses this rank's tokens into every head, one
    all-to-all trades them for head shards, and the key is `[non-rope part of the head | shared rope key]`,
    as `expand_kv` assembles it. Returns `[batch, heads/P, seq, qk_head_dim]` and `[batch, heads/P, seq,
    v_head_dim]`.

    Requires: upstream's `kv_b_proj` lays each head out as [qk_nope_head_dim | v_head_dim] (DeepSeek-V3).
    """
    batch_size, _, seq_length, _ = kv_nope.shape
    key_shape = (batch_size, seq_length, -1, self.qk_nope_head_dim + self.v_head_dim)
    kv_heads = self.kv_b_proj(kv_nope).view(key_shape).transpose(1, 2)
    kv_heads = sequence_to_head_shards(kv_heads)
    k_nope, value_states = torch.split(kv_heads, [self.qk_nope_head_dim, self.v_head_dim], dim=-1)
    k_rot = gather_shared_rope_key(k_rot).expand(-1, k_nope.shape[1], -1, -1)
    key_states = torch.cat((k_nope, k_rot), dim=-1)
    return key_states, value_states


@ULYSSES_MLA_ATTENTION.override_method(
    "attention.forward",
    description="Ulysses sequence parallelism for MLA: all-to-alls of the decompressed heads around the attention "
    "call, the shared rope key gathered once",
)
def ulysses_mla_attention_forward(
    self,
    hidden_states: torch.Tensor,
    position_embeddings: tuple[torch.Tensor, torch.Tensor],
    attention_mask: torch.Tensor | None,
    cache: Cache | None = None,
    **kwargs: Unpack[FlashAttentionKwargs],
) -> tuple[torch.Tensor, torch.Tensor | None, tuple[torch.Tensor] | None]:
    batch_size, seq_length = hidden_states.shape[:-1]
    query_shape = (batch_size, seq_length, -1, self.qk_head_dim)

    if self.q_lora_rank is None:
        q_states = self.q_proj(hidden_states)
    else:
        q_states = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(hidden_states)))
    q_states = q_states.view(query_shape).transpose(1, 2)
    q_pass, q_rot = torch.split(q_states, [self.qk_nope_head_dim, self.qk_rope_head_dim], dim=-1)

    compressed_kv = self.kv_a_proj_with_mqa(hidden_states)
    kv_nope, k_rot = torch.split(compressed_kv, [self.kv_lora_rank, self.qk_rope_head_dim], dim=-1)
    kv_nope = self.kv_a_layernorm(kv_nope)
    # Both latents are viewed as single-head, 4D tensors so all cache layers handle them correctly
    kv_nope = kv_nope.view(batch_size, 1, seq_length, self.kv_lora_rank)
    k_rot = k_rot.view(batch_size, 1, seq_length, self.qk_rope_head_dim)

    # Under sequence parallelism these are this rank's tokens and cos/sin come from their global positions.
    cos, sin = position_embeddings
    if self.config.rope_interleave:  # support using interleaved weights for efficiency
        q_rot, k_rot = apply_rotary_pos_emb_interleave(q_rot, k_rot, cos, sin)
    else:
        q_rot, k_rot = apply_rotary_pos_emb(q_rot, k_rot, cos, sin)

    # the whole batch's positions, packed documents and padding (patchgen.runtime.shard_batch); None without SP.
    # Taken out first: the cache update below sees upstream's kwargs (a paged cache reads its batch layout there).
    full_sequence = kwargs.pop("full_sequence", None)

    # Cache read / write is performed while latent KV is still compressed
    if cache is not None:
        kv_nope, k_rot = cache.update(kv_nope, k_rot, self.layer_idx, kwargs=kwargs)

    query_states = torch.cat((q_pass, q_rot), dim=-1)

    # ---- sequence parallelism (Ulysses): begin ----
    sequence_parallel = sequence_parallel_enabled(self.sequence_parallel_layout)
    if sequence_parallel:
        check_no_cached_tokens(query_states, k_rot)
        # this rank held seq/P tokens of every head; attention needs every token of a head: [batch, heads, seq/P,
        # dim] -> [batch, heads/P, seq, dim] for the query, the decompressed keys/values and the shared rope key
        key_states, value_states = decompressed_head_shards(self, kv_nope, k_rot)
        query_states = sequence_to_head_shards(query_states)
        # the model built the mask for this rank's shard; attention now spans the whole sequence: causal, within
        # each packed document, padding masked, as one process would mask it
        attention_mask = gathered_sequence_attention_mask(
            self.config._attn_implementation, query_states, full_sequence, None
        )
        # the whole sequence's positions, not the shard's (flash attention finds packed documents in them)
        kwargs["position_ids"] = full_sequence.position_ids
    else:
        key_states, value_states = self.expand_kv(kv_nope, k_rot)
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
        # back to sequence shards: [batch, seq, heads/P, v_head_dim] -> [batch, seq/P, heads, v_head_dim]
        attn_output = head_to_sequence_shards(attn_output)
    # ---- sequence parallelism (Ulysses): end ----

    attn_output = attn_output.reshape(batch_size, seq_length, -1).contiguous()
    attn_output = self.o_proj(attn_output)
    return attn_output, attn_weights
