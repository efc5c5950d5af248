# ==============================================================================
# AUTO-GENERATED FILE - DO NOT EDIT DIRECTLY
# ==============================================================================
# Source: transformers.models.qwen2_vl.modeling_qwen2_vl
# Based on: transformers==5.25.0
# Config: models.qwen2_vl.qwen2_vl_cpu_patch_gen_config
# Regenerate: python -m patchgen.run_codegen models.qwen2_vl.qwen2_vl_cpu_patch_gen_config --diff
#
# Patches applied:
# - init_modification: Qwen2VLAttention [patch set ulysses_attention_with_position_ids.attention]
# - method_addition: Qwen2VLAttention.ulysses_forward [patch set ulysses_attention_with_position_ids.attention]
# - method_override: Qwen2VLAttention.forward [patch set ulysses_attention_with_position_ids.attention]
# - method_override: Qwen2VLTextModel.forward [patch set ulysses_whole_sequence_text_model.text_model]
# - module_code: shard_multimodal_batch
# - class_replacement: Qwen2VLRMSNorm [patch set torch_rms_norm.rms_norm]
# - function_replacement: apply_rotary_pos_emb [patch set torch_rope.rope]
# - function_replacement: apply_rotary_pos_emb_vision [patch set torch_vision_rope.vision_rope]
# - method_override: Qwen2VLForConditionalGeneration.forward [patch set multimodal_torch_linear_cross_entropy_vision_language_forward.conditional_generation]
# - method_override: Qwen2VLPreTrainedModel.is_custom_code [patch set native_model_code.pretrained_model]
# - extra import: from patchgen.runtime.losses import torch_linear_cross_entropy as linear_cross_entropy
# ==============================================================================
# Copyright 2024 The Qwen team, Alibaba Group and the HuggingFace Inc. team. All rights reserved.
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
"""PyTorch Qwen2-VL model."""

import itertools
from collections.abc import Callable, Mapping

import torch
import torch.nn as nn
from patchgen.runtime.config_checks import check_config_values
from patchgen.runtime.losses import torch_linear_cross_entropy as linear_cross_entropy
from patchgen.runtime.losses import use_fused_linear_cross_entropy
from patchgen.runtime.sequence_batch import FullSequence, SequenceShard, shard_batch
from patchgen.runtime.sequence_mask import gathered_sequence_attention_mask
from patchgen.runtime.sequence_parallel import (
    check_no_cached_tokens,
    check_sequence_parallel_inputs,
    head_to_sequence_shards,
    replicate_key_value_heads,
    sequence_parallel_enabled,
    sequence_parallel_rank,
    sequence_parallel_world_size,
    sequence_to_head_shards,
    ulysses_head_layout,
)
from torch.nn import LayerNorm

from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.generation import GenerationMixin
from transformers.integrations import use_kernel_forward_from_hub, use_kernelized_func
from transformers.masking_utils import create_causal_mask, create_sliding_window_causal_mask
from transformers.modeling_flash_attention_utils import FlashAttentionKwargs
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    BaseModelOutputWithPooling,
    MultimodalBaseModelOutputWithPast,
    MultimodalCausalLMOutputWithPast,
)
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS, dynamic_rope_update
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel, slice_logits_to_keep
from transformers.models.qwen2_vl.configuration_qwen2_vl import Qwen2VLConfig, Qwen2VLTextConfig, Qwen2VLVisionConfig
from transformers.processing_utils import Unpack
from transformers.utils import (
    TransformersKwargs,
    auto_docstring,
    can_return_tuple,
    logging,
    torch_compilable_check,
)
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import (
    accepts_precomputed_kwargs,
    get_max_seqlen,
    is_flash_attention_requested,
    merge_with_config_defaults,
)
from transformers.utils.output_capturing import capture_outputs
from transformers.vision_utils import get_vision_attention_seqlens, get_vision_position_ids


logger = logging.get_logger(__name__)


