"""DeepSeek-V3 specifics: stock checkpoints load both ways, the experts dispatch is upstream's, MLA's Ulysses pieces.

The shared tables run the rest (tests/tiny_families.py `deepseek_v3`: family, HF-behaviour and GPU tests;
tests/equivalence/architectures.py: the equivalence table; tests/test_models_sequence_parallel.py: 2 and 4
gloo ranks equal one process). Here:

- a stock `DeepseekV3ForCausalLM.save_pretrained` writes the routed experts one by one
  (`mlp.experts.0.gate_proj.weight`, ...); transformers' own conversion applies to the generated
  classes (not custom code: patchgen/load/native_code.py), so that checkpoint loads with no missing keys and equal logits, and a checkpoint the generated
  file saves loads into stock;
- the fused experts kernel is one more implementation behind upstream's dispatch, and every
  implementation, on DeepSeek-V3's experts layout (grouped top-k router, fp32 routing weights scaled by
  `routed_scaling_factor`), equals stock;
- the attention variants the tiny config does not take (no `q_lora_rank`: one `q_proj`; rope on halves,
  `rope_interleave=False`) equal stock, and the Ulysses decompression step equals upstream's `expand_kv`;
- the MLA set refuses an attention without the latent projections, at generation.
"""

from unittest.mock import Mock, patch

import pytest
import torch
import transformers
from safetensors import safe_open
from tiny_families import FAMILIES
from transformers.conversion_mapping import USER_REGISTERED_MAPPINGS
from transformers.integrations.moe import (
    ALL_EXPERTS_FUNCTIONS,
    batched_mm_experts_forward,
    grouped_mm_experts_forward,
)

import generated.deepseek_v3.patched_modeling_deepseek_v3_cpu as dsv3_cpu
import generated.deepseek_v3.patched_modeling_deepseek_v3_gpu as dsv3_gpu
from patchgen.commands.codegen import generate
from patchgen.load.discovery import load_config


def tiny_config(**overrides) -> transformers.DeepseekV3Config:
    return transformers.DeepseekV3Config(**{**FAMILIES["deepseek_v3"].config_kwargs, **overrides})


def seeded_ids(seed: int, shape=(2, 11)) -> torch.Tensor:
    return torch.randint(1, 99, shape, generator=torch.Generator().manual_seed(seed))


def stock_and_cpu_file(**overrides):
    """Stock and the generated CPU model with the same random weights (eval mode), each with its own config
    (a model writes the experts implementation it resolved into its config)."""
    torch.manual_seed(0)
    stock = transformers.DeepseekV3ForCausalLM(tiny_config(**overrides)).eval()
    patched = dsv3_cpu.DeepseekV3ForCausalLM(tiny_config(**overrides)).eval()
    result = patched.load_state_dict(stock.state_dict())
    assert not result.missing_keys and not result.unexpected_keys, result
    return stock, patched


# -- checkpoints ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stock_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    stock = transformers.DeepseekV3ForCausalLM(tiny_config()).eval()
    folder = tmp_path_factory.mktemp("deepseek_v3_stock")
    stock.save_pretrained(folder)
    return stock, folder


def checkpoint_keys(folder) -> set[str]:
    with safe_open(str(folder / "model.safetensors"), "pt") as checkpoint:
        return set(checkpoint.keys())


def test_stock_checkpoint_stores_routed_experts_one_by_one(stock_checkpoint):
    keys = checkpoint_keys(stock_checkpoint[1])
    # layer 0 is dense (first_k_dense_replace=1); layer 1 holds 8 routed experts and the shared one
    assert "model.layers.1.mlp.experts.7.gate_proj.weight" in keys
    assert "model.layers.1.mlp.shared_experts.gate_proj.weight" in keys
    assert not any(key.endswith(("experts.gate_up_proj", "experts.down_proj")) for key in keys)


@pytest.mark.parametrize("module", [dsv3_cpu, dsv3_gpu], ids=["cpu", "gpu"])
def test_stock_checkpoint_loads_without_missing_keys(module, stock_checkpoint):
    stock, folder = stock_checkpoint
    loaded, info = module.DeepseekV3ForCausalLM.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    for key, value in stock.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0, msg=key)
    if module is dsv3_cpu:  # the Liger file needs a GPU to run
        input_ids = seeded_ids(4)
        # fp32 defaults: the fused experts kernel sums the same products as stock's grouped_mm in another order
        torch.testing.assert_close(loaded.eval()(input_ids).logits, stock(input_ids).logits)


def test_generated_checkpoint_loads_into_stock(tmp_path):
    _, patched = stock_and_cpu_file()
    patched.save_pretrained(tmp_path)
    assert "model.layers.1.mlp.experts.0.down_proj.weight" in checkpoint_keys(tmp_path)  # stock's layout
    loaded, info = transformers.DeepseekV3ForCausalLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    input_ids = seeded_ids(5)
    torch.testing.assert_close(loaded.eval()(input_ids).logits, patched(input_ids).logits)


