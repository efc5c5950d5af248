# ==============================================================================
# AUTO-GENERATED FILE - DO NOT EDIT DIRECTLY
# ==============================================================================
# Source: transformers.models.llama.modeling_llama
# Based on: transformers==5.25.0
# Config: models.llama.llama_cpu_patch_gen_config
# Regenerate: python -m patchgen.run_codegen models.llama.llama_cpu_patch_gen_config --diff
#
# Patches applied:
# - init_modification: LlamaAttention [patch set ulysses_attention.attention]
# - method_override: LlamaAttention.forward [patch set ulysses_attention.attention]
# - class_replacement: LlamaRMSNorm [patch set torch_rms_norm.rms_norm]
# - class_replacement: LlamaMLP [patch set torch_swiglu_mlp.mlp]
# - function_replacement: apply_rotary_pos_emb [patch set torch_rope.rope]
# - method_override: LlamaForCausalLM.forward [patch set torch_linear_cross_entropy.causal_lm]
# - method_override: LlamaPreTrainedModel.is_custom_code [patch set native_model_code.pretrained_model]
# - excluded: LlamaForTokenClassification
# - excluded: LlamaForQuestionAnswering
# - extra import: from patchgen.runtime.losses import torch_linear_cross_entropy as linear_cross_entropy
# ==============================================================================
# Copyright 2022 EleutherAI and the HuggingFace Inc. team. All rights reserved.
#
# This code is based on EleutherAI's GPT-NeoX library and the GPT-NeoX
# and OPT implementations in this library. It has been modified from its
# original forms to accommodate minor architectural differences compared
# to GPT-NeoX and OPT used by the Meta AI team that trained the model.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
from collections.abc import Callable

import torch
from patchgen.runtime.config_checks import check_config_values
from patchgen.runtime.losses import torch_linear_cross_entropy as linear_cross_entropy
from patchgen.runtime.losses import use_fused_linear_cross_entropy
from patchgen.runtime.sequence_mask import gathered_sequence_attention_mask
from patchgen.runtime.sequence_parallel import (
    check_no_cached_tokens,
    check_sequence_parallel_inputs,
    head_to_sequence_shards,
    replicate_key_value_heads,
    sequence_parallel_enabled,
    sequence_to_head_shards,
    ulysses_head_layout,
)
from torch import nn

from transformers.cache_utils import Cache, DynamicCache
from transformers.generation import GenerationMixin
from transformers.integrations import use_kernel_forward_from_hub, use_kernelized_func
from transformers.masking_utils import create_causal_mask
from transformers.modeling_flash_attention_utils import FlashAttentionKwargs
from transformers.modeling_layers import (
    GenericForSequenceClassification,
    GradientCheckpointingLayer,
)
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
)
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS, dynamic_rope_update
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel, slice_logits_to_keep
from transformers.models.llama.configuration_llama import LlamaConfig
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, auto_docstring, can_return_tuple, logging
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs


logger = logging.get_logger(__name__)


