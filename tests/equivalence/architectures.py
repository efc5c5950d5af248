"""Model type -> tiny random config and causal-LM class for the harness, derived from the one table (tests/families.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import transformers

from tests.equivalence.discovery import GeneratedModule
from tests.families import TABLE, TABLE_PLACE


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
    # The model takes image inputs besides token ids (the harness then also compares a batch with images).
    vision_inputs: bool = False

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
# A view of the one table (tests/families.py): each family's keys on top of these dimensions.
ARCHITECTURES: dict[str, Architecture] = {
    model: Architecture(
        family.config_class,
        family.causal_lm,
        family.config_kwargs(_DENSE, harness="equivalence"),
        no_bf16_comparison=family.no_bf16_comparison,
        tf32_kernels=family.tf32_kernels,
        vision_inputs=family.vision_inputs,
    )
    for model, family in TABLE.items()
}


def architecture_for(module: GeneratedModule) -> Architecture:
    try:
        return ARCHITECTURES[module.architecture]
    except KeyError:
        raise UnknownArchitectureError(
            f"{module.path}: architecture {module.architecture!r} (from {module.source_module}) has no tiny config; "
            f"add an entry to {TABLE_PLACE} (known: {', '.join(ARCHITECTURES)})"
        ) from None