def test_stock_conversion_applies_without_registering_anything():
    """The checkpoints above load through transformers' own mapping: the classes are not custom code."""
    assert "deepseek_v3" not in USER_REGISTERED_MAPPINGS
    for module in (dsv3_cpu, dsv3_gpu):
        assert module.DeepseekV3ForCausalLM.is_custom_code() is False


# -- experts dispatch ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "fused"), [(dsv3_cpu, "torch_fused_moe"), (dsv3_gpu, "liger_fused_moe")], ids=["cpu", "gpu"]
)
def test_fused_kernel_is_the_default_and_upstream_implementations_stay_selectable(module, fused):
    assert module.DeepseekV3ForCausalLM._can_set_experts_implementation()
    assert module.DeepseekV3ForCausalLM(tiny_config()).config._experts_implementation == fused
    chosen = module.DeepseekV3ForCausalLM(tiny_config(experts_implementation="batched_mm"))
    assert chosen.config._experts_implementation == "batched_mm"


def test_every_experts_implementation_equals_stock_on_the_deepseek_layout():
    """Each name runs its own function (spied through the global mapping) and agrees with stock's eager loop.

    The router hands the experts fp32 weights scaled by routed_scaling_factor (2.5) over a grouped top-k;
    the implementations sum the same fp32 products in different orders, so logits differ by ulps: 1e-5
    absolute is far above that and far below a wrong expert, group or weight (> 1e-3 here).
    """
    stock, patched = stock_and_cpu_file()
    stock.set_experts_implementation("eager")
    input_ids = seeded_ids(1)
    expected = stock(input_ids).logits
    spies = {
        "batched_mm": Mock(wraps=batched_mm_experts_forward),
        "grouped_mm": Mock(wraps=grouped_mm_experts_forward),
        "torch_fused_moe": Mock(wraps=dsv3_cpu.torch_fused_moe),
    }
    with patch.dict(ALL_EXPERTS_FUNCTIONS._global_mapping, spies):
        for implementation in ["eager", "batched_mm", "grouped_mm", "torch_fused_moe"]:
            patched.set_experts_implementation(implementation)
            for spy in spies.values():
                spy.reset_mock()
            logits = patched(input_ids).logits
            for name, spy in spies.items():  # one MoE layer (layer 1); "eager" is the class's own loop
                assert spy.call_count == (1 if name == implementation else 0), (implementation, name)
            torch.testing.assert_close(logits, expected, rtol=0, atol=1e-5, msg=implementation)


# -- multi-head latent attention -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [{"q_lora_rank": None}, {"rope_interleave": False}],
    ids=["query_without_lora", "rope_on_halves"],
)
def test_attention_variants_equal_stock(overrides):
    """Logits, loss and every gradient; fp32 defaults (see stock_checkpoint's logits) for the experts' sum order."""
    stock, patched = stock_and_cpu_file(**overrides)
    input_ids = seeded_ids(2)
    torch.testing.assert_close(patched(input_ids).logits, stock(input_ids).logits)
    stock_loss = stock(input_ids, labels=input_ids).loss
    patched_loss = patched(input_ids, labels=input_ids).loss
    torch.testing.assert_close(patched_loss, stock_loss)
    stock_loss.backward()
    patched_loss.backward()
    stock_parameters = dict(stock.named_parameters())
    for name, parameter in patched.named_parameters():
        torch.testing.assert_close(parameter.grad, stock_parameters[name].grad, msg=name)


def test_decompression_step_equals_upstream_expand_kv():
    """The sequence-parallel path's keys/values, with no group (all-to-alls are the identity), are expand_kv's.

    Same kv_b_proj and the same copies; only torch.cat instead of new_empty + copy_, which moves no value.
    """
    attention = dsv3_cpu.DeepseekV3Attention(tiny_config(), layer_idx=0)
    generator = torch.Generator().manual_seed(3)
    kv_nope = torch.randn(2, 1, 5, attention.kv_lora_rank, generator=generator)
    k_rot = torch.randn(2, 1, 5, attention.qk_rope_head_dim, generator=generator)
    expected = attention.expand_kv(kv_nope, k_rot)
    got = dsv3_cpu.decompressed_head_shards(attention, kv_nope, k_rot)
    for tensor, reference in zip(got, expected, strict=True):
        torch.testing.assert_close(tensor, reference, rtol=0, atol=0)
    assert got[1].shape[-1] == attention.v_head_dim != attention.qk_head_dim == got[0].shape[-1]


def test_mla_set_refuses_attention_without_latent_projections(tmp_path):
    (result,) = generate([load_config("misfit_mla_configs", "mla_ulysses_on_llama")], output_dir=tmp_path)
    assert result.error is not None and not result.outputs
    assert "\n" not in result.error
    for fragment in ["requires_attributes('attention'", "self.kv_b_proj", "ULYSSES_ATTENTION"]:
        assert fragment in result.error, (fragment, result.error)