# ==============================================================================
# [ADDED] _rms_normalize
# Needed by: class_replacement LlamaRMSNorm (patch set torch_rms_norm.rms_norm, applied at models/llama/llama_cpu_patch_gen_config.py:17)
# Patch source: patchgen/sets/kernels/torch_kernels.py:39
# ==============================================================================
def _rms_normalize(hidden_states: torch.Tensor, eps: float) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) over the last dimension."""
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return hidden_states * torch.rsqrt(variance + eps)


# ==============================================================================
# [PATCHED CLASS] LlamaRMSNorm
# Reason: pure-torch RMSNorm with LigerRMSNorm's interface and 'llama' casting (CPU stand-in)
# Patch source: patchgen/sets/kernels/torch_kernels.py:48 (patch set torch_rms_norm.rms_norm, applied at models/llama/llama_cpu_patch_gen_config.py:17)
# ==============================================================================
class LlamaRMSNorm(nn.Module):
    """RMSNorm as LigerRMSNorm computes it by default: normalise in fp32, cast back, then scale by `weight`."""

    def __init__(self, hidden_size, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        normalized = _rms_normalize(hidden_states.to(torch.float32), self.variance_epsilon)
        return self.weight * normalized.to(input_dtype)

    def extra_repr(self):
        return f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}"


class LlamaRotaryEmbedding(nn.Module):
    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.max_seq_len_cached = config.max_position_embeddings
        self.original_max_seq_len = config.max_position_embeddings

        self.config = config

        self.rope_type = self.config.rope_parameters["rope_type"]
        rope_init_fn: Callable = self.compute_default_rope_parameters
        if self.rope_type != "default":
            rope_init_fn = ROPE_INIT_FUNCTIONS[self.rope_type]
        inv_freq, self.attention_scaling = rope_init_fn(self.config)

        self.inv_freq = nn.Buffer(inv_freq, persistent=False)
        self.original_inv_freq = nn.Buffer(inv_freq.clone(), persistent=False)

    @staticmethod
    def compute_default_rope_parameters(config: LlamaConfig, **kwargs) -> tuple[torch.Tensor, float]:
        """
        Computes the inverse frequencies according to the original RoPE implementation
        Args:
            config ([`~transformers.PreTrainedConfig`]):
                The model configuration.
        Returns:
            Tuple of (`torch.Tensor`, `float`), containing the inverse frequencies for the RoPE embeddings and the
            post-processing scaling factor applied to the computed cos/sin (unused in this type of RoPE).
        """
        base = config.rope_parameters["rope_theta"]
        dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads

        attention_factor = 1.0  # Unused in this type of RoPE
        # Compute the inverse frequencies
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
        return inv_freq, attention_factor

    @dynamic_rope_update  # power user: used with advanced RoPE types (e.g. dynamic rope)
    def forward(self, x, position_ids):
        freqs = position_ids[..., None].float() * self.inv_freq.to(device=x.device, dtype=torch.float)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = emb.cos() * self.attention_scaling
        sin = emb.sin() * self.attention_scaling

        return cos.to(dtype=x.dtype), sin.to(dtype=x.dtype)


def rotate_half(x):
    """Rotates half the hidden dims of the input."""
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


# ==============================================================================
# [ADDED] _rotate_half
# Needed by: function_replacement apply_rotary_pos_emb (patch set torch_rope.rope, applied at models/llama/llama_cpu_patch_gen_config.py:19)
# Patch source: patchgen/sets/kernels/torch_kernels.py:157
# ==============================================================================
def _rotate_half(x):
    """Rotates half the hidden dims of the input (upstream's `rotate_half`)."""
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


# ==============================================================================
# [PATCHED FUNCTION] apply_rotary_pos_emb
# Reason: rope in fp32, cast back: the precision of Liger's rope kernel
# Patch source: patchgen/sets/kernels/torch_kernels.py:165 (patch set torch_rope.rope, applied at models/llama/llama_cpu_patch_gen_config.py:19)
# ==============================================================================
@use_kernel_forward_from_hub("rotary_pos_emb")
def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
    """Rotary position embedding of q and k, computed in fp32 whatever their dtype."""
    cos = cos.unsqueeze(unsqueeze_dim).to(torch.float32)
    sin = sin.unsqueeze(unsqueeze_dim).to(torch.float32)
    q32, k32 = q.to(torch.float32), k.to(torch.float32)
    q_embed = (q32 * cos) + (_rotate_half(q32) * sin)
    k_embed = (k32 * cos) + (_rotate_half(k32) * sin)
    return q_embed.to(q.dtype), k_embed.to(k.dtype)


# ==============================================================================
# [PATCHED CLASS] LlamaMLP
# Reason: pure-torch SwiGLU with LigerSwiGLUMLP's constructor and keys: down(silu(gate) * up) [Llama's config.mlp_bias=True is refused: the kernel has no biases]
# Patch source: patchgen/sets/kernels/torch_kernels.py:89 (patch set torch_swiglu_mlp.mlp, applied at models/llama/llama_cpu_patch_gen_config.py:18)
# ==============================================================================
class LlamaMLP(nn.Module):
    """The gated MLP of Llama-style models, bias-free and SiLU-only like the fused kernel it stands in for."""

    def __init__(self, config, intermediate_size=None):
        super().__init__()
        self.config = config
        self.hidden_size = config.hidden_size
        self.intermediate_size = intermediate_size if intermediate_size is not None else config.intermediate_size
        self.gate_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.up_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.down_proj = nn.Linear(self.intermediate_size, self.hidden_size, bias=False)
        if config.hidden_act not in ("silu", "swish"):
            raise ValueError(f"the fused SwiGLU MLP supports only silu/swish, not {config.hidden_act!r}")
        # LigerSwiGLUMLP has no biases; refuse a config that has them instead of dropping them silently
        if getattr(config, "mlp_bias", False):
            raise ValueError("the fused SwiGLU MLP has no biases, but config.mlp_bias is True")

    def forward(self, x):
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


def repeat_kv(hidden_states: torch.Tensor, n_rep: int) -> torch.Tensor:
    """
    This is the equivalent of torch.repeat_interleave(x, dim=1, repeats=n_rep). The hidden states go from (batch,
    num_key_value_heads, seqlen, head_dim) to (batch, num_attention_heads, seqlen, head_dim)
    """
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Unpack[TransformersKwargs],
):
    key_states = repeat_kv(key, module.num_key_value_groups)
    value_states = repeat_kv(value, module.num_key_value_groups)

    attn_weights = torch.matmul(query, key_states.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask

    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value_states)
    attn_output = attn_output.transpose(1, 2).contiguous()

    return attn_output, attn_weights


