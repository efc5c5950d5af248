"""Qwen3-MoE specifics: stock per-expert checkpoints load into the generated files, and the router loss is kept.

A stock `Qwen3MoeForCausalLM.save_pretrained` writes experts one by one
(`mlp.experts.0.gate_proj.weight`, ...). transformers fuses them into `experts.gate_up_proj` /
`experts.down_proj` on load only for its own classes, unless the model type is registered; the
generated files register it at import (`patchgen.runtime.checkpoint_conversion`).
"""

import pytest
import torch
from conftest import REPO, TINY_DENSE
from safetensors import safe_open
from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM
from transformers.conversion_mapping import USER_REGISTERED_MAPPINGS

import generated.qwen3_moe.patched_modeling_qwen3_moe_cpu as moe_cpu
import generated.qwen3_moe.patched_modeling_qwen3_moe_gpu as moe_gpu


def tiny_config(**overrides) -> Qwen3MoeConfig:
    values = dict(
        TINY_DENSE,
        moe_intermediate_size=16,
        num_experts=4,
        num_experts_per_tok=2,
        pad_token_id=0,
    )
    values.update(overrides)
    return Qwen3MoeConfig(**values)


@pytest.fixture(scope="module")
def stock_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    stock = Qwen3MoeForCausalLM(tiny_config()).eval()
    folder = tmp_path_factory.mktemp("qwen3_moe_stock")
    stock.save_pretrained(folder)
    return stock, folder


def test_stock_checkpoint_stores_experts_one_by_one(stock_checkpoint):
    _, folder = stock_checkpoint
    with safe_open(str(folder / "model.safetensors"), "pt") as checkpoint:
        keys = set(checkpoint.keys())
    assert "model.layers.0.mlp.experts.0.gate_proj.weight" in keys
    assert not any(key.endswith("experts.gate_up_proj") for key in keys)


@pytest.mark.parametrize("module", [moe_cpu, moe_gpu], ids=["cpu", "gpu"])
def test_stock_checkpoint_loads_without_missing_keys(module, stock_checkpoint):
    stock, folder = stock_checkpoint
    loaded, info = module.Qwen3MoeForCausalLM.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    for key, value in stock.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0, msg=key)
    if module is moe_cpu:  # the Liger file needs a GPU to run
        input_ids = torch.randint(1, 99, (2, 9), generator=torch.Generator().manual_seed(4))
        torch.testing.assert_close(loaded.eval()(input_ids).logits, stock(input_ids).logits)


def test_generated_file_registers_the_conversion_at_import():
    assert "qwen3_moe" in USER_REGISTERED_MAPPINGS
    for variant in ["cpu", "gpu"]:
        text = (REPO / "generated" / "qwen3_moe" / f"patched_modeling_qwen3_moe_{variant}.py").read_text()
        assert text.rstrip().endswith('reuse_upstream_conversion_mapping("qwen3_moe")')
        assert "from patchgen.runtime.checkpoint_conversion import reuse_upstream_conversion_mapping" in text


def test_router_aux_loss_and_logits_equal_stock():
    config = tiny_config(output_router_logits=True, router_aux_loss_coef=0.5)
    torch.manual_seed(0)
    stock = Qwen3MoeForCausalLM(config).eval()
    patched = moe_cpu.Qwen3MoeForCausalLM(config).eval()
    patched.load_state_dict(stock.state_dict())
    input_ids = torch.randint(1, 99, (2, 13), generator=torch.Generator().manual_seed(5))
    expected = stock(input_ids, labels=input_ids)
    actual = patched(input_ids, labels=input_ids)
    torch.testing.assert_close(actual.aux_loss, expected.aux_loss)
    torch.testing.assert_close(actual.loss, expected.loss)
    for ours, theirs in zip(actual.router_logits, expected.router_logits, strict=True):
        torch.testing.assert_close(ours, theirs)


def test_cpu_experts_skip_slots_routed_elsewhere():
    """An index equal to num_experts (expert parallelism) contributes nothing, as upstream skips it."""
    experts = moe_cpu.Qwen3MoeExperts(tiny_config())
    torch.nn.init.normal_(experts.gate_up_proj)
    torch.nn.init.normal_(experts.down_proj)
    hidden = torch.randn(3, 32)
    index = torch.tensor([[0, 4], [1, 2], [4, 4]])
    weights = torch.full((3, 2), 0.5)
    out = experts(hidden, index, weights)
    assert torch.equal(out[2], torch.zeros(32))
    only_first = experts(hidden[:1], torch.tensor([[0, 0]]), torch.tensor([[0.5, 0.0]]))
    torch.testing.assert_close(out[0], only_first[0])