# ==============================================================================
# [ADDED] _rms_normalize
# Needed by: class_replacement Qwen2VLRMSNorm (patch set torch_rms_norm.rms_norm, applied at models/qwen2_vl/qwen2_vl_cpu_patch_gen_config.py:19)
# Patch source: patchgen/sets/kernels/torch_kernels.py:39
# ==============================================================================
def _rms_normalize(hidden_states: torch.Tensor, eps: float) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) over the last dimension."""
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return hidden_states * torch.rsqrt(variance + eps)


# ==============================================================================
# [PATCHED CLASS] Qwen2VLRMSNorm
# Reason: pure-torch RMSNorm with LigerRMSNorm's interface and 'llama' casting (CPU stand-in) [the text decoder's norms (the vision tower uses LayerNorm)]
# Patch source: patchgen/sets/kernels/torch_kernels.py:48 (patch set torch_rms_norm.rms_norm, applied at models/qwen2_vl/qwen2_vl_cpu_patch_gen_config.py:19)
# ==============================================================================
class Qwen2VLRMSNorm(nn.Module):
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


class Qwen2VLRotaryEmbedding(nn.Module):
    def __init__(self, config: Qwen2VLConfig):
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
        self.mrope_section = config.rope_parameters.get("mrope_section", [16, 24, 24])

    @staticmethod
    def compute_default_rope_parameters(config: Qwen2VLConfig, **kwargs) -> tuple[torch.Tensor, float]:
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

    @dynamic_rope_update
    def forward(self, x, position_ids):
        # In contrast to other models, Qwen2_VL has different position ids for the grids
        # So position_ids is broadcast to (3, bs, positions) and freqs has shape (3, bs, positions, dim // 2)
        position_ids = position_ids.expand(3, -1, -1)
        freqs = position_ids[..., None].float() * self.inv_freq.to(device=x.device, dtype=torch.float)
        cos = freqs.cos() * self.attention_scaling
        sin = freqs.sin() * self.attention_scaling

        sin = self.recomposition_frequencies(sin)
        cos = self.recomposition_frequencies(cos)
        return cos.to(dtype=x.dtype), sin.to(dtype=x.dtype)

    def recomposition_frequencies(self, freq):
        """
        Recompose the frequencies into the final spatial layout used per each grid.
        """
        freq = torch.cat([m[i % 3] for i, m in enumerate(freq.split(self.mrope_section, dim=-1))], dim=-1)
        return torch.cat((freq, freq), dim=-1)


# Copied from transformers.models.llama.modeling_llama.rotate_half
def rotate_half(x):
    """Rotates half the hidden dims of the input."""
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


# ==============================================================================
# [ADDED] _rotate_half
# Needed by: function_replacement apply_rotary_pos_emb (patch set torch_rope.rope, applied at models/qwen2_vl/qwen2_vl_cpu_patch_gen_config.py:20)
# Patch source: patchgen/sets/kernels/torch_kernels.py:157
# ==============================================================================
def _rotate_half(x):
    """Rotates half the hidden dims of the input (upstream's `rotate_half`)."""
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


# ==============================================================================
# [PATCHED FUNCTION] apply_rotary_pos_emb
# Reason: rope in fp32, cast back: the precision of Liger's rope kernel [the text decoder's rope (3-D sections folded into cos/sin)]
# Patch source: patchgen/sets/kernels/torch_kernels.py:165 (patch set torch_rope.rope, applied at models/qwen2_vl/qwen2_vl_cpu_patch_gen_config.py:20)
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
# [PATCHED FUNCTION] apply_rotary_pos_emb_vision
# Reason: rope of [seq, heads, head_dim] q/k with [seq, head_dim] cos/sin in fp32, cast back: Liger's vision wrapper in plain torch (CPU stand-in)
# Patch source: patchgen/sets/kernels/multimodal_kernels.py:95 (patch set torch_vision_rope.vision_rope, applied at models/qwen2_vl/qwen2_vl_cpu_patch_gen_config.py:21)
# ==============================================================================
def apply_rotary_pos_emb_vision(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary position embedding of vision q and k (one row of cos/sin per token, broadcast over heads), in fp32."""
    cos, sin = cos.unsqueeze(-2).to(torch.float32), sin.unsqueeze(-2).to(torch.float32)
    q32, k32 = q.to(torch.float32), k.to(torch.float32)
    q_embed = (q32 * cos) + (rotate_half(q32) * sin)
    k_embed = (k32 * cos) + (rotate_half(k32) * sin)
    return q_embed.to(q.dtype), k_embed.to(k.dtype)


class Qwen2VLVisionRotaryEmbedding(nn.Module):
    """
    Simple axial 2D rope with same freqs used for H and W grids. The freqs are
    pre-computed using `head-dim//4` which is later used to concat H and W positions.
    The final angles rotate over the whole head dim, no partial rotation involved.
    """

    def __init__(self, config: Qwen2VLVisionConfig):
        super().__init__()
        self.config = config

        self.rope_type = self.config.rope_parameters["rope_type"]
        rope_init_fn: Callable = self.compute_axial_rope_parameters
        if self.rope_type != "axial":
            raise ValueError(f"{self.__class__.__name__} supports only axial rope, but requested {self.rope_type}")
        inv_freq, self.attention_scaling = rope_init_fn(self.config)

        self.inv_freq = nn.Buffer(inv_freq, persistent=False)
        self.original_inv_freq = nn.Buffer(inv_freq.clone(), persistent=False)

    @staticmethod
    def compute_axial_rope_parameters(config: Qwen2VLVisionConfig, **kwargs) -> tuple[torch.Tensor, float]:
        """
        Computes the inverse frequencies according to the axial RoPE implementation
        Args:
            config ([`~transformers.PreTrainedConfig`]):
                The model configuration.
        Returns:
            Tuple of (`torch.Tensor`, `float`), containing the inverse frequencies for the RoPE embeddings and the
            post-processing scaling factor applied to the computed cos/sin (unused in this type of RoPE).
        """
        base = config.rope_parameters["rope_theta"]
        dim = getattr(config, "head_dim", None) or config.embed_dim // config.num_attention_heads
        spatial_dim = dim // 2

        attention_factor = 1.0  # Unused in this type of RoPE
        inv_freq = 1.0 / (base ** (torch.arange(0, spatial_dim, 2, dtype=torch.float) / spatial_dim))
        return inv_freq, attention_factor

    def forward(self, x, position_ids):
        # position_ids: (2, N) — row 0 = h coords, row 1 = w coords
        freqs = position_ids[..., None].float() * self.inv_freq.to(device=x.device, dtype=torch.float)
        cos = freqs.cos() * self.attention_scaling
        sin = freqs.sin() * self.attention_scaling

        cos = self.recomposition_frequencies(cos)
        sin = self.recomposition_frequencies(sin)
        return cos, sin

    def recomposition_frequencies(self, freq):
        """
        Recompose the frequencies into the final spatial layout used per each grid.
        """
        freq_h, freq_w = freq[:, 0], freq[:, 1]
        freq_hw = torch.cat([freq_h, freq_w], dim=-1)
        return torch.cat([freq_hw, freq_hw], dim=-1)


class PatchEmbed(nn.Module):
    def __init__(
        self,
        patch_size: int | list[int] | tuple[int, int] = 14,
        temporal_patch_size: int | list[int] | tuple[int, int] = 2,
        in_channels: int = 3,
        embed_dim: int = 1152,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.temporal_patch_size = temporal_patch_size
        self.in_channels = in_channels
        self.embed_dim = embed_dim

        kernel_size = [temporal_patch_size, patch_size, patch_size]
        self.proj = nn.Conv3d(in_channels, embed_dim, kernel_size=kernel_size, stride=kernel_size, bias=False)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        target_dtype = self.proj.weight.dtype
        hidden_states = hidden_states.view(
            -1, self.in_channels, self.temporal_patch_size, self.patch_size, self.patch_size
        )
        hidden_states = self.proj(hidden_states.to(dtype=target_dtype)).view(-1, self.embed_dim)
        return hidden_states


class PatchMerger(nn.Module):
    def __init__(self, dim: int, context_dim: int, spatial_merge_size: int = 2) -> None:
        super().__init__()
        self.hidden_size = context_dim * (spatial_merge_size**2)
        self.ln_q = LayerNorm(context_dim, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(self.hidden_size, self.hidden_size),
            nn.GELU(),
            nn.Linear(self.hidden_size, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mlp(self.ln_q(x).view(-1, self.hidden_size))
        return x


class VisionMlp(nn.Module):
    def __init__(self, dim: int, hidden_dim: int, hidden_act: str) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = ACT2FN[hidden_act]
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


# Copied from transformers.models.llama.modeling_llama.repeat_kv
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
    **kwargs,
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


class VisionAttention(nn.Module):
    def __init__(self, config: Qwen2VLVisionConfig) -> None:
        super().__init__()
        self.dim = config.embed_dim
        self.num_heads = config.num_heads
        self.head_dim = self.dim // self.num_heads
        self.num_key_value_groups = 1  # needed for eager attention
        self.qkv = nn.Linear(self.dim, self.dim * 3, bias=True)
        self.proj = nn.Linear(self.dim, self.dim)
        self.scaling = self.head_dim**-0.5
        self.config = config
        self.attention_dropout = 0.0
        self.is_causal = False

    def forward(
        self,
        hidden_states: torch.Tensor,
        cu_seqlens: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        max_seqlen: int | None = None,
        **kwargs,
    ) -> torch.Tensor:
        seq_length = hidden_states.shape[0]
        query_states, key_states, value_states = (
            self.qkv(hidden_states).reshape(seq_length, 3, self.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
        )
        cos, sin = position_embeddings
        query_states, key_states = apply_rotary_pos_emb_vision(query_states, key_states, cos, sin)

        query_states = query_states.transpose(0, 1).unsqueeze(0)
        key_states = key_states.transpose(0, 1).unsqueeze(0)
        value_states = value_states.transpose(0, 1).unsqueeze(0)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )

        if is_flash_attention_requested(self.config):
            # Flash Attention: Use cu_seqlens for variable length attention
            max_seqlen = get_max_seqlen(cu_seqlens, self.config, kwargs={"max_seqlen": max_seqlen})
            attn_output, _ = attention_interface(
                self,
                query_states,
                key_states,
                value_states,
                attention_mask=None,
                scaling=self.scaling,
                dropout=0.0 if not self.training else self.attention_dropout,
                cu_seq_lens_q=cu_seqlens,
                cu_seq_lens_k=cu_seqlens,
                max_length_q=max_seqlen,
                max_length_k=max_seqlen,
                is_causal=False,
                **kwargs,
            )
        else:
            # Other implementations: Process each chunk separately
            lengths = cu_seqlens[1:] - cu_seqlens[:-1]
            splits = [
                torch.split(tensor, lengths.tolist(), dim=2) for tensor in (query_states, key_states, value_states)
            ]

            attn_outputs = [
                attention_interface(
                    self,
                    q,
                    k,
                    v,
                    attention_mask=None,
                    scaling=self.scaling,
                    dropout=0.0 if not self.training else self.attention_dropout,
                    is_causal=False,
                    **kwargs,
                )[0]
                for q, k, v in zip(*splits)
            ]
            attn_output = torch.cat(attn_outputs, dim=1)

        attn_output = attn_output.reshape(seq_length, -1).contiguous()
        attn_output = self.proj(attn_output)
        return attn_output


class Qwen2VLVisionBlock(GradientCheckpointingLayer):
    def __init__(self, config, attn_implementation: str = "sdpa") -> None:
        super().__init__()
        self.norm1 = LayerNorm(config.embed_dim, eps=1e-6)
        self.norm2 = LayerNorm(config.embed_dim, eps=1e-6)
        mlp_hidden_dim = int(config.embed_dim * config.mlp_ratio)

        self.attn = VisionAttention(config=config)
        self.mlp = VisionMlp(dim=config.embed_dim, hidden_dim=mlp_hidden_dim, hidden_act=config.hidden_act)

    def forward(
        self,
        hidden_states: torch.Tensor,
        cu_seqlens: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs,
    ) -> torch.Tensor:
        hidden_states = hidden_states + self.attn(
            self.norm1(hidden_states),
            cu_seqlens=cu_seqlens,
            position_embeddings=position_embeddings,
            **kwargs,
        )
        hidden_states = hidden_states + self.mlp(self.norm2(hidden_states))
        return hidden_states


# Copied from transformers.models.qwen2.modeling_qwen2.Qwen2MLP
class Qwen2MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.hidden_size = config.hidden_size
        self.intermediate_size = config.intermediate_size
        self.gate_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.up_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.down_proj = nn.Linear(self.intermediate_size, self.hidden_size, bias=False)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x):
        down_proj = self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))
        return down_proj


# ==============================================================================
# [ADDED] separate_qkv_projection
# Needed by: method_addition Qwen2VLAttention.ulysses_forward (patch set ulysses_attention_with_position_ids.attention, applied at models/qwen2_vl/qwen2_vl_base_patch_gen_config.py:43)
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
# Needed by: method_addition Qwen2VLAttention.ulysses_forward (patch set ulysses_attention_with_position_ids.attention, applied at models/qwen2_vl/qwen2_vl_base_patch_gen_config.py:43)
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
# Needed by: method_addition Qwen2VLAttention.ulysses_forward (patch set ulysses_attention_with_position_ids.attention, applied at models/qwen2_vl/qwen2_vl_base_patch_gen_config.py:43)
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
# Needed by: method_addition Qwen2VLAttention.ulysses_forward (patch set ulysses_attention_with_position_ids.attention, applied at models/qwen2_vl/qwen2_vl_base_patch_gen_config.py:43)
# Patch source: patchgen/sets/attention/ulysses_attention.py:177
# ==============================================================================
def output_projection(self, attn_output: torch.Tensor, output_gate: torch.Tensor | None) -> torch.Tensor:
    """`o_proj` of the attention output (every family whose projection step returns no gate).

    Requires: `__init__` defines `o_proj`; the projection step bound with it returns no output gate.
    """
    return self.o_proj(attn_output)


# ==============================================================================
# [MODIFIED CLASS] Qwen2VLAttention
# Methods patched: __init__, ulysses_forward, forward
# - __init__ (init_modification)
#   Reason: fix the sequence-parallel head layout at construction
#   Patch source: patchgen/sets/attention/ulysses_attention.py:53 (patch set ulysses_attention_with_position_ids.attention, applied at models/qwen2_vl/qwen2_vl_base_patch_gen_config.py:43)
# - ulysses_forward (method_addition)
#   Reason: the shared Ulysses forward: all-to-alls around the attention call (ulysses_attention.py)
#   Patch source: patchgen/sets/attention/ulysses_attention.py:204 (patch set ulysses_attention_with_position_ids.attention, applied at models/qwen2_vl/qwen2_vl_base_patch_gen_config.py:43)
# - forward (method_override)
#   Reason: upstream's parameters, handed to the shared Ulysses forward
#   Patch source: patchgen/sets/attention/ulysses_multimodal.py:280 (patch set ulysses_attention_with_position_ids.attention, applied at models/qwen2_vl/qwen2_vl_base_patch_gen_config.py:43)
# ==============================================================================
@use_kernelized_func(apply_rotary_pos_emb)
class Qwen2VLAttention(nn.Module):
    """
    Multi-headed attention from 'Attention Is All You Need' paper. Modified to use sliding window attention: Longformer
    and "Generating Long Sequences with Sparse Transformers".
    """

    def __init__(self, config: Qwen2VLTextConfig, layer_idx: int | None = None):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        if layer_idx is None:
            logger.warning_once(
                f"Instantiating {self.__class__.__name__} without passing `layer_idx` is not recommended and will "
                "to errors during the forward call, if caching is used. Please make sure to provide a `layer_idx` "
                "when creating this class."
            )

        self.hidden_size = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = self.hidden_size // self.num_heads
        self.num_key_value_heads = config.num_key_value_heads
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads
        self.is_causal = True
        self.attention_dropout = config.attention_dropout
        self.rope_parameters = config.rope_parameters
        self.scaling = self.head_dim**-0.5

        if (self.head_dim * self.num_heads) != self.hidden_size:
            raise ValueError(
                f"hidden_size must be divisible by num_heads (got `hidden_size`: {self.hidden_size}"
                f" and `num_heads`: {self.num_heads})."
            )
        self.q_proj = nn.Linear(self.hidden_size, self.num_heads * self.head_dim, bias=True)
        self.k_proj = nn.Linear(self.hidden_size, self.num_key_value_heads * self.head_dim, bias=True)
        self.v_proj = nn.Linear(self.hidden_size, self.num_key_value_heads * self.head_dim, bias=True)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, self.hidden_size, bias=False)
        self.layer_type = config.layer_types[layer_idx] if hasattr(config, "layer_types") else None
        self.sliding_window = config.sliding_window if self.layer_type == "sliding_attention" else None
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

    # [PATCHED METHOD] Qwen2VLAttention.forward: see the banner above the class
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs: Unpack[FlashAttentionKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        # Upstream's parameters, in upstream's order (position_ids second: flash attention finds packed documents in
        # them); the shared Ulysses forward takes them through **kwargs, as it hands them to the attention function.
        return self.ulysses_forward(
            hidden_states, position_embeddings, attention_mask, cache, position_ids=position_ids, **kwargs
        )

    # [ADDED METHOD] Qwen2VLAttention.ulysses_forward: new method, see the banner above
    def ulysses_forward(
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


class Qwen2VLDecoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: Qwen2VLTextConfig, layer_idx: int):
        super().__init__()
        self.hidden_size = config.hidden_size

        if config.use_sliding_window and not is_flash_attention_requested(config):
            logger.warning_once(
                f"Sliding Window Attention is enabled but not implemented for `{config._attn_implementation}`; "
                "unexpected results may be encountered."
            )
        self.self_attn = Qwen2VLAttention(config, layer_idx)

        self.mlp = Qwen2MLP(config)
        self.input_layernorm = Qwen2VLRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = Qwen2VLRMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = False,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs: Unpack[FlashAttentionKwargs],
    ) -> torch.Tensor:
        """
        Args:
            hidden_states (`torch.Tensor`): input to the layer of shape `(batch, seq_len, embed_dim)`
            attention_mask (`torch.Tensor`, *optional*): attention mask of size
                `(batch, sequence_length)` where padding elements are indicated by 0.
            use_cache (`bool`, *optional*):
                If set to `True`, `cache` key value states are returned and can be used to speed up decoding
                (see `cache`).
            cache (`Cache`, *optional*): cached past key and value projection states
            position_embeddings (`tuple[torch.Tensor, torch.Tensor]`, *optional*):
                Tuple containing the cosine and sine positional embeddings of shape `(batch_size, seq_len, head_dim)`,
                with `head_dim` being the embedding dimension of each attention head.
            kwargs (`dict`, *optional*):
                Arbitrary kwargs to be ignored, used for FSDP and other methods that injects code
                into the model
        """

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
# [MODIFIED CLASS] Qwen2VLPreTrainedModel
# Methods patched: is_custom_code
# - is_custom_code (method_override)
#   Reason: this file is transformers' modeling code with patches: initialise weights, convert checkpoints and read layer types as for the stock classes (outside the transformers package they count as custom code); applied by the generator to every class deriving from PreTrainedModel
#   Patch source: patchgen/load/native_code.py:43 (patch set native_model_code.pretrained_model, applied at patchgen/load/native_code.py:48)
# ==============================================================================
@auto_docstring
class Qwen2VLPreTrainedModel(PreTrainedModel):
    config: Qwen2VLConfig
    base_model_prefix = "model"
    input_modalities = ("image", "video", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["Qwen2VLDecoderLayer", "Qwen2VLVisionBlock"]
    _supports_flash_attn = True
    _supports_sdpa = True

    _can_compile_fullgraph = True
    _supports_attention_backend = True

    # [ADDED METHOD] Qwen2VLPreTrainedModel.is_custom_code: overrides the inherited one, see the banner above
    @classmethod
    def is_custom_code(cls) -> bool:
        """Custom only when loaded from the hub, as the stock class (its module is outside `transformers.`)."""
        return cls.is_remote_code()


@auto_docstring
class Qwen2VisionTransformerPretrainedModel(Qwen2VLPreTrainedModel):
    config: Qwen2VLVisionConfig
    input_modalities = ("image", "video")
    _no_split_modules = ["Qwen2VLVisionBlock"]
    _input_embed_layer = "patch_embed"
    _can_record_outputs = {
        "hidden_states": Qwen2VLVisionBlock,
        "attentions": VisionAttention,
    }

    def __init__(self, config: Qwen2VLVisionConfig) -> None:
        super().__init__(config)
        self.spatial_merge_size = config.spatial_merge_size

        self.patch_embed = PatchEmbed(
            patch_size=config.patch_size,
            temporal_patch_size=config.temporal_patch_size,
            in_channels=config.in_channels,
            embed_dim=config.embed_dim,
        )

        self.rotary_pos_emb = Qwen2VLVisionRotaryEmbedding(config)
        self.blocks = nn.ModuleList([Qwen2VLVisionBlock(config) for _ in range(config.depth)])
        self.merger = PatchMerger(
            dim=config.hidden_size, context_dim=config.embed_dim, spatial_merge_size=config.spatial_merge_size
        )
        self.gradient_checkpointing = False

        self.post_init()

    def get_dtype(self) -> torch.dtype:
        return self.blocks[0].mlp.fc2.weight.dtype

    def get_device(self) -> torch.device:
        return self.blocks[0].mlp.fc2.weight.device

    @merge_with_config_defaults
    @capture_outputs
    @auto_docstring
    def forward(
        self, hidden_states: torch.Tensor, grid_thw: torch.Tensor, **kwargs: Unpack[TransformersKwargs]
    ) -> torch.Tensor:
        r"""
        grid_thw (`torch.LongTensor` of shape `(num_images, 3)`):
            The temporal, height and width dimensions of feature shape for each image. Each row contains [t, h, w] values.
        """
        position_ids = get_vision_position_ids(grid_thw, self.spatial_merge_size, kwargs=kwargs)
        cu_seqlens, max_seqlen = get_vision_attention_seqlens(grid_thw, self.config, kwargs=kwargs)

        hidden_states = self.patch_embed(hidden_states)
        position_embeddings = self.rotary_pos_emb(hidden_states, position_ids)

        for blk in self.blocks:
            hidden_states = blk(
                hidden_states,
                cu_seqlens=cu_seqlens,
                max_seqlen=max_seqlen,
                position_embeddings=position_embeddings,
                **kwargs,
            )

        merged_hidden_states = self.merger(hidden_states)

        return BaseModelOutputWithPooling(
            last_hidden_state=hidden_states,
            pooler_output=merged_hidden_states,
        )


# ==============================================================================
# [ADDED] this_ranks_tokens
# Needed by: method_override Qwen2VLTextModel.forward (patch set ulysses_whole_sequence_text_model.text_model, applied at models/qwen2_vl/qwen2_vl_base_patch_gen_config.py:53)
# Patch source: patchgen/sets/attention/ulysses_multimodal.py:99
# ==============================================================================
def this_ranks_tokens(
    input_ids: torch.LongTensor | None,
    attention_mask: torch.Tensor | None,
    position_ids: torch.LongTensor | None,
    inputs_embeds: torch.Tensor | None,
    kwargs: dict,
) -> tuple[torch.LongTensor | None, torch.Tensor | None, torch.LongTensor | None, torch.Tensor | None]:
    """This rank's slice of the text model's sequence inputs.

    The inputs pass unchanged without SP (no `full_sequence` in `kwargs`); a shard of the sequence (a text-only batch
    sharded by `shard_batch`) keeps its tokens and must carry their global positions.
    """
    full_sequence = kwargs.get("full_sequence")
    tokens = inputs_embeds if inputs_embeds is not None else input_ids
    if full_sequence is not None and tokens is not None:
        whole = whole_sequence_length(full_sequence, tokens.shape[1])
        if whole:
            if position_ids is None:  # upstream's default, for the whole sequence (no cache under SP)
                position_ids = torch.arange(whole, device=tokens.device).view(1, 1, -1).expand(3, tokens.shape[0], -1)
            local = local_tokens(whole)
            input_ids = None if input_ids is None else input_ids[:, local]
            inputs_embeds = None if inputs_embeds is None else inputs_embeds[:, local]
            attention_mask = None if attention_mask is None else attention_mask[:, local]
            position_ids = position_ids[..., local]  # [batch, seq] or [3 or 4 rope rows, batch, seq]
        else:
            # a shard of the sequence: its rope needs the global positions of its tokens
            check_sequence_parallel_inputs(position_ids, None, computes_loss=False)
    return input_ids, attention_mask, position_ids, inputs_embeds


# ==============================================================================
# [ADDED] whole_sequence_length
# Needed by: method_override Qwen2VLTextModel.forward (patch set ulysses_whole_sequence_text_model.text_model, applied at models/qwen2_vl/qwen2_vl_base_patch_gen_config.py:53) (via helper this_ranks_tokens)
# Patch source: patchgen/sets/attention/ulysses_multimodal.py:179
# ==============================================================================
def whole_sequence_length(full_sequence, length: int) -> int:
    """The sequence length when `length` tokens are the whole sequence, 0 when they are this rank's shard."""
    whole = full_sequence.position_ids.shape[-1]
    world_size = sequence_parallel_world_size()
    if length == whole:
        return whole
    if length * world_size == whole:
        return 0
    raise ValueError(
        f"sequence parallelism: the model got {length} tokens, neither the whole sequence ({whole}) nor one of "
        f"{world_size} shards of it; pass the batch that shard_multimodal_batch returns"
    )


# ==============================================================================
# [ADDED] documents_of_four_row_positions
# Needed by: method_override Qwen2VLTextModel.forward (patch set ulysses_whole_sequence_text_model.text_model, applied at models/qwen2_vl/qwen2_vl_base_patch_gen_config.py:53)
# Patch source: patchgen/sets/attention/ulysses_multimodal.py:193
# ==============================================================================
def documents_of_four_row_positions(full_sequence: FullSequence, position_ids: torch.Tensor | None) -> FullSequence:
    """The whole batch's layout for the attention after the all-to-all, read as Qwen2-VL and Qwen2.5-VL read positions.

    Upstream keeps packed documents apart only when given its packed layout, `[4, batch, seq]` positions whose
    first row restarts per document (`Qwen2_5_VLTextModel.forward`: "text_position_ids"); with `[batch, seq]` or 3
    rope rows its attention crosses documents (no mask from positions, none to flash attention). So do the gathered
    sequence's: with any other layout its documents are dropped, its padding kept.
    """
    if position_ids is not None and position_ids.dim() == 3 and position_ids.shape[0] == 4:
        return full_sequence
    return without_documents(full_sequence)


# ==============================================================================
# [ADDED] without_documents
# Needed by: method_override Qwen2VLTextModel.forward (patch set ulysses_whole_sequence_text_model.text_model, applied at models/qwen2_vl/qwen2_vl_base_patch_gen_config.py:53) (via helper documents_of_four_row_positions)
# Patch source: patchgen/sets/attention/ulysses_multimodal.py:218
# ==============================================================================
def without_documents(full_sequence: FullSequence) -> FullSequence:
    """The whole batch's layout with its packed documents dropped (one document per row), its padding kept."""
    batch_size, length = full_sequence.position_ids.shape
    whole = torch.arange(length, device=full_sequence.position_ids.device).expand(batch_size, length)
    return FullSequence(whole, None, full_sequence.attention_mask)


# ==============================================================================
# [ADDED] local_tokens
# Needed by: method_override Qwen2VLTextModel.forward (patch set ulysses_whole_sequence_text_model.text_model, applied at models/qwen2_vl/qwen2_vl_base_patch_gen_config.py:53) (via helper this_ranks_tokens)
# Patch source: patchgen/sets/attention/ulysses_multimodal.py:231
# ==============================================================================
def local_tokens(whole: int) -> slice:
    """This rank's `whole/P` consecutive tokens of a sequence of `whole` tokens."""
    world_size, rank = sequence_parallel_world_size(), sequence_parallel_rank()
    return slice(rank * whole // world_size, (rank + 1) * whole // world_size)


# ==============================================================================
# [MODIFIED CLASS] Qwen2VLTextModel
# Methods patched: forward
# - forward (method_override)
#   Reason: under sequence parallelism, keep this rank's slice of the whole sequence (image features merged, 3-D rope positions computed over all of it), then run upstream's forward
#   Patch source: patchgen/sets/attention/ulysses_multimodal.py:71 (patch set ulysses_whole_sequence_text_model.text_model, applied at models/qwen2_vl/qwen2_vl_base_patch_gen_config.py:53)
#   Upstream's original kept as: upstream_forward
# ==============================================================================
@auto_docstring
class Qwen2VLTextModel(Qwen2VLPreTrainedModel):
    config: Qwen2VLTextConfig
    input_modalities = ("text",)
    _can_record_outputs = {
        "hidden_states": Qwen2VLDecoderLayer,
        "attentions": Qwen2VLAttention,
    }

    def __init__(self, config: Qwen2VLTextConfig):
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.vocab_size = config.vocab_size

        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList(
            [Qwen2VLDecoderLayer(config, layer_idx) for layer_idx in range(config.num_hidden_layers)]
        )
        self._attn_implementation = config._attn_implementation
        self.norm = Qwen2VLRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.has_sliding_layers = "sliding_attention" in self.config.layer_types
        self.rotary_emb = Qwen2VLRotaryEmbedding(config=config)

        self.gradient_checkpointing = False
        # Initialize weights and apply final processing
        self.post_init()

    # [KEPT ORIGINAL] upstream's Qwen2VLTextModel.forward, as upstream_forward, for method_override Qwen2VLTextModel.forward (patch set ulysses_whole_sequence_text_model.text_model, applied at models/qwen2_vl/qwen2_vl_base_patch_gen_config.py:53)
    @merge_with_config_defaults
    @capture_outputs
    @auto_docstring
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def upstream_forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Unpack[FlashAttentionKwargs],
    ) -> BaseModelOutputWithPast:
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")

        # torch.jit.trace() doesn't support cache objects in the output
        if use_cache and cache is None and not torch.jit.is_tracing():
            cache = DynamicCache(config=self.config)

        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)

        # the hard coded `3` is for temporal, height and width.
        if position_ids is None:
            past_seen_tokens = cache.get_seq_length() if cache is not None else 0
            position_ids = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + past_seen_tokens
            position_ids = position_ids.view(1, 1, -1).expand(3, inputs_embeds.shape[0], -1)
        elif position_ids.ndim == 2:
            position_ids = position_ids[None, ...].expand(3, position_ids.shape[0], -1)

        # NOTE: we need to pass text position ids for packing. Qwen2-VL uses 3D positions
        # where each dim indicates visual spatial positions for temporal/height/width grids.
        # There are two scenarios when FA2-like packed masking might be activated.
        # 1. User specifically passed packed `position_ids` and no attention mask.
        #    In this case we expect the user to create correct position ids for all 3 grids
        #    and prepend text-only position ids to it. The final tensor will be [4, bs, seq-len]
        # 2. User runs forward with no attention mask and no position ids. In this case, position ids
        #    are prepared by the model (`get_rope_index`) as `[4, bs, seq-len]` tensor. Text-only positions are
        #    prepended by us when creating positions so that the mask is constructed correctly. NOTE: failing to pass
        #    text-only positions will cause incorrect mask construction, do not change `prepare_input_for_generation`
        if position_ids.ndim == 3 and position_ids.shape[0] == 4:
            text_position_ids = position_ids[0]
            position_ids = position_ids[1:]
        else:
            # If inputs are not packed (usual 3D positions), do not prepare mask from position_ids
            text_position_ids = None

        # It may already have been prepared by e.g. `generate`
        if not isinstance(causal_mask_mapping := attention_mask, dict):
            # Prepare mask arguments
            mask_kwargs = {
                "config": self.config,
                "inputs_embeds": inputs_embeds,
                "attention_mask": attention_mask,
                "cache": cache,
                "position_ids": text_position_ids,
            }
            # Create the masks
            causal_mask_mapping = {
                "full_attention": create_causal_mask(**mask_kwargs),
            }
            # The sliding window alternating layers are not always activated depending on the config
            if self.has_sliding_layers:
                causal_mask_mapping["sliding_attention"] = create_sliding_window_causal_mask(**mask_kwargs)

        hidden_states = inputs_embeds
        position_embeddings = self.rotary_emb(hidden_states, position_ids)

        for i, decoder_layer in enumerate(self.layers):
            hidden_states = decoder_layer(
                hidden_states,
                attention_mask=causal_mask_mapping[self.config.layer_types[i]],
                position_embeddings=position_embeddings,
                position_ids=text_position_ids,
                cache=cache,
                use_cache=use_cache,
                **kwargs,
            )

        hidden_states = self.norm(hidden_states)

        return BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            cache=cache,
        )

    # [PATCHED METHOD] Qwen2VLTextModel.forward: see the banner above the class
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Unpack[FlashAttentionKwargs],
    ) -> BaseModelOutputWithPast:
        # Sequence parallelism: the whole sequence arrives here (images merged, 3-D positions computed over all of it);
        # this rank keeps its seq/P tokens of every sequence tensor. Without SP, or given a shard, nothing changes.
        input_ids, attention_mask, position_ids, inputs_embeds = this_ranks_tokens(
            input_ids, attention_mask, position_ids, inputs_embeds, kwargs
        )
        if (
            kwargs.get("full_sequence") is not None
        ):  # the whole batch's documents, as upstream reads them from positions
            kwargs["full_sequence"] = documents_of_four_row_positions(kwargs["full_sequence"], position_ids)
        return self.upstream_forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )


