"""The committed Qwen3 files: importable, stock-compatible checkpoints, equal numbers to stock HF."""

import re

import pytest
import torch
from conftest import TINY_DENSE
from test_models_families import hub_wrapped
from transformers import Qwen3Config, Qwen3ForCausalLM

import generated.qwen3.patched_modeling_qwen3_cpu as qwen3_cpu
import generated.qwen3.patched_modeling_qwen3_gpu as qwen3_gpu
from patchgen.commands.codegen import generate
from patchgen.load.discovery import load_config


def tiny_config(**overrides) -> Qwen3Config:
    values = dict(TINY_DENSE, pad_token_id=0)
    values.update(overrides)
    return Qwen3Config(**values)


def stock_and_generated(module, **config_overrides):
    config = tiny_config(**config_overrides)
    torch.manual_seed(0)
    stock = Qwen3ForCausalLM(config).eval()
    patched = module.Qwen3ForCausalLM(config).eval()
    result = patched.load_state_dict(stock.state_dict())
    assert not result.missing_keys and not result.unexpected_keys
    return stock, patched


def shapes(model):
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


@pytest.mark.parametrize("module", [qwen3_gpu, qwen3_cpu], ids=["gpu", "cpu"])
def test_state_dict_keys_and_shapes_equal_stock(module):
    config = tiny_config()
    assert shapes(module.Qwen3ForCausalLM(config)) == shapes(Qwen3ForCausalLM(config))


def test_gpu_file_binds_its_kernels():
    """Per the GPU config: RMSNorm (also q_norm/k_norm) and SwiGLU MLP switched by size, Liger's rope, the loss by shape."""
    from liger_kernel.ops import LigerRMSNormFunction, LigerSiLUMulFunction
    from liger_kernel.transformers.rope import liger_rotary_pos_emb

    from patchgen.runtime.kernel_sizes import use_liger_norm_mlp
    from patchgen.runtime.losses import fastest_linear_cross_entropy

    model = qwen3_gpu.Qwen3ForCausalLM(tiny_config())
    layer = model.model.layers[0]
    for norm in (layer.input_layernorm, layer.self_attn.q_norm, layer.self_attn.k_norm, model.model.norm):
        assert type(norm) is qwen3_gpu.Qwen3RMSNorm
    assert type(layer.mlp) is qwen3_gpu.Qwen3MLP
    # the copied classes call Liger's functional kernels behind the runtime's size rule
    assert qwen3_gpu.use_liger_norm_mlp is use_liger_norm_mlp
    assert qwen3_gpu.LigerRMSNormFunction is LigerRMSNormFunction
    assert qwen3_gpu.LigerSiLUMulFunction is LigerSiLUMulFunction
    assert hub_wrapped(qwen3_gpu.apply_rotary_pos_emb) is liger_rotary_pos_emb  # under upstream's hub registration
    assert qwen3_gpu.linear_cross_entropy is fastest_linear_cross_entropy
    assert not hasattr(qwen3_gpu, "Qwen3ForTokenClassification")


@pytest.mark.parametrize("module", [qwen3_gpu, qwen3_cpu], ids=["gpu", "cpu"])
def test_checkpoints_load_both_ways(module, tmp_path):
    stock, patched = stock_and_generated(module)
    stock.save_pretrained(tmp_path / "stock")
    loaded, info = module.Qwen3ForCausalLM.from_pretrained(tmp_path / "stock", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    for key, value in stock.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)
    patched.save_pretrained(tmp_path / "patched")
    back, info = Qwen3ForCausalLM.from_pretrained(tmp_path / "patched", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    for key, value in patched.state_dict().items():
        torch.testing.assert_close(back.state_dict()[key], value, rtol=0, atol=0)


def test_cpu_file_equals_stock_logits_loss_and_gradients():
    stock, patched = stock_and_generated(qwen3_cpu)
    input_ids = torch.randint(1, 99, (2, 11), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(patched(input_ids).logits, stock(input_ids).logits)
    stock_loss = stock(input_ids, labels=input_ids).loss
    patched_loss = patched(input_ids, labels=input_ids).loss
    torch.testing.assert_close(patched_loss, stock_loss)
    stock_loss.backward()
    patched_loss.backward()
    stock_grads = dict(stock.named_parameters())
    for name, parameter in patched.named_parameters():
        torch.testing.assert_close(parameter.grad, stock_grads[name].grad, msg=name)


def test_cpu_file_generates_same_tokens_and_switches_attention():
    stock, patched = stock_and_generated(qwen3_cpu)
    prompt = torch.randint(1, 99, (1, 5), generator=torch.Generator().manual_seed(2))
    expected = stock.generate(prompt, max_new_tokens=6, do_sample=False)
    assert torch.equal(patched.generate(prompt, max_new_tokens=6, do_sample=False), expected)
    for implementation in ["eager", "sdpa"]:
        patched.set_attn_implementation(implementation)
        assert patched.config._attn_implementation == implementation
        torch.testing.assert_close(patched(prompt).logits, stock(prompt).logits)


@pytest.mark.parametrize("module", [qwen3_gpu, qwen3_cpu], ids=["gpu", "cpu"])
def test_modify_init_attribute_is_set(module):
    # the Ulysses modify_init patch runs after the upstream __init__ and records the head layout
    model = module.Qwen3ForCausalLM(tiny_config())
    layout = model.model.layers[1].self_attn.sequence_parallel_layout
    assert (layout.num_heads, layout.num_key_value_heads, layout.world_size) == (4, 2, 1)


def test_zero_patch_config_changes_only_header_and_imports(tmp_path):
    (result,) = generate([load_config("toypatches.qwen3_zero")], output_dir=tmp_path)
    assert result.error is None, result.error
    diff = {o.path.suffix: o.text for o in result.outputs}[".diff"]
    changed = [line for line in diff.splitlines()[2:] if re.match(r"^[+-](?![+-]{2} )", line)]
    assert len(changed) > 20
    # besides comments and imports, only the override that keeps the classes transformers' own code
    # (patchgen/load/native_code.py), added by the generator to the PreTrainedModel subclass
    other = [
        line
        for line in changed
        if not (
            line.startswith("+#") or re.match(r"^-\s*from \.+", line) or re.match(r"^\+\s*from transformers", line)
        )
    ]
    assert [line.strip() for line in other if line.strip() != "+"] == [
        "+    # [ADDED METHOD] Qwen3PreTrainedModel.is_custom_code: overrides the inherited one, see the banner above",
        "+    @classmethod",
        "+    def is_custom_code(cls) -> bool:",
        '+        """Custom only when loaded from the hub, as the stock class (its module is outside `transformers.`)."""',
        "+        return cls.is_remote_code()",
    ]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU for the Liger kernels")
def test_gpu_file_matches_stock_on_gpu():
    stock, patched = stock_and_generated(qwen3_gpu)
    stock, patched = stock.cuda(), patched.cuda()
    input_ids = torch.randint(1, 99, (2, 16), device="cuda", generator=torch.Generator("cuda").manual_seed(3))
    # fp32: Liger kernels differ from eager PyTorch only by reduction order
    torch.testing.assert_close(patched(input_ids).logits, stock(input_ids).logits, rtol=1e-4, atol=1e-4)
