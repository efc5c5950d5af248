"""Checkpoint layout conversion for generated modeling files.

transformers converts checkpoint layouts while loading: a stock Qwen3-MoE checkpoint stores its
experts one by one (`mlp.experts.0.gate_proj.weight`, ...) and is fused into `experts.gate_up_proj` /
`experts.down_proj` on load. It skips those conversions for classes defined outside the
`transformers` package (custom code, which generated files are) unless the model type was registered
by the user; the fused weights are then reported missing and initialised at random, with only a log
line. A generated file calls `reuse_upstream_conversion_mapping(model_type)` at import so stock
checkpoints load into it exactly as into the stock class.
"""

from __future__ import annotations


def reuse_upstream_conversion_mapping(model_type: str) -> None:
    """Register transformers' own conversion mapping for `model_type` as user-provided (idempotent)."""
    from transformers.conversion_mapping import (  # imported on use: this package otherwise needs only torch
        USER_REGISTERED_MAPPINGS,
        get_checkpoint_conversion_mapping,
        register_checkpoint_conversion_mapping,
    )

    if model_type in USER_REGISTERED_MAPPINGS:
        return
    mapping = get_checkpoint_conversion_mapping(model_type)
    if mapping is None:
        raise ValueError(f"transformers has no checkpoint conversion mapping for model type {model_type!r}")
    register_checkpoint_conversion_mapping(model_type, mapping, overwrite=True)
