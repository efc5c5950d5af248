"""Compare two model outputs field by field, whatever they hold: no list of names to forget one in.

`compare_fields(comparison, what, stock, generated)` walks both values together and raises `Mismatch` at the
first difference, naming its path (`lm: hidden_states[2]`, `model: past_key_values.layers[0].keys`):
- a `ModelOutput` (or any dataclass): the same class name and the same fields, every field compared, the ones
  that are None too (a `ModelOutput`'s `keys()` leave out None fields, so its dataclass fields are read);
- tensors: shape, dtype and values within the case's tolerance (`Comparison.close`);
- tuples, lists, dicts: the same length or keys, every item compared;
- a cache or any other object: the same class name and every attribute in `vars()` compared the same way
  (its layers, their keys/values/convolution states, lengths, sliding windows); modules are compared by class
  name only (their weights are the same by construction);
- numbers, strings, dtypes, devices: equal.

One difference is allowed, and only where the caller says so: `logits=None` from a fused-loss forward given
labels (`allow_missing_logits`), never building the `[tokens, vocab]` logits being its purpose.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch

from tests.equivalence.checks import Comparison, Mismatch


SCALARS = (bool, int, float, complex, str, bytes, torch.dtype, torch.device)


def compare_fields(comparison: Comparison, what: str, stock, generated, *, allow_missing_logits: bool = False) -> None:
    """Raise Mismatch at the first difference between `stock` and `generated` (see the module docstring)."""
    _walk(comparison, what, stock, generated, allow_missing_logits, depth=0)


def field_names(value) -> list[str]:
    """Every field of a ModelOutput/dataclass, None ones included, in declaration order."""
    return [field.name for field in dataclasses.fields(value)]


MAX_DEPTH = 12  # outputs nest 4-5 levels (output -> cache -> layers -> layer -> states); deeper means a cycle


def _walk(comparison: Comparison, what: str, stock, generated, allow_missing_logits: bool, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise Mismatch(f"{what}: nested deeper than {MAX_DEPTH} levels (a reference cycle?)")
    if stock is None or generated is None:
        if stock is None and generated is None:
            return
        raise Mismatch(f"{what}: stock gives {_kind(stock)}, generated {_kind(generated)}")
    if isinstance(stock, torch.Tensor) or isinstance(generated, torch.Tensor):
        _same_type(what, stock, generated)
        comparison.close(what, generated, stock, check_dtype=not what.endswith("loss"))
    elif dataclasses.is_dataclass(stock) and not isinstance(stock, type):
        _same_type(what, stock, generated)
        stock_fields, generated_fields = field_names(stock), field_names(generated)
        _same_keys(what, "fields", stock_fields, generated_fields)
        for name in stock_fields:
            a, b = getattr(stock, name), getattr(generated, name)
            if allow_missing_logits and depth == 0 and name == "logits" and b is None:
                continue  # the documented fused-loss difference (module docstring)
            _walk(comparison, f"{what}.{name}", a, b, allow_missing_logits, depth + 1)
    elif isinstance(stock, Mapping):
        _same_type(what, stock, generated)
        _same_keys(what, "keys", list(stock), list(generated))
        for key in stock:
            _walk(comparison, f"{what}[{key!r}]", stock[key], generated[key], allow_missing_logits, depth + 1)
    elif isinstance(stock, (tuple, list)):
        _same_type(what, stock, generated)
        if len(stock) != len(generated):
            raise Mismatch(f"{what}: {len(stock)} items (stock) != {len(generated)} (generated)")
        for index, (a, b) in enumerate(zip(stock, generated, strict=True)):
            _walk(comparison, f"{what}[{index}]", a, b, allow_missing_logits, depth + 1)
    elif isinstance(stock, SCALARS):
        if type(stock) is not type(generated) or stock != generated:
            raise Mismatch(f"{what}: stock gives {stock!r}, generated {generated!r}")
    elif isinstance(stock, (type, torch.nn.Module)) or not hasattr(stock, "__dict__"):
        _same_type(what, stock, generated)
    else:  # a cache, a cache layer, or another plain object: its attributes
        _same_type(what, stock, generated)
        stock_attributes, generated_attributes = vars(stock), vars(generated)
        _same_keys(what, "attributes", list(stock_attributes), list(generated_attributes))
        for name, value in stock_attributes.items():
            _walk(comparison, f"{what}.{name}", value, generated_attributes[name], allow_missing_logits, depth + 1)


def _same_type(what: str, stock, generated) -> None:
    # By name: a generated file defines its own copies of the output classes upstream defines in the module.
    stock_type, generated_type = _kind(stock), _kind(generated)
    if stock_type != generated_type:
        raise Mismatch(f"{what}: stock gives {stock_type}, generated {generated_type}")


def _same_keys(what: str, kind: str, stock: list, generated: list) -> None:
    missing = [key for key in stock if key not in generated]
    extra = [key for key in generated if key not in stock]
    if missing or extra:
        raise Mismatch(f"{what}: {kind} differ: missing in generated {missing}, only in generated {extra}")


def _kind(value) -> str:
    if value is None:
        return "None"
    if isinstance(value, type):
        return f"class {value.__name__}"
    if isinstance(value, torch.Tensor):
        return "Tensor"
    return type(value).__name__