# ==============================================================================
# [ADDED] separate_qkv_projection
# Needed by: method_override LlamaAttention.forward (patch set ulysses_attention.attention, applied at models/llama/llama_base_patch_gen_config.py:26)
# Patch source: patchgen/sets/attention/ulysses_attention.py:74
# ==============================================================================
def separate_qkv_projection(
    self, hidden_states: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Query, key and value from three projections, each `[batch, seq, heads * head_dim]`; no output gate.

    Requires: the attention's `__init__` defines `q_proj`, `k_proj` and `v_proj` (Llama, Qwen, Mistral,
    Gemma, OLMo-2).
    """
    return self.q_proj(hidden_states), self.k_proj(hidden_states), self.v_proj(hidden_states), None


# ==============================================================================
# [ADDED] no_qk_norm
# Needed by: method_override LlamaAttention.forward (patch set ulysses_attention.attention, applied at models/llama/llama_base_patch_gen_config.py:26)
# Patch source: patchgen/sets/attention/ulysses_attention.py:138
# ==============================================================================
def no_qk_norm(
    self, query_states: torch.Tensor, key_states: torch.Tensor, hidden_shape: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split into heads, no normalisation (Llama, Qwen2, Mistral, Phi-3).

    Requires: the upstream attention has no `q_norm` / `k_norm` (a model that has them needs one of the
    norm steps above, or they would be silently skipped).
    """
    return query_states.view(hidden_shape), key_states.view(hidden_shape)


