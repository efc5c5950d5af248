"""Qwen3-MoE specifics: stock checkpoints load, the router loss is kept, and the experts dispatch is upstream's.

A stock `Qwen3MoeForCausalLM.save_pretrained` writes experts one by one
(`mlp.experts.0.gate_proj.weight`, ...). transformers fuses them into `experts.gate_up_proj` /
`experts.down_proj` on load only for its own classes (unless the model type is registered); the
generated files' classes count as its own (`patchgen/load/native_code.py`), so nothing is registered.

The experts class keeps upstream's dispatch (`patchgen/sets/experts/torch_moe_experts.py`, `liger_moe_experts.py`): the fused kernel is one
more registered implementation ("torch_fused_moe" in the CPU file, "liger_fused_moe" in the GPU file)
and the default; `set_experts_implementation` switches to any other, and the CPU default compiles with
`fullgraph=True` and exports.
"""

from unittest.mock import Mock, patch

import pytest
import torch
from conftest import TINY_DENSE
from safetensors import safe_open
from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM
from transformers.conversion_mapping import USER_REGISTERED_MAPPINGS
from transformers.integrations.moe import (
    ALL_EXPERTS_FUNCTIONS,
    batched_mm_experts_forward,
    grouped_mm_experts_forward,
)

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


def test_stock_conversion_applies_without_registering_anything():
    """The checkpoint above loads through transformers' own mapping: the classes are not custom code, and
    importing the files registers nothing (no process-wide side effect on other models of the type)."""
    assert "qwen3_moe" not in USER_REGISTERED_MAPPINGS
    for module in (moe_cpu, moe_gpu):
        assert module.Qwen3MoeForCausalLM.is_custom_code() is False


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


def seeded_ids(seed: int, shape=(2, 11)) -> torch.Tensor:
    return torch.randint(1, 99, shape, generator=torch.Generator().manual_seed(seed))


def stock_and_cpu_file(**overrides):
    """A stock model with random weights and the generated CPU model loaded with the same weights (eval mode).

    Each gets its own config: building a model writes the implementation it resolved into its config
    (stock: "grouped_mm"), which a second model built from that config would take as requested.
    """
    torch.manual_seed(0)
    stock = Qwen3MoeForCausalLM(tiny_config(**overrides)).eval()
    patched = moe_cpu.Qwen3MoeForCausalLM(tiny_config(**overrides)).eval()
    patched.load_state_dict(stock.state_dict())
    return stock, patched


@pytest.mark.parametrize(
    ("module", "fused"), [(moe_cpu, "torch_fused_moe"), (moe_gpu, "liger_fused_moe")], ids=["cpu", "gpu"]
)
def test_fused_kernel_is_a_registered_implementation_and_the_default(module, fused):
    assert module.Qwen3MoeForCausalLM._can_set_experts_implementation()
    model = module.Qwen3MoeForCausalLM(tiny_config())
    assert model.config._experts_implementation == fused
    assert fused in ALL_EXPERTS_FUNCTIONS
    # every upstream implementation stays selectable, by from_pretrained's keyword too
    chosen = module.Qwen3MoeForCausalLM(tiny_config(experts_implementation="batched_mm"))
    assert chosen.config._experts_implementation == "batched_mm"


def test_gpu_file_runs_liger_experts_forward():
    """The GPU file's implementation is Liger's own forward (its kernel cannot run on CPU; tests/test_models_gpu.py runs it)."""
    experts = moe_gpu.Qwen3MoeExperts(tiny_config(experts_implementation="liger_fused_moe"))
    hidden, index, weights = torch.zeros(3, 32), torch.zeros(3, 2, dtype=torch.long), torch.ones(3, 2)
    with patch.object(moe_gpu.LigerExperts, "forward", return_value=hidden) as liger_forward:
        assert experts(hidden, index, weights) is hidden
    liger_forward.assert_called_once_with(experts, hidden, index, weights)


@pytest.mark.parametrize("module", [moe_cpu, moe_gpu], ids=["cpu", "gpu"])
def test_fused_kernel_refuses_other_activations_at_construction(module):
    # The model refuses at construction, in one line: the fused experts kernel, or the SwiGLU set of the dense
    # MLP (its declared config values), whichever is built first...
    with pytest.raises(
        ValueError, match=r"SiLU gates only, not 'gelu'|hidden_act in \('silu', 'swish'\) only, got 'gelu'"
    ):
        module.Qwen3MoeForCausalLM(tiny_config(hidden_act="gelu"))
    # ...and with another experts implementation the experts kernel's own refusal is gone, the dense MLP's stays.
    with pytest.raises(ValueError, match=r"hidden_act in \('silu', 'swish'\) only, got 'gelu'"):
        module.Qwen3MoeForCausalLM(tiny_config(hidden_act="gelu", experts_implementation="grouped_mm"))


