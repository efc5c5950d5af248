"""Fused MoE experts as one more implementation behind upstream's experts dispatch, and the default one.

Upstream decorates its experts class (`Qwen3MoeExperts`) so that its forward calls the function that
`config._experts_implementation` names in transformers' `ALL_EXPERTS_FUNCTIONS` ("eager" is the
class's own loop; "batched_mm", "grouped_mm", ... are transformers' kernels), and users switch with
`model.set_experts_implementation(name)` or `from_pretrained(..., experts_implementation=name)`. These
sets keep that class and its decorator untouched and add a kernel to the dispatch instead of replacing
the class, so every upstream implementation stays selectable:

- `LIGER_EXPERTS` registers Liger's fused MoE kernel as "liger_fused_moe" (the `_gpu` files);
- `TORCH_EXPERTS` registers its pure-torch twin as "torch_fused_moe" (the `_cpu` files);
- both make the model pick that name when nothing is requested (upstream picks "grouped_mm").

The kernels read upstream's parameters (`gate_up_proj` [experts, 2 * inter, hidden], `down_proj`
[experts, hidden, inter]), so checkpoints load unchanged. Kept apart from `liger_kernels.py` /
`torch_kernels.py` because the experts are MoE-specific and change independently of the norm and MLP sets.

This module holds what both sets share; each set and its kernel live in their own module
(`torch_moe_experts.py`, `liger_moe_experts.py`), because registering a kernel is a side effect of
defining it: a `_cpu` file built from a module that also defined Liger's kernel would have to carry
(and import) it to register what that module registers.
"""

from transformers.integrations.moe import ALL_EXPERTS_FUNCTIONS


def registered_experts_implementation(experts_forward):
    """Adds `experts_forward` to transformers' experts implementations under its own name, and returns it.

    transformers accepts in `set_experts_implementation(name)` / `from_pretrained(..., experts_implementation=name)`
    only registered names, and upstream's experts forward looks the function up by that name.
    """
    ALL_EXPERTS_FUNCTIONS.register(experts_forward.__name__, experts_forward)
    return experts_forward


def fused_unless_requested(config, requested_experts: str | None, fused) -> str:
    """The implementation to use: `requested_experts`, or the fused kernel `fused` (by name) when none is requested.

    Upstream's default is grouped_mm. The fused kernels compute SiLU gates only (as Liger's does), so choosing
    one for another activation is refused.
    """
    chosen = fused.__name__ if requested_experts is None else requested_experts
    # A composite (vision-language) model asks for its own config (the experts' activation is in its text config)
    # and for each sub-model's: a part without experts (the vision tower, a GELU MLP) has nothing to refuse.
    text_config = config.get_text_config()
    has_experts = any(
        getattr(text_config, name, None) for name in ("num_experts", "num_local_experts", "n_routed_experts")
    )
    hidden_act = getattr(text_config, "hidden_act", None)
    if chosen == fused.__name__ and has_experts and hidden_act not in ("silu", "swish"):
        raise ValueError(
            f"the fused MoE experts kernel {chosen!r} computes SiLU gates only, not {hidden_act!r}; pass "
            "experts_implementation='grouped_mm' (or 'eager', 'batched_mm') to from_pretrained or the config"
        )
    return chosen