# ==============================================================================
# [ADDED] full_rotary
# Needed by: method_override LlamaAttention.forward (patch set ulysses_attention.attention, applied at models/llama/llama_base_patch_gen_config.py:26)
# Patch source: patchgen/sets/attention/ulysses_attention.py:149
# ==============================================================================
def full_rotary(
    query_states: torch.Tensor, key_states: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rope over the whole head: the file's `apply_rotary_pos_emb` (upstream's, or the kernel a set bound).

    Requires: `cos`/`sin` are as wide as `head_dim` (no `partial_rotary_factor`), or a rope function
    that handles narrower ones itself.
    """
    return apply_rotary_pos_emb(query_states, key_states, cos, sin)


# ==============================================================================
# [ADDED] output_projection
# Needed by: method_override LlamaAttention.forward (patch set ulysses_attention.attention, applied at models/llama/llama_base_patch_gen_config.py:26)
# Patch source: patchgen/sets/attention/ulysses_attention.py:177
# ==============================================================================
def output_projection(self, attn_output: torch.Tensor, output_gate: torch.Tensor | None) -> torch.Tensor:
    """`o_proj` of the attention output (every family whose projection step returns no gate).

    Requires: `__init__` defines `o_proj`; the projection step bound with it returns no output gate.
    """
    return self.o_proj(attn_output)


# ==============================================================================
# [MODIFIED CLASS] LlamaAttention
# Methods patched: __init__, forward
# - __init__ (init_modification)
#   Reason: fix the sequence-parallel head layout at construction
#   Patch source: patchgen/sets/attention/ulysses_attention.py:53 (patch set ulysses_attention.attention, applied at models/llama/llama_base_patch_gen_config.py:26)
# - forward (method_override)
#   Reason: Ulysses sequence parallelism: all-to-alls around the attention call
#   Patch source: patchgen/sets/attention/ulysses_attention.py:204 (patch set ulysses_attention.attention, applied at models/llama/llama_base_patch_gen_config.py:26)
# ==============================================================================
@use_kernelized_func(apply_rotary_pos_emb)
class LlamaAttention(nn.Module):
    """Multi-headed attention from 'Attention Is All You Need' paper"""

    def __init__(self, config: LlamaConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = getattr(config, "head_dim", config.hidden_size // config.num_attention_heads)
        self.num_key_value_groups = config.num_attention_heads // config.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.is_causal = True

        self.q_proj = nn.Linear(
            config.hidden_size, config.num_attention_heads * self.head_dim, bias=config.attention_bias
        )
        self.k_proj = nn.Linear(
            config.hidden_size, config.num_key_value_heads * self.head_dim, bias=config.attention_bias
        )
        self.v_proj = nn.Linear(
            config.hidden_size, config.num_key_value_heads * self.head_dim, bias=config.attention_bias
        )
        self.o_proj = nn.Linear(
            config.num_attention_heads * self.head_dim, config.hidden_size, bias=config.attention_bias
        )
        # [patchgen] begin: added by modify_init (patchgen/sets/attention/ulysses_attention.py:53), after the upstream body
        # Sequence parallelism (Ulysses): each rank attends with heads/P of the heads, so the layout is fixed
        # here, for the group set now, and a head count that does not divide by P fails at construction.
        self.sequence_parallel_layout = ulysses_head_layout(
            self.config.num_attention_heads, getattr(self.config, "num_key_value_heads", None)
        )
        # What the attention functions expand key/value heads by: query heads per key/value head *on one rank*
        # (the upstream value unless key/value heads are replicated because there are fewer than ranks).
        self.num_key_value_groups = self.sequence_parallel_layout.local_key_value_groups
        # [patchgen] end

    # [PATCHED METHOD] LlamaAttention.forward: see the banner above the class
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs: Unpack[FlashAttentionKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)

        query_states, key_states, value_states, output_gate = separate_qkv_projection(self, hidden_states)
        query_states, key_states = no_qk_norm(self, query_states, key_states, hidden_shape)
        query_states = query_states.transpose(1, 2)
        key_states = key_states.transpose(1, 2)
        value_states = value_states.view(hidden_shape).transpose(1, 2)

        # Under sequence parallelism these are this rank's tokens and cos/sin come from their global positions.
        cos, sin = position_embeddings
        query_states, key_states = full_rotary(query_states, key_states, cos, sin)

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
        attn_output = output_projection(self, attn_output, output_gate)
        return attn_output, attn_weights


class LlamaDecoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: LlamaConfig, layer_idx: int):
        # [CONFIG CHECK] the config values the patch sets support (PatchSet.requires_config)
        check_config_values(
            config, "torch_swiglu_mlp", "LlamaMLP", {"hidden_act": ("silu", "swish"), "mlp_bias": (False,)}
        )
        super().__init__()
        self.hidden_size = config.hidden_size

        self.self_attn = LlamaAttention(config=config, layer_idx=layer_idx)

        self.mlp = LlamaMLP(config)
        self.input_layernorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = False,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states)
        # Self Attention
        hidden_states, _ = self.self_attn(
            hidden_states=hidden_states,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            position_embeddings=position_embeddings,
            **kwargs,
        )
        hidden_states = residual + hidden_states

        # Fully Connected
        residual = hidden_states
        hidden_states = self.post_attention_layernorm(hidden_states)
        hidden_states = self.mlp(hidden_states)
        hidden_states = residual + hidden_states
        return hidden_states


# ==============================================================================
# [MODIFIED CLASS] LlamaPreTrainedModel
# Methods patched: is_custom_code
# - is_custom_code (method_override)
#   Reason: this file is transformers' modeling code with patches: initialise weights, convert checkpoints and read layer types as for the stock classes (outside the transformers package they count as custom code); applied by the generator to every class deriving from PreTrainedModel
#   Patch source: patchgen/load/native_code.py:43 (patch set native_model_code.pretrained_model, applied at patchgen/load/native_code.py:48)
# ==============================================================================
@auto_docstring
class LlamaPreTrainedModel(PreTrainedModel):
    config: LlamaConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LlamaDecoderLayer"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True

    _can_compile_fullgraph = True
    _supports_attention_backend = True
    _can_record_outputs = {
        "hidden_states": LlamaDecoderLayer,
        "attentions": LlamaAttention,
    }

    # [ADDED METHOD] LlamaPreTrainedModel.is_custom_code: overrides the inherited one, see the banner above
    @classmethod
    def is_custom_code(cls) -> bool:
        """Custom only when loaded from the hub, as the stock class (its module is outside `transformers.`)."""
        return cls.is_remote_code()


@auto_docstring
class LlamaModel(LlamaPreTrainedModel):
    def __init__(self, config: LlamaConfig):
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.vocab_size = config.vocab_size

        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList(
            [LlamaDecoderLayer(config, layer_idx) for layer_idx in range(config.num_hidden_layers)]
        )
        self.norm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = LlamaRotaryEmbedding(config=config)
        self.gradient_checkpointing = False

        # Initialize weights and apply final processing
        self.post_init()

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @merge_with_config_defaults
    @capture_outputs
    @auto_docstring
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPast:
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")

        if inputs_embeds is None:
            inputs_embeds: torch.Tensor = self.embed_tokens(input_ids)

        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)

        if position_ids is None:
            past_seen_tokens = cache.get_seq_length() if cache is not None else 0
            position_ids = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + past_seen_tokens
            position_ids = position_ids.unsqueeze(0)

        causal_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            cache=cache,
            position_ids=position_ids,
        )

        hidden_states = inputs_embeds
        position_embeddings = self.rotary_emb(hidden_states, position_ids=position_ids)

        for decoder_layer in self.layers[: self.config.num_hidden_layers]:
            hidden_states = decoder_layer(
                hidden_states,
                attention_mask=causal_mask,
                position_embeddings=position_embeddings,
                position_ids=position_ids,
                cache=cache,
                use_cache=use_cache,
                **kwargs,
            )

        hidden_states = self.norm(hidden_states)
        return BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            cache=cache,
        )


# ==============================================================================
# [ADDED] loss_and_logits
# Needed by: method_override LlamaForCausalLM.forward (patch set torch_linear_cross_entropy.causal_lm, applied at models/llama/llama_cpu_patch_gen_config.py:20)
# Patch source: patchgen/sets/losses/fused_loss.py:98
# ==============================================================================
def loss_and_logits(
    self,
    hidden_states: torch.Tensor,
    labels: torch.Tensor | None,
    shift_labels: torch.Tensor | None,
    vocab_size: int,
    kwargs: dict,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The forward's `(loss, logits)` from the kept positions' `hidden_states`.

    With `labels` while training, the loss alone (`logits=None`: nothing reads them): for many logits
    `fused_causal_lm_loss`, which never materialises them. Otherwise (few logits, a tensor-parallel `lm_head`,
    evaluation, generation, no labels) upstream's: the `lm_head` logits and, with `labels`, `self.loss_function`
    of them. Shared by every causal-LM forward of the loss sets (text, vision-language).
    """
    loss_only = labels is not None and self.training
    if loss_only and use_fused_linear_cross_entropy(hidden_states, self.lm_head.weight):
        # training reads only the loss: a fused kernel never materialises the logits
        return fused_causal_lm_loss(self, hidden_states, labels, shift_labels, kwargs), None
    logits = self.lm_head(hidden_states)
    loss = None
    if labels is not None:  # as upstream: no loss without `labels`, even with `shift_labels`
        loss = self.loss_function(
            logits=logits,
            labels=labels,
            vocab_size=vocab_size,
            shift_labels=None if shift_labels is None else shift_labels.contiguous(),  # upstream's loss views it
            **kwargs,
        )
    # while training the output carries the loss alone, whichever way it was computed
    return loss, None if loss_only else logits


