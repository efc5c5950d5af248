"""The construction-time check a generated file runs for the config values its patch sets support.

A patch set declares the config values it supports (`PatchSet.requires_config`: SwiGLU only for
`hidden_act` in silu/swish, the fused loss only without logit scaling). The generator checks the
config class's defaults; a config built later with another value (`LlamaConfig(hidden_act="gelu")`) is
refused here, at the start of `__init__` of the class that builds the patched part, in one line:

    check_config_values(config, "torch_swiglu_mlp", "LlamaMLP", {"hidden_act": ("silu", "swish")})
"""

from __future__ import annotations

from typing import Any


def check_config_values(config: Any, patch_set: str, target: str, supported: dict[str, tuple]) -> None:
    """Raise `ValueError` when `config` sets an attribute of `supported` to a value outside its tuple.

    An attribute the config does not have is not checked (upstream's code would not read it either); a
    composite config (a vision-language model's) is checked through its text config.
    """
    for attribute, allowed in supported.items():
        found, value = _value(config, attribute)
        if found and not any(_same(value, a) for a in allowed):
            raise ValueError(
                f"{target}: patch set {patch_set} supports config.{attribute} in "
                f"({', '.join(map(repr, allowed))}) only, got {value!r}; use a config with a supported value "
                "or a file generated without that set"
            )


def _value(config: Any, attribute: str) -> tuple[bool, Any]:
    if hasattr(config, attribute):
        return True, getattr(config, attribute)
    get_text_config = getattr(config, "get_text_config", None)
    text = get_text_config() if callable(get_text_config) else None
    if text is not None and text is not config and hasattr(text, attribute):
        return True, getattr(text, attribute)
    return False, None


def _same(value: Any, allowed: Any) -> bool:
    """Equal, and a bool only equals a bool (`True == 1` must not pass for a count)."""
    return isinstance(value, bool) == isinstance(allowed, bool) and value == allowed


__all__ = ["check_config_values"]