def test_set_experts_implementation_switches_the_kernel_that_runs():
    """Each name runs its own function (spied through the interface's global mapping) and all agree with stock.

    Tolerance: the implementations sum the same fp32 products in different orders (per-expert matmuls,
    batched matmuls, grouped matmuls): logits (|x| < 0.5) differ by an ulp or two (measured up to 7.5e-8);
    1e-5 absolute is far above that and far below a wrong expert or weight (> 1e-3 here).
    """
    stock, patched = stock_and_cpu_file()
    stock.set_experts_implementation("eager")
    input_ids = seeded_ids(1)
    expected = stock(input_ids).logits
    spies = {
        "batched_mm": Mock(wraps=batched_mm_experts_forward),
        "grouped_mm": Mock(wraps=grouped_mm_experts_forward),
        "torch_fused_moe": Mock(wraps=moe_cpu.torch_fused_moe),
    }
    with patch.dict(ALL_EXPERTS_FUNCTIONS._global_mapping, spies):
        for implementation in ["eager", "batched_mm", "grouped_mm", "torch_fused_moe"]:
            patched.set_experts_implementation(implementation)
            assert patched.config._experts_implementation == implementation
            for spy in spies.values():
                spy.reset_mock()
            logits = patched(input_ids).logits
            for name, spy in spies.items():
                # one call per sparse MoE layer (2 layers); "eager" is the class's own loop, no spy
                assert spy.call_count == (2 if name == implementation else 0), (implementation, name)
            torch.testing.assert_close(logits, expected, rtol=0, atol=1e-5, msg=implementation)


def test_fused_kernel_gradients_equal_stock_eager():
    """Loss and every gradient of the default (torch_fused_moe) CPU file against stock's eager experts loop.

    Same reasoning as for the logits: fp32 sums in another order; gradients (|g| < 0.3) differ by at most
    3.3e-8 measured, so atol 1e-6 (plus rtol 1e-5 for the larger ones) leaves a wide margin.
    """
    stock, patched = stock_and_cpu_file()
    stock.set_experts_implementation("eager")
    input_ids = seeded_ids(2)
    stock_loss = stock(input_ids, labels=input_ids).loss
    patched_loss = patched(input_ids, labels=input_ids).loss
    torch.testing.assert_close(patched_loss, stock_loss, rtol=0, atol=1e-5)
    stock_loss.backward()
    patched_loss.backward()
    stock_parameters = dict(stock.named_parameters())
    for name, parameter in patched.named_parameters():
        torch.testing.assert_close(parameter.grad, stock_parameters[name].grad, rtol=1e-5, atol=1e-6, msg=name)


def test_cpu_file_compiles_fullgraph():
    """torch.compile(fullgraph=True) of the default CPU file's forward: no graph break, no data-dependent guard.

    backend="aot_eager" traces with dynamo and AOT autograd (what fullgraph and export need) without
    inductor's C++ build, which takes over a minute on 2 cores. The compiled graph runs the same aten
    ops, possibly decomposed, hence assert_close's default fp32 tolerance rather than bitwise equality.
    """
    _, patched = stock_and_cpu_file()
    assert patched.config._experts_implementation == "torch_fused_moe"
    input_ids = seeded_ids(3)
    torch._dynamo.reset()
    compiled = torch.compile(patched, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(input_ids).logits, patched(input_ids).logits)


def compiled_training_step(model, input_ids):
    torch._dynamo.reset()
    torch.compile(model, fullgraph=True, backend="aot_eager")(input_ids, labels=input_ids).loss.backward()
    return {name: parameter.grad for name, parameter in model.named_parameters()}


def test_cpu_file_compiles_fullgraph_training_step():
    """The default experts kernel (the twin's grouped matmuls) compiles a whole training step with fullgraph=True.

    Under transformers 5.17 this failed (the grouped_mm fallback's backward read group offsets with .tolist(),
    which AOT autograd cannot trace; stock's grouped_mm failed the same way on CPU fp32): it was a strict xfail,
    and transformers 5.25's fallback compiles.
    """
    _, patched = stock_and_cpu_file()
    compiled_training_step(patched, seeded_ids(3))


