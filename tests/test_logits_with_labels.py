"""Logits next to the loss (issue 21.5): an evaluation loop passes labels and reads `.logits` too.

The fused-loss forwards skip materialising the logits only where no caller can read them: while
training. In evaluation (`model.eval()`) they return logits and loss as stock does, for every family
whose generated file carries such a forward; while training, the loss equals stock's and `logits` is
None (the fused kernel's point).
"""

import pytest
import torch
from conftest import REPO
from tiny_families import FAMILIES, stock_and_patched


def _has_fused_loss(model: str) -> bool:
    return "linear_cross_entropy" in (REPO / f"generated/{model}/patched_modeling_{model}_cpu.py").read_text()


FUSED_LOSS_FAMILIES = sorted(model for model in FAMILIES if _has_fused_loss(model))


def batch():
    generator = torch.Generator().manual_seed(5)
    input_ids = torch.randint(1, 99, (2, 9), generator=generator)
    labels = input_ids.clone()
    labels[1, :4] = -100
    return input_ids, labels


def test_the_families_with_a_fused_loss_are_found():
    assert {"llama", "qwen3", "deepseek_v3", "qwen2_5_vl"} <= set(FUSED_LOSS_FAMILIES)


@pytest.mark.parametrize("model", FUSED_LOSS_FAMILIES)
def test_evaluation_with_labels_returns_logits_and_loss_as_stock(model):
    stock, patched = stock_and_patched(model, "cpu")
    input_ids, labels = batch()
    with torch.no_grad():
        expected, actual = stock(input_ids, labels=labels), patched(input_ids, labels=labels)
    assert actual.logits is not None
    torch.testing.assert_close(actual.logits, expected.logits)
    torch.testing.assert_close(actual.loss, expected.loss)


@pytest.mark.parametrize("model", FUSED_LOSS_FAMILIES)
def test_training_with_labels_returns_the_loss_and_no_logits(model):
    stock, patched = stock_and_patched(model, "cpu")
    stock.train(), patched.train()
    input_ids, labels = batch()
    expected, actual = stock(input_ids, labels=labels), patched(input_ids, labels=labels)
    assert actual.logits is None and expected.logits is not None
    torch.testing.assert_close(actual.loss, expected.loss)