@auto_docstring
class Qwen2VLModel(Qwen2VLPreTrainedModel):
    base_model_prefix = "model"
    # Reference: fix gemma3 grad acc #37208
    accepts_loss_kwargs = False

    def __init__(self, config: Qwen2VLConfig):
        super().__init__(config)
        self.visual = Qwen2VisionTransformerPretrainedModel._from_config(config.vision_config)
        self.language_model = Qwen2VLTextModel._from_config(config.text_config)
        self.rope_deltas = None  # cache rope_deltas here

        # Initialize weights and apply final processing
        self.post_init()

    def get_vision_position_ids(
        self,
        start_position: int,
        grid_thw: list[int, int, int] | torch.Tensor,
        temp_merge_size: int = 1,
        spatial_merge_size: int = 1,
        time_interval: float | torch.Tensor = 1.0,
        device: str | torch.device | None = None,
    ):
        """
        Compute 3D positional indices for vision tokens derived from a single image or video input.

        The positions are generated from the input grid defined by temporal (T), height (H), and
        width (W) dimensions. Temporal and spatial dimensions can be downscaled according to the
        merge sizes used in the vision backbone. The resulting positions are offset by `start_position`.

        Args:
            start_position (`int`):
                Offset added to all computed positional indices.
            grid_thw (`Sequence[int]` or `torch.Tensor` of shape `(3,)`):
                The (T, H, W) grid representing the feature layout of the current image or video after patch embedding.
            temp_merge_size (`int`, *optional*):
                Factor by which the temporal dimension is reduced in the backbone. The temporal grid size is divided
                by this value. Defaults to 1.
            spatial_merge_size (`int`, *optional*):
                Factor by which the spatial dimensions (H and W) are reduced in the backbone. Both H and W are divided
                by this value. Defaults to 1.
            time_interval (`float` or scalar `torch.Tensor`, *optional*, defaults to 1.0):
                Spacing factor applied before quantizing temporal position indices.
            device (`str` or `torch.device`, *optional*):
                Device on which the resulting tensor is allocated. If `None`, uses the current default device.

        Returns:
            torch.LongTensor of shape (3, sequence_length):
                Positional indices for temporal, height, and width dimensions,
                flattened into sequence form and offset by `start_position`.
        """
        llm_grid_t, llm_grid_h, llm_grid_w = (
            grid_thw[0].item() // temp_merge_size,
            grid_thw[1].item() // spatial_merge_size,
            grid_thw[2].item() // spatial_merge_size,
        )

        position_temporal = (torch.arange(llm_grid_t, device=device) * time_interval).long()
        position_height = torch.arange(llm_grid_h, device=device) + start_position
        position_width = torch.arange(llm_grid_w, device=device) + start_position

        T_grid, H_grid, W_grid = torch.meshgrid(position_temporal, position_height, position_width, indexing="ij")
        vision_position_ids = torch.stack([T_grid, H_grid, W_grid], dim=0).reshape(3, -1)
        vision_position_ids[0] += start_position  # must be after time_interval multiply
        return vision_position_ids

    def get_rope_index(
        self,
        input_ids: torch.LongTensor,
        mm_token_type_ids: torch.IntTensor,
        image_grid_thw: torch.LongTensor | None = None,
        video_grid_thw: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Calculate the 3D rope index based on image and video's sizes. The utility expects a `vision + text`
        sequence and will error out otherwise. For pure text sequence, please rely on model's auto-inferred
        position ids. In a mixed vision + text sequence, vision tokens use 3D RoPE (temporal, height, width)
        while text tokens use standard 1D RoPE.

        Example:
            Temporal patches: 3; Height patches: 2; Width patches: 2
            Each vision input results in (temporal x height × width) positions. Here: 3 x 2 × 2 = 12 positions total.

            Temporal position IDs are spaced by:
                `interval = tokens_per_second * temporal_patch_size / fps`

                If fps = 1; tokens_per_second = 25; temporal_patch_size = 2, temporal IDs increase by 50 for each temporal patch:
                `[0, 0, 0, 0, 50, 50, 50, 50, 100, 100, 100, 100]`

            Height IDs repeat per row: `[0, 0, 1, 1, ...]`
            Width IDs alternate per column: `[0, 1, 0, 1, ...]`
            Text tokens follow standard 1D RoPE and the position IDs grow consequently with a step of `1`

        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
                Indices of input sequence tokens in the vocabulary. Padding will be ignored by default should you provide
                it.
            mm_token_type_ids (`torch.IntTensor` of shape `(batch_size, sequence_length)`):
                Token type ids matching each modality to a different value in the input sequence, i.e. text (0), image (1), video (2).
            image_grid_thw (`torch.LongTensor` of shape `(num_images, 3)`, *optional*):
                The temporal, height and width of feature shape of each image in LLM.
            video_grid_thw (`torch.LongTensor` of shape `(num_videos, 3)`, *optional*):
                The temporal, height and width of feature shape of each video in LLM.
            attention_mask (`torch.Tensor` of shape `(batch_size, sequence_length)`, *optional*):
                Mask to avoid performing attention on padding token indices. Mask values selected in `[0, 1]`:

                - 1 for tokens that are **not masked**,
                - 0 for tokens that are **masked**.

        Returns:
            position_ids (`torch.LongTensor` of shape `(3, batch_size, sequence_length)`)
            mrope_position_deltas (`torch.Tensor` of shape `(batch_size)`)
        """
        spatial_merge_size = self.config.vision_config.spatial_merge_size

        mrope_position_deltas = []
        position_ids = torch.zeros(
            3,
            input_ids.shape[0],
            input_ids.shape[1],
            dtype=input_ids.dtype,
            device=input_ids.device,
        )
        grid_iters = {
            1: iter(image_grid_thw) if image_grid_thw is not None else None,
            2: iter(video_grid_thw) if video_grid_thw is not None else None,
        }

        for batch_idx, current_input_ids in enumerate(input_ids):
            input_token_type = mm_token_type_ids[batch_idx]
            if attention_mask is not None:
                current_input_ids = current_input_ids[attention_mask[batch_idx].bool()]
                input_token_type = input_token_type[attention_mask[batch_idx].bool()]

            input_type_group = []
            for key, group in itertools.groupby(enumerate(input_token_type.tolist()), lambda x: x[1]):
                group = list(group)
                start_index = group[0][0]
                end_index = group[-1][0] + 1
                input_type_group.append((key, start_index, end_index))

            current_pos = 0
            llm_pos_ids_list = []
            for modality_type, start_idx, end_idx in input_type_group:
                # text == 0
                if modality_type == 0:
                    text_len = end_idx - start_idx
                    llm_pos_ids_list.append(
                        torch.arange(text_len, device=input_ids.device).view(1, -1).expand(3, -1) + current_pos
                    )
                    current_pos += text_len
                # image == 1, video == 2
                else:
                    grid_thw = next(grid_iters[modality_type])
                    vision_position_ids = self.get_vision_position_ids(
                        current_pos, grid_thw, 1, spatial_merge_size, device=input_ids.device
                    )
                    llm_pos_ids_list.append(vision_position_ids)
                    current_pos += max(grid_thw[1], grid_thw[2]) // spatial_merge_size
            llm_positions = torch.cat(llm_pos_ids_list, dim=1).reshape(3, -1)
            if attention_mask is not None:
                position_ids[:, batch_idx, attention_mask[batch_idx].bool()] = llm_positions.to(position_ids.device)
            else:
                position_ids[:, batch_idx] = llm_positions.to(position_ids.device)
            mrope_position_deltas.append(llm_positions.max() + 1 - len(current_input_ids))
        mrope_position_deltas = torch.tensor(mrope_position_deltas, device=input_ids.device).unsqueeze(1)
        return position_ids, mrope_position_deltas

    @accepts_precomputed_kwargs(modality="video")
    @can_return_tuple
    @auto_docstring
    def get_video_features(
        self,
        pixel_values_videos: torch.Tensor,
        video_grid_thw: torch.LongTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple | BaseModelOutputWithPooling:
        pixel_values_videos = pixel_values_videos.type(self.visual.dtype)
        vision_outputs = self.visual(pixel_values_videos, grid_thw=video_grid_thw, **kwargs)
        split_sizes = (video_grid_thw.prod(-1) // self.visual.spatial_merge_size**2).tolist()
        vision_outputs.pooler_output = torch.split(vision_outputs.pooler_output, split_sizes)

        return vision_outputs

    @accepts_precomputed_kwargs(modality="image")
    @can_return_tuple
    @auto_docstring
    def get_image_features(
        self,
        pixel_values: torch.Tensor,
        image_grid_thw: torch.LongTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple | BaseModelOutputWithPooling:
        pixel_values = pixel_values.type(self.visual.dtype)
        vision_outputs = self.visual(pixel_values, grid_thw=image_grid_thw, **kwargs)
        split_sizes = (image_grid_thw.prod(-1) // self.visual.spatial_merge_size**2).tolist()
        vision_outputs.pooler_output = torch.split(vision_outputs.pooler_output, split_sizes)

        return vision_outputs

    def get_placeholder_mask(
        self,
        input_ids: torch.LongTensor,
        inputs_embeds: torch.Tensor,
        image_features: torch.Tensor | None = None,
        video_features: torch.Tensor | None = None,
    ):
        """
        Obtains multimodal placeholder mask from `input_ids` or `inputs_embeds`, and checks that the placeholder token count is
        equal to the length of multimodal features. If the lengths are different, an error is raised.
        """
        if input_ids is None:
            special_image_mask = inputs_embeds == self.get_input_embeddings()(
                torch.full((), self.config.image_token_id, dtype=torch.long, device=inputs_embeds.device)
            )
            special_image_mask = special_image_mask.all(-1)
            special_video_mask = inputs_embeds == self.get_input_embeddings()(
                torch.full((), self.config.video_token_id, dtype=torch.long, device=inputs_embeds.device)
            )
            special_video_mask = special_video_mask.all(-1)
        else:
            special_image_mask = input_ids == self.config.image_token_id
            special_video_mask = input_ids == self.config.video_token_id

        n_image_tokens = special_image_mask.sum()
        special_image_mask = special_image_mask.unsqueeze(-1).to(inputs_embeds.device)
        if image_features is not None:
            torch_compilable_check(
                n_image_tokens * inputs_embeds.shape[-1] == image_features.numel(),
                f"Image features and image tokens do not match, tokens: {n_image_tokens}, features: {image_features.shape[0]}",
            )

        n_video_tokens = special_video_mask.sum()
        special_video_mask = special_video_mask.unsqueeze(-1).to(inputs_embeds.device)
        if video_features is not None:
            torch_compilable_check(
                n_video_tokens * inputs_embeds.shape[-1] == video_features.numel(),
                f"Video features and video tokens do not match, tokens: {n_video_tokens}, features: {video_features.shape[0]}",
            )
        return special_image_mask, special_video_mask

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def compute_3d_position_ids(
        self,
        input_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        image_grid_thw: torch.Tensor | None = None,
        video_grid_thw: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: torch.Tensor | None = None,
        mm_token_type_ids: torch.IntTensor | None = None,
    ) -> torch.Tensor | None:
        cache_length = 0 if cache is None else cache.get_seq_length()
        has_multimodal = image_grid_thw is not None or video_grid_thw is not None
        if has_multimodal and mm_token_type_ids is None and input_ids is not None:
            raise ValueError(
                "Multimodal data was passed (via `image_grid_thw` or `video_grid_thw`) but `mm_token_type_ids` is "
                "missing. Please pass `mm_token_type_ids` to the model so that multimodal RoPE (M-RoPE) can be "
                "computed correctly. `mm_token_type_ids` is returned by the processor alongside `input_ids`."
            )
        can_compute_mrope = input_ids is not None and mm_token_type_ids is not None and has_multimodal

        if can_compute_mrope and (self.rope_deltas is None or cache_length == 0):
            position_ids, rope_deltas = self.get_rope_index(
                input_ids,
                image_grid_thw=image_grid_thw,
                video_grid_thw=video_grid_thw,
                attention_mask=attention_mask,
                mm_token_type_ids=mm_token_type_ids,
            )
            self.rope_deltas = rope_deltas
        # Use pre-calculated rope-deltas to infer correct 3D position ids during incremental
        # generation (cache_length > 0) or when only inputs_embeds is provided (no input_ids
        # to recompute from). Skip when input_ids is provided without cache to avoid shape
        # mismatches from stale rope_deltas (e.g., training forward pass after generation).
        elif self.rope_deltas is not None and (cache_length > 0 or input_ids is None):
            batch_size, seq_length, _ = inputs_embeds.shape
            if attention_mask is not None:
                position_ids = attention_mask.long().cumsum(-1) - 1
                position_ids = position_ids.masked_fill(attention_mask == 0, 0)
                position_ids = position_ids.view(1, batch_size, -1).repeat(3, 1, 1).to(inputs_embeds.device)
            else:
                position_ids = torch.arange(cache_length, cache_length + seq_length)
                position_ids = position_ids.view(1, 1, -1).expand(3, batch_size, -1).to(inputs_embeds.device)
            delta = self.rope_deltas.repeat_interleave(batch_size // self.rope_deltas.shape[0], dim=0)
            position_ids = position_ids + delta.to(device=inputs_embeds.device)
        else:
            # Can't build correct 3D positions. Let the model infer it
            position_ids = None
        return position_ids

    @can_return_tuple
    @auto_docstring
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        pixel_values: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        image_grid_thw: torch.LongTensor | None = None,
        video_grid_thw: torch.LongTensor | None = None,
        mm_token_type_ids: torch.IntTensor | None = None,
        mm_encoder_outputs: dict[str, BaseModelOutputWithPooling] | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple | BaseModelOutputWithPast:
        if (pixel_values is not None or pixel_values_videos is not None) and mm_encoder_outputs is not None:
            raise ValueError(
                "You cannot specify both pixel_values/pixel_values_videos and mm_encoder_outputs at the same time"
            )

        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)

        mm_encoder_outputs = mm_encoder_outputs if mm_encoder_outputs is not None else {}
        if mm_encoder_outputs.get("image") is None and pixel_values is not None:
            mm_encoder_outputs["image"] = self.get_image_features(
                pixel_values, image_grid_thw, return_dict=True, **kwargs
            )

        if mm_encoder_outputs.get("video") is None and pixel_values_videos is not None:
            mm_encoder_outputs["video"] = self.get_video_features(
                pixel_values_videos, video_grid_thw, return_dict=True, **kwargs
            )

        if mm_encoder_outputs.get("image") is not None:
            image_embeds = torch.cat(mm_encoder_outputs["image"].pooler_output, dim=0).to(
                inputs_embeds.device, inputs_embeds.dtype
            )
            image_mask, _ = self.get_placeholder_mask(
                input_ids, inputs_embeds=inputs_embeds, image_features=image_embeds
            )
            inputs_embeds = inputs_embeds.masked_scatter(image_mask, image_embeds)

        if mm_encoder_outputs.get("video") is not None:
            video_embeds = torch.cat(mm_encoder_outputs["video"].pooler_output, dim=0).to(
                inputs_embeds.device, inputs_embeds.dtype
            )
            _, video_mask = self.get_placeholder_mask(
                input_ids, inputs_embeds=inputs_embeds, video_features=video_embeds
            )
            inputs_embeds = inputs_embeds.masked_scatter(video_mask, video_embeds)

        if position_ids is None:
            position_ids = self.compute_3d_position_ids(
                input_ids=input_ids,
                image_grid_thw=image_grid_thw,
                video_grid_thw=video_grid_thw,
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                cache=cache,
                mm_token_type_ids=mm_token_type_ids,
            )

        outputs = self.language_model(
            input_ids=None,
            position_ids=position_ids,
            attention_mask=attention_mask,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        return MultimodalBaseModelOutputWithPast(
            **outputs, image_outputs=mm_encoder_outputs.get("image"), video_outputs=mm_encoder_outputs.get("video")
        )


# ==============================================================================
# [ADDED] check_loss_inputs
# Needed by: method_override Qwen2VLForConditionalGeneration.forward (patch set multimodal_torch_linear_cross_entropy_vision_language_forward.conditional_generation, applied at models/qwen2_vl/qwen2_vl_cpu_patch_gen_config.py:22) (via helper multimodal_loss_forward)
# Patch source: patchgen/sets/attention/ulysses_multimodal.py:237
# ==============================================================================
def check_loss_inputs(num_items_in_batch: torch.Tensor | int | None, computes_loss: bool) -> None:
    """Under sequence parallelism a loss share needs the whole batch's label count (`shard_multimodal_batch`)."""
    if sequence_parallel_world_size() > 1 and computes_loss and num_items_in_batch is None:
        raise ValueError(
            "sequence parallelism: pass num_items_in_batch, the non-ignored labels of the whole batch "
            "(shard_multimodal_batch returns it); a mean over this rank's tokens alone is not its share of the mean"
        )


# ==============================================================================
# [ADDED] loss_and_logits
# Needed by: method_override Qwen2VLForConditionalGeneration.forward (patch set multimodal_torch_linear_cross_entropy_vision_language_forward.conditional_generation, applied at models/qwen2_vl/qwen2_vl_cpu_patch_gen_config.py:22) (via helper multimodal_loss_forward)
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
# Needed by: method_override Qwen2VLForConditionalGeneration.forward (patch set multimodal_torch_linear_cross_entropy_vision_language_forward.conditional_generation, applied at models/qwen2_vl/qwen2_vl_cpu_patch_gen_config.py:22) (via helper loss_and_logits)
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
# [ADDED] multimodal_output
# Needed by: method_override Qwen2VLForConditionalGeneration.forward (patch set multimodal_torch_linear_cross_entropy_vision_language_forward.conditional_generation, applied at models/qwen2_vl/qwen2_vl_cpu_patch_gen_config.py:22) (via helper multimodal_loss_forward)
# Patch source: patchgen/sets/losses/multimodal_loss.py:42
# ==============================================================================
# The output class of the forward: a placeholder step, bound per model where upstream returns another class
# (`bind={"multimodal_output": ...}`); its default is the class Qwen2-VL, Qwen2.5-VL and Qwen3-VL return.
multimodal_output = MultimodalCausalLMOutputWithPast


# ==============================================================================
# [ADDED] multimodal_loss_forward
# Needed by: method_override Qwen2VLForConditionalGeneration.forward (patch set multimodal_torch_linear_cross_entropy_vision_language_forward.conditional_generation, applied at models/qwen2_vl/qwen2_vl_cpu_patch_gen_config.py:22)
# Patch source: patchgen/sets/losses/multimodal_loss.py:45
# ==============================================================================
def multimodal_loss_forward(
    self,
    model_inputs: dict,
    labels: torch.LongTensor | None,
    logits_to_keep: int | torch.Tensor,
    kwargs: dict,
) -> MultimodalCausalLMOutputWithPast:
    """The body every vision-language forward below shares: `model_inputs` are the forward's own arguments for
    `self.model` (token and vision inputs, by the names upstream's forward passes them), `kwargs` its `**kwargs`."""
    shift_labels = kwargs.pop("shift_labels", None)
    # sequence parallelism: each rank's loss is its share of the whole batch's token mean
    check_loss_inputs(kwargs.get("num_items_in_batch"), labels is not None)
    outputs = self.model(**model_inputs, **kwargs)

    hidden_states = outputs.last_hidden_state
    # Only compute necessary positions (logits or loss), as upstream does for the logits
    hidden_states = slice_logits_to_keep(hidden_states, logits_to_keep)

    vocab_size = self.config.text_config.vocab_size  # a vision-language config's vocabulary is its text config's
    loss, logits = loss_and_logits(self, hidden_states, labels, shift_labels, vocab_size, kwargs)

    # every other field of the model's output passes on as upstream passes it (cache, hidden states, attentions,
    # the vision encoders' outputs)
    return multimodal_output(
        loss=loss,
        logits=logits,
        **{name: value for name, value in outputs.items() if name != "last_hidden_state"},
    )


# ==============================================================================
# [MODIFIED CLASS] Qwen2VLForConditionalGeneration
# Methods patched: forward
# - forward (method_override)
#   Reason: with labels, the loss of the text families' fused-loss forward (kernel for many logits, upstream's loss for few, logits=None while training); upstream's signature and output kept [Qwen2-VL's arguments: no second_per_grid_ts]
#   Patch source: patchgen/sets/losses/multimodal_loss.py:128 (patch set multimodal_torch_linear_cross_entropy_vision_language_forward.conditional_generation, applied at models/qwen2_vl/qwen2_vl_cpu_patch_gen_config.py:22)
# ==============================================================================
class Qwen2VLForConditionalGeneration(Qwen2VLPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.language_model.embed_tokens.weight"}
    _tp_plan = {"lm_head": "colwise_gather_output"}

    def __init__(self, config: Qwen2VLConfig):
        # [CONFIG CHECK] the config values the patch sets support (PatchSet.requires_config)
        check_config_values(
            config,
            "multimodal_torch_linear_cross_entropy_vision_language_forward",
            "Qwen2VLForConditionalGeneration",
            {"final_logit_softcapping": (None,)},
        )
        super().__init__(config)
        self.model = Qwen2VLModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)

        self.post_init()

    @auto_docstring
    def get_video_features(
        self,
        pixel_values_videos: torch.Tensor,
        video_grid_thw: torch.LongTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple | BaseModelOutputWithPooling:
        r"""
        pixel_values_videos (`torch.Tensor` of shape `(batch_size, num_channels, image_size, image_size)`):
            The tensors corresponding to the input videos.
        """
        return self.model.get_video_features(pixel_values_videos, video_grid_thw, **kwargs)

    @auto_docstring
    def get_image_features(
        self,
        pixel_values: torch.Tensor,
        image_grid_thw: torch.LongTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple | BaseModelOutputWithPooling:
        r"""
        pixel_values (`torch.Tensor` of shape `(batch_size, num_channels, image_size, image_size)`):
            The tensors corresponding to the input images.
        """
        return self.model.get_image_features(pixel_values, image_grid_thw, **kwargs)

    # [PATCHED METHOD] Qwen2VLForConditionalGeneration.forward: see the banner above the class
    @can_return_tuple
    @auto_docstring
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        pixel_values: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        image_grid_thw: torch.LongTensor | None = None,
        video_grid_thw: torch.LongTensor | None = None,
        mm_token_type_ids: torch.IntTensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        mm_encoder_outputs: dict[str, BaseModelOutputWithPooling] | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> MultimodalCausalLMOutputWithPast:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Labels for computing the masked language modeling loss. Indices should either be in `[0, ...,
            config.text_config.vocab_size]` or -100. Tokens with indices set to `-100` are ignored (masked). With labels
            while training (shifted inside, or used as given in `shift_labels`), the output's `logits` is `None` and the
            loss is, for many logits, `linear_cross_entropy` of the last hidden states and the `lm_head` weight (a fused
            kernel in GPU files: the logits are never materialised), else upstream's loss. In evaluation both are
            returned, as upstream computes them.
        """
        # Qwen2-VL's arguments (no `second_per_grid_ts`: its video positions do not scale with frame time)
        model_inputs = dict(
            input_ids=input_ids,
            pixel_values=pixel_values,
            pixel_values_videos=pixel_values_videos,
            image_grid_thw=image_grid_thw,
            video_grid_thw=video_grid_thw,
            mm_token_type_ids=mm_token_type_ids,
            position_ids=position_ids,
            attention_mask=attention_mask,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            mm_encoder_outputs=mm_encoder_outputs,
        )
        return multimodal_loss_forward(self, model_inputs, labels, logits_to_keep, kwargs)

    def _prepare_position_ids_for_generation(self, inputs_tensor, model_kwargs):
        # Overwritten -- requires 3D position ids

        text_positions = super()._prepare_position_ids_for_generation(inputs_tensor, model_kwargs)

        # Early exit in case we are continuing generation from past kv. The stored `rope_deltas` come from an earlier
        # call, so if the uncached tokens hold new images or videos their 3D positions have to be computed below.
        past_length = 0
        if (cache := model_kwargs.get("cache")) is not None:
            past_length = cache.get_seq_length()
        mm_token_type_ids = model_kwargs.get("mm_token_type_ids")
        has_new_vision_tokens = mm_token_type_ids is not None and bool(mm_token_type_ids[:, past_length:].any())
        if past_length != 0 and self.model.rope_deltas is not None and not has_new_vision_tokens:
            position_ids = text_positions[None, ...] + self.model.rope_deltas
            return position_ids

        # Otherwise compute 3d position ids for vision tokens and concat with text position ids
        if "input_ids" in model_kwargs and model_kwargs["input_ids"].shape[1] > 0:
            inputs_tensor = model_kwargs["input_ids"]

        is_input_ids = len(inputs_tensor.shape) == 2 and inputs_tensor.dtype in [torch.int, torch.long]
        if (
            is_input_ids
            and model_kwargs.get("mm_token_type_ids") is not None
            and (model_kwargs.get("image_grid_thw") is not None or model_kwargs.get("video_grid_thw") is not None)
        ):
            model_kwargs = {k: v for k, v in model_kwargs.items() if k != "input_ids"}
            vision_positions, rope_deltas = self.model.get_rope_index(inputs_tensor, **model_kwargs)
            self.model.rope_deltas = rope_deltas
        else:
            vision_positions = text_positions.unsqueeze(0).expand(3, -1, -1)
            self.model.rope_deltas = torch.zeros(
                inputs_tensor.shape[0], 1, dtype=torch.long, device=inputs_tensor.device
            )

        # Concatenate "text + vision" positions into [4, bs, seq-len]
        text_positions = text_positions[None, ...]
        position_ids = torch.cat([text_positions, vision_positions], dim=0)

        return position_ids


# ==============================================================================
# [ADDED CODE] shard_multimodal_batch (after Qwen2VLForConditionalGeneration)
# Reason: the batch one rank passes to the model under sequence parallelism (whole sequence, its labels' share)
# Patch source: patchgen/sets/attention/ulysses_multimodal.py:41
# ==============================================================================
def shard_multimodal_batch(batch: Mapping[str, torch.Tensor]) -> SequenceShard:
    """What one rank passes to the vision-language model under sequence parallelism: `model(**shard)`.

    Every rank of the SP group passes the same full batch: `input_ids` with the image placeholder tokens,
    optionally `labels`, `attention_mask` (padding), `position_ids` (packed documents: upstream's `[4, batch, seq]`,
    text positions restarting per document then the 3 rope rows; with `[batch, seq]` positions attention crosses
    documents, as upstream's does, and only the labels stop at them) and the vision inputs
    (`pixel_values`, `image_grid_thw`, `mm_token_type_ids`, ...). The shard keeps the sequence tensors
    whole (the model merges the images and computes the 3-D positions first, then keeps this rank's
    slice) and adds what `shard_batch` settles on the whole batch: `shift_labels` for this rank's
    tokens, `num_items_in_batch` and `full_sequence` (documents and padding of the whole sequence).
    """
    position_ids = batch.get("position_ids")
    # the positions that say where packed documents start: the text row of upstream's packed 4-row layout
    text_positions = position_ids[0] if position_ids is not None and position_ids.dim() == 3 else position_ids
    if position_ids is not None and position_ids.dim() == 3 and position_ids.shape[0] != 4:
        text_positions = None  # 3 rope rows alone: upstream builds no packed mask from them either
    text_batch = {key: batch[key] for key in ("input_ids", "labels", "attention_mask") if key in batch}
    if text_positions is not None:
        text_batch["position_ids"] = text_positions
    shard = shard_batch(text_batch)
    # whole-sequence inputs: the model slices them after the images are merged
    shard["input_ids"] = batch["input_ids"]
    if "attention_mask" in shard:  # shard_batch drops a mask without padding; keep that choice
        shard["attention_mask"] = batch["attention_mask"]
    del shard["position_ids"]
    shard.update({key: value for key, value in batch.items() if key not in ("input_ids", "labels", "attention_mask")})
    return shard


__all__ = ["Qwen2VLForConditionalGeneration", "Qwen2VLModel", "Qwen2VLPreTrainedModel", "Qwen2VLTextModel"]