# ==============================================================================
# [ADDED] fused_causal_lm_loss
# Needed by: method_override LlamaForCausalLM.forward (patch set torch_linear_cross_entropy.causal_lm, applied at models/llama/llama_cpu_patch_gen_config.py:20) (via helper loss_and_logits)
# Patch source: patchgen/sets/losses/fused_loss.py:131
# ==============================================================================
def fused_causal_lm_loss(
    self,
    hidden_states: torch.Tensor,
    labels: torch.Tensor,
    shift_labels: torch.Tensor | None,
    kwargs: dict,
) -> torch.Tensor:
    """The loss of the kept positions' `hidden_states` against `labels` (or `shift_labels`, already shifted), fused.

    `linear_cross_entropy(hidden, lm_head.weight, shift_labels)`, the kernel the patch set binds (never
    materialising the logits), with upstream's loss's `ignore_index` and `num_items_in_batch`.
    """
    # upstream's loss reads `ignore_index` from the same kwargs (ForCausalLMLoss's parameter)
    ignore_index = kwargs.get("ignore_index", -100)
    if shift_labels is None:
        # token t predicts token t + 1; the last position has nothing to predict
        shift_labels = nn.functional.pad(labels, (0, 1), value=ignore_index)[..., 1:]
    hidden_states = hidden_states.reshape(-1, hidden_states.shape[-1])
    shift_labels = shift_labels.reshape(-1).to(hidden_states.device)
    if hidden_states.shape[0] != shift_labels.shape[0]:
        # e.g. `logits_to_keep` keeping fewer positions than there are labels: upstream's cross_entropy says
        # this (a ValueError) before any kernel runs; a fused kernel would fail later, and differently
        raise ValueError(
            f"Expected input batch_size ({hidden_states.shape[0]}) to match target batch_size "
            f"({shift_labels.shape[0]})."
        )
    num_items_in_batch = kwargs.get("num_items_in_batch")
    loss = linear_cross_entropy(
        hidden_states,
        self.lm_head.weight,
        shift_labels,
        ignore_index=ignore_index,
        reduction="mean" if num_items_in_batch is None else "sum",
    )
    if num_items_in_batch is not None:
        if torch.is_tensor(num_items_in_batch):
            num_items_in_batch = num_items_in_batch.to(loss.device)
        loss = loss / num_items_in_batch
    return loss