def test_cpu_file_compiles_training_with_batched_mm():
    """The workaround the README gives for compiled training on CPU: batched_mm (static shapes) compiles fullgraph."""
    stock, patched = stock_and_cpu_file(experts_implementation="batched_mm")
    input_ids = seeded_ids(3)
    compiled_grads = compiled_training_step(patched, input_ids)
    stock(input_ids, labels=input_ids).loss.backward()
    for name, parameter in stock.named_parameters():
        torch.testing.assert_close(compiled_grads[name], parameter.grad, msg=name)


def test_cpu_file_exports_with_torch_export():
    """torch.export of the default CPU file; the program reproduces the eager logits (same ops, fp32)."""
    _, patched = stock_and_cpu_file()
    input_ids = seeded_ids(4)
    program = torch.export.export(patched, args=(input_ids,), kwargs={"use_cache": False})
    torch.testing.assert_close(program.module()(input_ids, use_cache=False).logits, patched(input_ids).logits)


def test_cpu_file_exports_to_onnx(tmp_path):
    """transformers' ONNX exporter (as its own test suite runs it) on the default CPU file; skipped without onnx.

    The exporter translates the grouped-matmul op the twin uses; onnxruntime's fp32 kernels sum in
    another order than torch's, hence assert_close's default fp32 tolerance (measured 1.0e-7).
    """
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    from transformers.exporters import OnnxConfig, OnnxExporter

    _, patched = stock_and_cpu_file()
    input_ids = seeded_ids(4)
    exported = OnnxExporter().export(patched, {"input_ids": input_ids}, config=OnnxConfig())  # 5.25's exporter API
    exported.save_pretrained(tmp_path)  # a file a runtime can load, as a user ships it
    assert any(path.suffix == ".onnx" for path in tmp_path.iterdir())
    logits = torch.as_tensor(exported(input_ids=input_ids).logits)  # run by onnxruntime
    torch.testing.assert_close(logits, patched(input_ids).logits)


def test_gpu_file_refuses_tracing_with_one_line():
    """Liger's kernel sizes buffers with .item(): under export/compile the GPU file raises its own message."""
    experts = moe_gpu.Qwen3MoeExperts(tiny_config(experts_implementation="liger_fused_moe"))
    torch.nn.init.normal_(experts.gate_up_proj)
    torch.nn.init.normal_(experts.down_proj)
    args = (torch.zeros(3, 32), torch.zeros(3, 2, dtype=torch.long), torch.ones(3, 2))
    advice = r"cannot be traced.*set_experts_implementation\('grouped_mm'\)"
    with pytest.raises(RuntimeError, match=advice):
        torch.export.export(experts, args)
    torch._dynamo.reset()
    with pytest.raises(Exception, match=advice):
        torch.compile(experts, fullgraph=True, backend="eager")(*args)


def test_cpu_experts_skip_slots_routed_elsewhere():
    """An index equal to num_experts (expert parallelism) contributes nothing, whatever its weight.

    Reference: the same sum computed slot by slot in float64. Inputs are O(1) (weights scaled by
    1/sqrt(fan-in)), so the fp32 result is within a few ulp of it: rtol 1e-5 / atol 1e-6 bound fp32
    rounding of ~50-term dot products and catch any contribution from a skipped slot (O(0.1)).
    """
    generator = torch.Generator().manual_seed(6)
    experts = moe_cpu.Qwen3MoeExperts(tiny_config(experts_implementation="torch_fused_moe"))
    with torch.no_grad():
        experts.gate_up_proj.copy_(torch.randn(experts.gate_up_proj.shape, generator=generator) / 32**0.5)
        experts.down_proj.copy_(torch.randn(experts.down_proj.shape, generator=generator) / 16**0.5)
    hidden = torch.randn(3, 32, generator=generator)
    index = torch.tensor([[0, 4], [1, 2], [4, 4]])
    weights = torch.full((3, 2), 0.5)
    out = experts(hidden, index, weights)
    assert torch.equal(out[2], torch.zeros(32))

    def reference(token: int) -> torch.Tensor:
        total = torch.zeros(32, dtype=torch.float64)
        for slot in range(2):
            expert = int(index[token, slot])
            if expert == 4:
                continue
            gate, up = (experts.gate_up_proj[expert].double() @ hidden[token].double()).chunk(2)
            down = experts.down_proj[expert].double() @ (torch.nn.functional.silu(gate) * up)
            total += weights[token, slot].double() * down
        return total

    for token in range(3):
        torch.testing.assert_close(out[token].double(), reference(token), rtol=1e-5, atol=1e-6)
