"""Model type -> tiny random config and causal-LM class: the one table a new architecture is added to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import transformers

from tests.equivalence.discovery import GeneratedModule


class UnknownArchitectureError(Exception):
    """A generated file whose architecture has no tiny config: fail loudly so it is never skipped unnoticed."""


@dataclass(frozen=True)
class Architecture:
    config_class: str  # a name exported by `transformers`
    causal_lm_class: str  # looked up by name in both the stock and the generated module
    config_kwargs: dict[str, Any] = field(default_factory=dict)
    # Why bf16 logits cannot be compared for this architecture (then CUDA compares in fp32 only), or None.
    no_bf16_comparison: str | None = None
    # Why the GPU file's kernels compute fp32 matmuls in TF32 (then CUDA fp32 uses the TF32 tolerance), or None.
    tf32_kernels: str | None = None

    def make_config(self) -> transformers.PretrainedConfig:
        config_cls: Callable[..., transformers.PretrainedConfig] = getattr(transformers, self.config_class)
        return config_cls(**self.config_kwargs)


# Small enough to build in milliseconds, big enough that every code path runs: GQA (4 query heads, 2 kv
# heads), 2 layers, odd intermediate size (catches kernels that assume powers of two), no dropout.
_DENSE = dict(
    vocab_size=101,
    hidden_size=64,
    intermediate_size=88,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=128,
    attention_dropout=0.0,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)
_NO_HEAD_DIM = {key: value for key, value in _DENSE.items() if key != "head_dim"}  # qwen2 derives it

ARCHITECTURES: dict[str, Architecture] = {
    # Tied embeddings like Qwen3-0.6B: the fused loss must read the shared lm_head weight.
    "qwen3": Architecture("Qwen3Config", "Qwen3ForCausalLM", {**_DENSE, "tie_word_embeddings": True}),
    "llama": Architecture("LlamaConfig", "LlamaForCausalLM", _DENSE),
    "qwen2": Architecture("Qwen2Config", "Qwen2ForCausalLM", _NO_HEAD_DIM),
    # A window shorter than the test sequences, so the sliding-window mask actually cuts something.
    "mistral": Architecture("MistralConfig", "MistralForCausalLM", {**_DENSE, "sliding_window": 5}),
    "qwen3_moe": Architecture(
        "Qwen3MoeConfig",
        "Qwen3MoeForCausalLM",
        {**_DENSE, "moe_intermediate_size": 24, "num_experts": 4, "num_experts_per_tok": 2, "norm_topk_prob": True},
        no_bf16_comparison=(
            "top-2 routing flips between two valid bf16 implementations: measured with the pure-torch file in bf16, "
            "one token in 24 picks another expert and its logits move by 0.087 (stock's own bf16 error: 0.013)"
        ),
        tf32_kernels=(
            "LigerExperts multiplies with tl.dot, which runs fp32 operands as TF32 (10-bit mantissa) on NVIDIA tensor "
            "cores, while stock matmuls stay full fp32: measured on an H200, logits 9.3e-4 and gradients 3.5e-4 apart"
        ),
    ),
    # Text-only Gemma 3; one sliding and one full layer, tied embeddings as in the released checkpoints.
    "gemma3": Architecture(
        "Gemma3TextConfig",
        "Gemma3ForCausalLM",
        {**_DENSE, "sliding_window": 5, "layer_types": ["sliding_attention", "full_attention"]},
    ),
    # Post-norm layers, q/k norms over the whole projection.
    "olmo2": Architecture("Olmo2Config", "Olmo2ForCausalLM", _DENSE),
    # Fused qkv_proj and gate_up_proj; partial rotary as Phi-4-mini (0.75 of each 16-channel head).
    "phi3": Architecture("Phi3Config", "Phi3ForCausalLM", {**_NO_HEAD_DIM, "partial_rotary_factor": 0.75}),
    # Hybrid: a gated delta-net (linear attention) layer, then a gated full-attention layer with partial rotary
    # (0.25 of each head, as released); MoE experts with a shared expert in both layers.
    "qwen3_next": Architecture(
        "Qwen3NextConfig",
        "Qwen3NextForCausalLM",
        {
            **_DENSE,
            "layer_types": ["linear_attention", "full_attention"],
            "linear_num_key_heads": 2,
            "linear_num_value_heads": 4,
            "linear_key_head_dim": 16,
            "linear_value_head_dim": 16,
            "linear_conv_kernel_dim": 4,
            "moe_intermediate_size": 24,
            "shared_expert_intermediate_size": 24,
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "partial_rotary_factor": 0.25,
        },
        no_bf16_comparison=(
            "top-2 routing flips between two valid bf16 implementations, as for Qwen3-MoE (same router and experts "
            "kernels; not measured on Qwen3-Next itself)"
        ),
        tf32_kernels=(
            "LigerExperts multiplies with tl.dot, which runs fp32 operands as TF32, as for Qwen3-MoE (same kernel); "
            "fla's delta rule also multiplies with tl.dot"
        ),
    ),
}


def architecture_for(module: GeneratedModule) -> Architecture:
    try:
        return ARCHITECTURES[module.architecture]
    except KeyError:
        raise UnknownArchitectureError(
            f"{module.path}: architecture {module.architecture!r} (from {module.source_module}) has no tiny config; "
            f"add an entry to ARCHITECTURES in tests/equivalence/architectures.py (known: {', '.join(ARCHITECTURES)})"
        ) from None
