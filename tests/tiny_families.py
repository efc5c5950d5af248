"""Tiny random configs of the families and how to build stock + generated models from them.

Imports only torch and transformers (no pytest), so `tests/test_models_gpu.py` can run as a plain
script on a GPU machine. The test modules import the table from here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import torch
import transformers
from conftest import TINY_DENSE


DENSE = dict(TINY_DENSE, pad_token_id=0)


@dataclass(frozen=True)
class Family:
    config_class: str
    causal_lm: str
    config_kwargs: dict
    liger: dict[str, str] = field(default_factory=dict)  # upstream name -> "liger module:object"

    def make_config(self):
        return getattr(transformers, self.config_class)(**self.config_kwargs)


RMS = "liger_kernel.transformers.rms_norm:LigerRMSNorm"
SWIGLU = "liger_kernel.transformers.swiglu:LigerSwiGLUMLP"
ROPE = "liger_kernel.transformers.rope:liger_rotary_pos_emb"

FAMILIES = {
    "llama": Family(
        "LlamaConfig",
        "LlamaForCausalLM",
        DENSE,
        {"LlamaRMSNorm": RMS, "LlamaMLP": SWIGLU, "apply_rotary_pos_emb": ROPE},
    ),
    "qwen2": Family(
        "Qwen2Config",
        "Qwen2ForCausalLM",
        {k: v for k, v in DENSE.items() if k != "head_dim"},
        {"Qwen2RMSNorm": RMS, "Qwen2MLP": SWIGLU, "apply_rotary_pos_emb": ROPE},
    ),
    # a window shorter than the sequences, so the sliding mask cuts something
    "mistral": Family(
        "MistralConfig",
        "MistralForCausalLM",
        {**DENSE, "sliding_window": 5},
        {"MistralRMSNorm": RMS, "MistralMLP": SWIGLU, "apply_rotary_pos_emb": ROPE},
    ),
    # layer 1 dense (mlp_only_layers) so both the experts and the dense MLP patches run
    "qwen3_moe": Family(
        "Qwen3MoeConfig",
        "Qwen3MoeForCausalLM",
        {**DENSE, "moe_intermediate_size": 16, "num_experts": 4, "num_experts_per_tok": 2, "mlp_only_layers": [1]},
        {
            "Qwen3MoeRMSNorm": RMS,
            "Qwen3MoeMLP": SWIGLU,
            "apply_rotary_pos_emb": ROPE,
        },
    ),
    # one sliding and one full layer; non-zero norm weights are set below (Gemma initialises them to 0)
    "gemma3": Family(
        "Gemma3TextConfig",
        "Gemma3ForCausalLM",
        {**DENSE, "sliding_window": 5, "layer_types": ["sliding_attention", "full_attention"]},
        {
            "Gemma3RMSNorm": "liger_kernel.transformers.rms_norm:LigerRMSNormForGemma3",
            "Gemma3MLP": "liger_kernel.transformers.geglu:LigerGEGLUMLP",
            "apply_rotary_pos_emb": ROPE,
        },
    ),
    # post-norm layers and a q/k norm over the whole projection; the eos default (50279) is outside the tiny vocab
    "olmo2": Family(
        "Olmo2Config",
        "Olmo2ForCausalLM",
        {**DENSE, "bos_token_id": 1, "eos_token_id": 2},
        {
            "Olmo2RMSNorm": "liger_kernel.transformers.rms_norm:LigerRMSNormForOlmo2",
            "Olmo2MLP": SWIGLU,
            "apply_rotary_pos_emb": ROPE,
        },
    ),
    # fused qkv_proj and gate_up_proj; partial rotary as Phi-4-mini (rope over 6 of each head's 8 channels)
    "phi3": Family(
        "Phi3Config",
        "Phi3ForCausalLM",
        {
            **{k: v for k, v in DENSE.items() if k != "head_dim"},
            "partial_rotary_factor": 0.75,
            "bos_token_id": 1,
            "eos_token_id": 2,
        },
        {
            "Phi3RMSNorm": RMS,
            "Phi3MLP": "liger_kernel.transformers.swiglu:LigerPhi3SwiGLUMLP",
            "apply_rotary_pos_emb": ROPE,
        },
    ),
    # hybrid: one gated delta-net (linear attention) layer, one gated full-attention layer; 4 key / 8 value heads
    # (2 value heads per key head, split evenly over 2 and 4 ranks), partial rotary (4 of each head's 8 channels),
    # 4 experts with a shared expert on both layers
    "qwen3_next": Family(
        "Qwen3NextConfig",
        "Qwen3NextForCausalLM",
        {
            **DENSE,
            "layer_types": ["linear_attention", "full_attention"],
            "linear_num_key_heads": 4,
            "linear_num_value_heads": 8,
            "linear_key_head_dim": 8,
            "linear_value_head_dim": 8,
            "linear_conv_kernel_dim": 4,
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 16,
            "shared_expert_intermediate_size": 16,
            "partial_rotary_factor": 0.5,
            "bos_token_id": 1,
            "eos_token_id": 2,
        },
        {
            "Qwen3NextRMSNorm": "liger_kernel.transformers.rms_norm:LigerRMSNormForGemma3",
            "Qwen3NextMLP": SWIGLU,
            "apply_rotary_pos_emb": ROPE,
        },
    ),
}
VARIANTS = ["cpu", "gpu"]


def generated_module(model: str, variant: str):
    return importlib.import_module(f"generated.{model}.patched_modeling_{model}_{variant}")


def stock_and_patched(model: str, variant: str):
    """A stock model with random weights (norm weights perturbed too) and the generated one loaded from it."""
    family = FAMILIES[model]
    config = family.make_config()
    torch.manual_seed(0)
    stock = getattr(transformers, family.causal_lm)(config).eval()
    with torch.no_grad():
        for name, parameter in stock.named_parameters():
            if "norm" in name:
                parameter.add_(torch.randn_like(parameter) * 0.1)  # so (1 + w) vs w mistakes show
    patched = getattr(generated_module(model, variant), family.causal_lm)(config).eval()
    result = patched.load_state_dict(stock.state_dict())
    assert not result.missing_keys and not result.unexpected_keys, result
    return stock, patched
