"""Tiny random models of the families: stock + generated built from one config with the same weights.

The families and their config keys come from the one table, `tests/families.py`; this module adds
the model tests' shared tiny dimensions (`DENSE`) and the builders.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import torch
import transformers
from conftest import TINY_DENSE

from tests.families import TABLE, covered


DENSE = dict(TINY_DENSE, pad_token_id=0)


@dataclass(frozen=True)
class Family:
    config_class: str
    causal_lm: str
    config_kwargs: dict
    liger: dict[str, str] = field(default_factory=dict)  # upstream name -> "liger module:object"

    def make_config(self):
        return getattr(transformers, self.config_class)(**self.config_kwargs)


# A view of the one table (tests/families.py) for the model tests, kept so existing imports work: every
# covered family (generated files and an entry), its keys on top of DENSE, its Liger bindings.
FAMILIES = {
    model: Family(entry.config_class, entry.causal_lm, entry.config_kwargs(DENSE), entry.liger)
    for model in covered()
    for entry in [TABLE[model]]
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


def assert_logits_loss_and_gradients_equal(patched, stock) -> None:
    """Logits without labels, the loss with some labels ignored, every gradient: fp32 defaults of assert_close."""
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(1, 99, (2, 11), generator=generator)
    labels = input_ids.clone()
    labels[0, :3] = -100  # ignored positions count in neither loss
    torch.testing.assert_close(patched(input_ids).logits, stock(input_ids).logits)
    stock_loss = stock(input_ids, labels=labels).loss
    patched_loss = patched(input_ids, labels=labels).loss
    torch.testing.assert_close(patched_loss, stock_loss)
    stock_loss.backward()
    patched_loss.backward()
    stock_parameters = dict(stock.named_parameters())
    for name, parameter in patched.named_parameters():
        torch.testing.assert_close(parameter.grad, stock_parameters[name].grad, msg=name)
