"""Every argument the overridden forwards accept upstream, one check per call: generated must behave like stock.

The generated files override `*ForCausalLM.forward` (the fused-loss forward) and `*Attention.forward`
(Ulysses); the attention forward is reached through the model's arguments (positions, masks, the KV cache).
Each call below runs on stock and on generated with the same weights and inputs, and "the same" means:
- stock returns: generated returns too, and every output matches within the case's tolerance: every tuple
  item, every field of the ModelOutput (loss, logits, cache, hidden states, router logits, whatever the class
  declares: `tests.equivalence.fields`). One documented difference is allowed: with labels, the
  fused-loss forward returns `logits=None` (never building the `[tokens, vocab]` logits is its purpose), so
  then only the loss and the rest are compared.
- stock raises: generated raises an exception of the same type.

The arguments are those of the stock signatures and of `TransformersKwargs` that a CPU run can exercise
(`cu_seq_lens_*`/`max_length_*` need flash-attention), plus two that stock passes through `**kwargs` to its
loss (`shift_labels`, `ignore_index`). `logits_to_keep` is called in every form upstream documents (int, 1-D positions, 2-D positions per sample,
bool mask), with and without labels: transformers 5.23 changed what the 2-D forms mean (`slice_logits_to_keep`),
and a patched forward that kept the old slicing must fail here, not in training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from tests.equivalence.cases import SEQ_LEN, EquivalenceCase
from tests.equivalence.checks import Check, CheckResult, Comparison, Mismatch
from tests.equivalence.fields import compare_fields, field_names


@dataclass(frozen=True)
class Call:
    """One forward call: `kwargs(case)` gives the arguments (built fresh for each model)."""

    name: str
    kwargs: Callable[[EquivalenceCase], dict[str, Any]]
    with_labels: bool = False


def _positions(case: EquivalenceCase, rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, device=case.setting.device)


def _mask(case: EquivalenceCase) -> torch.Tensor:
    mask = torch.zeros(case.input_ids.shape, dtype=torch.bool, device=case.setting.device)
    mask[0, [1, 5, 9]] = True
    mask[1, [0, 11]] = True  # a different count per sample (packed sequences)
    return mask


KEEP_FORMS: dict[str, Callable[[EquivalenceCase], Any]] = {
    "int": lambda case: 3,
    "1d": lambda case: _positions(case, [0, 4, SEQ_LEN - 1]),
    "2d": lambda case: _positions(case, [[0, 4, SEQ_LEN - 1], [2, 3, 7]]),
    "mask": _mask,
}


def _labels(case: EquivalenceCase) -> dict[str, Any]:
    return {"input_ids": case.input_ids, "labels": case.input_ids}


def _shifted(case: EquivalenceCase) -> torch.Tensor:
    # contiguous, as `patchgen.runtime.shard_batch` passes them (stock's loss calls `.view` on them)
    return torch.nn.functional.pad(case.input_ids, (0, 1), value=-100)[:, 1:].contiguous()


def _embeds(case: EquivalenceCase) -> dict[str, Any]:
    embeddings = case.pair.stock.get_input_embeddings()
    with torch.no_grad():
        return {"inputs_embeds": embeddings(case.input_ids).detach(), "labels": case.input_ids}


CALLS: tuple[Call, ...] = (
    *(
        Call(f"logits_to_keep_{form}", lambda c, f=keep: {"input_ids": c.input_ids, "logits_to_keep": f(c)})
        for form, keep in KEEP_FORMS.items()
    ),
    *(
        Call(f"logits_to_keep_{form}_labels", lambda c, f=keep: {**_labels(c), "logits_to_keep": f(c)}, True)
        for form, keep in KEEP_FORMS.items()
    ),
    Call("inputs_embeds", _embeds, with_labels=True),
    Call(
        "position_ids",
        lambda c: {**_labels(c), "position_ids": torch.arange(3, 3 + SEQ_LEN, device=c.setting.device)[None]},
        True,
    ),
    Call("use_cache_false", lambda c: {"input_ids": c.input_ids, "use_cache": False}),
    Call(
        "num_items_in_batch",
        lambda c: {**_labels(c), "num_items_in_batch": torch.tensor(7, device=c.setting.device)},
        True,
    ),
    Call("shift_labels_with_labels", lambda c: {**_labels(c), "shift_labels": _shifted(c)}, True),
    Call("shift_labels_alone", lambda c: {"input_ids": c.input_ids, "shift_labels": _shifted(c)}, True),
    Call("ignore_index", lambda c: {**_labels(c), "ignore_index": int(c.input_ids[0, 3])}, True),
    Call("output_hidden_states", lambda c: {**_labels(c), "output_hidden_states": True}, True),
    Call("output_attentions", lambda c: {"input_ids": c.input_ids, "output_attentions": True}),
    Call("output_router_logits", lambda c: {**_labels(c), "output_router_logits": True}, True),
    Call("is_causal_false", lambda c: {"input_ids": c.input_ids, "is_causal": False}),
    Call("return_dict_false", lambda c: {**_labels(c), "return_dict": False}, True),
)


def _outcome(model, kwargs: dict[str, Any]):
    try:
        with torch.no_grad():
            return model(**kwargs), None
    except Exception as error:  # noqa: BLE001 - an exception stock raises too is the expected answer
        return None, error


def compare_call(case: EquivalenceCase, call: Call) -> CheckResult:
    comparison = Comparison(case.tolerance)
    (stock, stock_error), (generated, generated_error) = (_outcome(model, call.kwargs(case)) for model in case.pair)
    if stock_error is not None:
        if generated_error is None:
            raise Mismatch(f"{call.name}: stock raises {_describe(stock_error)}, generated returns")
        if type(generated_error) is not type(stock_error):
            raise Mismatch(
                f"{call.name}: stock raises {_describe(stock_error)}, generated {_describe(generated_error)}"
            )
        return comparison.result(f"both raise {type(stock_error).__name__}")
    if generated_error is not None:
        raise Mismatch(f"{call.name}: stock returns, generated raises {_describe(generated_error)}")
    _compare_outputs(comparison, call, case, stock, generated)
    return comparison.result()


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def _compare_outputs(comparison: Comparison, call: Call, case: EquivalenceCase, stock, generated) -> None:
    """Every item of a tuple, every field of a ModelOutput (`tests.equivalence.fields`: no list of names)."""
    fused_labels = call.with_labels and case.module.fused_loss
    if isinstance(stock, tuple) or isinstance(generated, tuple):
        if not (isinstance(stock, tuple) and isinstance(generated, tuple)):
            raise Mismatch(f"{call.name}: stock returns {type(stock).__name__}, generated {type(generated).__name__}")
        # the fused forward's tuple has no logits entry with labels: compare the loss and the items after logits
        if fused_labels and len(generated) == len(stock) - 1:
            stock = (stock[0], *stock[2:])
    compare_fields(comparison, call.name, stock, generated, allow_missing_logits=fused_labels)


def check_kv_cache_step(case: EquivalenceCase) -> CheckResult:
    """`past_key_values` + `use_cache`: a prefix forward fills the cache, a one-token step reads it."""
    comparison = Comparison(case.tolerance)
    prefix, step = case.input_ids[:, :-1], case.input_ids[:, -1:]
    results = []
    for model in case.pair:
        with torch.no_grad():
            output = model(input_ids=prefix, use_cache=True)
            cache = output.cache if "cache" in field_names(output) else output.past_key_values  # 5.25: `cache`
            results.append(model(input_ids=step, past_key_values=cache, use_cache=True))
    stock, generated = results
    compare_fields(comparison, "kv cache step", stock, generated)  # logits, the cache's every layer and length
    return comparison.result()


def _check(call: Call) -> Check:
    return Check(call.name, lambda case: compare_call(case, call), numerical=True, table="arguments")


ARGUMENT_CHECKS: tuple[Check, ...] = (
    *(_check(call) for call in CALLS),
    Check("kv_cache_step", check_kv_cache_step, numerical=True, table="arguments"),
)
