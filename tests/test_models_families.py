"""Every family of tiny_families.FAMILIES: the committed generated files, against stock HF.

For each family: both files import on CPU, tiny random models build with stock state-dict keys, the
CPU variant gives stock logits, loss and gradients in fp32, the GPU variant binds the Liger objects
its config names, both variants patch the same upstream names, and the committed files are what the
configs generate now. On a GPU, tests/test_models_gpu.py compares the Liger variants with stock.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest
import transformers
from conftest import REPO
from tiny_families import (
    FAMILIES,
    VARIANTS,
    assert_logits_loss_and_gradients_equal,
    generated_module,
    stock_and_patched,
)

from patchgen.commands.codegen import generate
from patchgen.load.discovery import load_config


def shapes(model) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("model", sorted(FAMILIES))
def test_state_dict_keys_and_shapes_equal_stock(model, variant):
    family = FAMILIES[model]
    config = family.make_config()
    stock = getattr(transformers, family.causal_lm)(config)
    patched = getattr(generated_module(model, variant), family.causal_lm)(config)
    assert shapes(patched) == shapes(stock)


@pytest.mark.parametrize("model", sorted(FAMILIES))
def test_cpu_variant_equals_stock_logits_loss_and_gradients(model):
    stock, patched = stock_and_patched(model, "cpu")
    assert_logits_loss_and_gradients_equal(patched, stock)


def hub_wrapped(obj):
    """The function a kernel-hub registration wraps, else `obj` itself.

    Upstream registers its rope with `@use_kernel_forward_from_hub("rotary_pos_emb")`; with `kernels` installed
    that turns the function into a module instance whose `forward` calls it, and a replacement keeps the
    registration (patchgen.plan.plan.HUB_KERNEL_DECORATORS). The wrapped function is the one its `forward` closes over.
    """
    forward = getattr(type(obj), "forward", None)
    if getattr(obj, "kernel_layer_name", None) is None or forward is None:
        return obj
    (wrapped,) = [cell.cell_contents for cell in forward.__closure__ or () if inspect.isfunction(cell.cell_contents)]
    return wrapped


@pytest.mark.parametrize("model", sorted(FAMILIES))
def test_gpu_variant_binds_the_liger_objects(model):
    module = generated_module(model, "gpu")
    for upstream_name, where in FAMILIES[model].liger.items():
        liger_module, _, liger_name = where.partition(":")
        liger = getattr(importlib.import_module(liger_module), liger_name)
        assert hub_wrapped(getattr(module, upstream_name)) is liger, upstream_name
    text = Path(module.__file__).read_text()
    assert "from models" not in text and "import models" not in text


def patched_targets(model: str, variant: str) -> list[str]:
    """The upstream names the header says were patched, without the patch-set labels.

    Extra imports are left out: they are what differs by design (the loss kernel a variant binds).
    """
    text = (REPO / "generated" / model / f"patched_modeling_{model}_{variant}.py").read_text()
    header = text.split("# Patches applied:", 1)[1].split("# ====", 1)[0]
    lines = [
        line for line in header.splitlines() if line.startswith("# - ") and not line.startswith("# - extra import:")
    ]
    return [re.sub(r"^[a-z_]+: (\S+).*$", r"\1", line[4:]) for line in lines]


@pytest.mark.parametrize("model", sorted(FAMILIES))
def test_cpu_and_gpu_variants_patch_the_same_names(model):
    cpu, gpu = patched_targets(model, "cpu"), patched_targets(model, "gpu")
    assert cpu == gpu
    assert len(cpu) >= 3


def test_committed_files_are_what_the_configs_generate():
    """All configs generated together in this process give the committed files (written by `--all`)."""
    loaded = [
        load_config(f"models.{model}.{model}_{variant}_patch_gen_config", root=REPO)
        for model in sorted(FAMILIES)
        for variant in VARIANTS
    ]
    for result in generate(loaded, with_diff=True):
        assert result.error is None, result.error
        for output in result.outputs:
            committed = REPO / output.path
            assert committed.read_text(encoding="utf-8") == output.text, output.path