# ==============================================================================
# [MODIFIED CLASS] LlamaForCausalLM
# Methods patched: forward
# - forward (method_override)
#   Reason: the GPU file's forward, its fused kernel swapped for a plain-torch loss (CPU stand-in), for many logits (tokens x vocab), upstream's logits and loss for few
#   Patch source: patchgen/sets/losses/fused_loss.py:47 (patch set torch_linear_cross_entropy.causal_lm, applied at models/llama/llama_cpu_patch_gen_config.py:20)
# ==============================================================================
@auto_docstring
class LlamaForCausalLM(LlamaPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}
    _tp_plan = {"lm_head": "colwise_gather_output"}
    _pp_plan = {"lm_head": (["hidden_states"], ["logits"])}
    _fsdp_plan = {"lm_head": "keep_full_weight"}

    def __init__(self, config: LlamaConfig):
        # [CONFIG CHECK] the config values the patch sets support (PatchSet.requires_config)
        check_config_values(
            config, "torch_linear_cross_entropy", "LlamaForCausalLM", {"final_logit_softcapping": (None,)}
        )
        super().__init__(config)
        self.model = LlamaModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

        # Initialize weights and apply final processing
        self.post_init()

    # [PATCHED METHOD] LlamaForCausalLM.forward: see the banner above the class
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    @auto_docstring
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Unpack[TransformersKwargs],
    ) -> CausalLMOutputWithPast:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Labels for computing the masked language modeling loss. Indices should either be in `[0, ...,
            config.vocab_size]` or -100 (see `input_ids` docstring). Tokens with indices set to `-100` are ignored
            (masked), the loss is only computed for the tokens with labels in `[0, ..., config.vocab_size]`.
            With labels while training (shifted inside, or used as given in `shift_labels`), the output's `logits`
            is `None` and the loss is, for many logits, `linear_cross_entropy` of the last hidden states and the
            `lm_head` weight (a fused kernel in GPU files: the logits are never materialised), else upstream's loss.
            In evaluation both are returned, as upstream computes them.
        """
        shift_labels = kwargs.pop("shift_labels", None)
        # sequence parallelism: a sequence shard needs its global positions and the whole batch's label count
        check_sequence_parallel_inputs(position_ids, kwargs.get("num_items_in_batch"), labels is not None)
        outputs: BaseModelOutputWithPast = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )

        hidden_states = outputs.last_hidden_state
        # Only compute necessary positions (logits or loss), as upstream does for the logits
        hidden_states = slice_logits_to_keep(hidden_states, logits_to_keep)

        loss, logits = loss_and_logits(self, hidden_states, labels, shift_labels, self.config.vocab_size, kwargs)

        # The output class is a step: a config binds its model's own (`MoeCausalLMOutputWithPast` for DeepSeek-V3),
        # and every other field of the decoder's output passes on as upstream passes it (cache, hidden states,
        # attentions, router logits).
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            **{name: value for name, value in outputs.items() if name != "last_hidden_state"},
        )


class LlamaForSequenceClassification(GenericForSequenceClassification, LlamaPreTrainedModel): ...


__all__ = [
    "LlamaForCausalLM",
    "LlamaModel",
    "LlamaPreTrainedModel",
    "LlamaForSequenceClassification",
]
