"""Qwen3-Next specifics: stock checkpoints load, the router loss is kept, both token mixers call their steps.

The numbers against stock (logits, loss, gradients, generate, save/load, eager/sdpa, padded batches) are
the family and equivalence tests' (`tests/tiny_families.py`, `tests/equivalence/architectures.py`), and
sequence parallelism across 2 and 4 gloo ranks is `tests/test_models_sequence_parallel.py`'s. Here:

- a stock `save_pretrained` checkpoint (experts one by one) loads into both files with no missing keys;
- with `output_router_logits`, the loss (language model + router aux loss) equals stock's: the file keeps
  upstream's causal-LM forward, which the shared fused-loss forward could not replace;
- the gated attention is the shared forward with the gated projection and output steps bound, and keeps the
  source marker of `set_attn_implementation`; the delta-net forward calls upstream's pure-torch delta rule
  in the CPU file and flash-linear-attention's in the GPU file;
- without flash-linear-attention installed, the GPU file's delta rule fails in one line naming the pin;
  on a GPU with it installed, fla's kernel equals upstream's pure-torch delta rule (marked `gpu`).
"""

import importlib.util
import inspect

import pytest
import torch
import transformers
from safetensors import safe_open
from tiny_families import FAMILIES
from transformers.conversion_mapping import USER_REGISTERED_MAPPINGS
from transformers.models.qwen3_next import modeling_qwen3_next

import generated.qwen3_next.patched_modeling_qwen3_next_cpu as next_cpu
import generated.qwen3_next.patched_modeling_qwen3_next_gpu as next_gpu


FLA_INSTALLED = importlib.util.find_spec("fla") is not None


def tiny_config(**overrides) -> transformers.Qwen3NextConfig:
    return transformers.Qwen3NextConfig(**{**FAMILIES["qwen3_next"].config_kwargs, **overrides})


@pytest.fixture(scope="module")
def stock_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    stock = transformers.Qwen3NextForCausalLM(tiny_config()).eval()
    folder = tmp_path_factory.mktemp("qwen3_next_stock")
    stock.save_pretrained(folder)
    return stock, folder


def test_stock_checkpoint_stores_experts_one_by_one(stock_checkpoint):
    _, folder = stock_checkpoint
    with safe_open(str(folder / "model.safetensors"), "pt") as checkpoint:
        keys = set(checkpoint.keys())
    assert "model.layers.0.mlp.experts.0.gate_proj.weight" in keys
    assert not any(key.endswith("experts.gate_up_proj") for key in keys)


@pytest.mark.parametrize("module", [next_cpu, next_gpu], ids=["cpu", "gpu"])
def test_stock_checkpoint_loads_without_missing_keys(module, stock_checkpoint):
    stock, folder = stock_checkpoint
    loaded, info = module.Qwen3NextForCausalLM.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    for key, value in stock.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0, msg=key)
    assert "qwen3_next" not in USER_REGISTERED_MAPPINGS  # transformers' own mapping: the classes are not custom code
    if module is next_cpu:  # the GPU file's kernels need a GPU to run
        input_ids = torch.randint(1, 99, (2, 9), generator=torch.Generator().manual_seed(4))
        torch.testing.assert_close(loaded.eval()(input_ids).logits, stock(input_ids).logits)


def test_router_aux_loss_and_gradients_equal_stock():
    """Upstream's forward is kept: the loss includes router_aux_loss_coef * aux_loss, as stock's does."""
    torch.manual_seed(0)
    stock = transformers.Qwen3NextForCausalLM(tiny_config(output_router_logits=True))
    generated = next_cpu.Qwen3NextForCausalLM(tiny_config(output_router_logits=True))
    generated.load_state_dict(stock.state_dict())
    input_ids = torch.randint(1, 99, (2, 11), generator=torch.Generator().manual_seed(2))
    expected, actual = stock(input_ids, labels=input_ids), generated(input_ids, labels=input_ids)
    assert expected.aux_loss > 0
    torch.testing.assert_close(actual.aux_loss, expected.aux_loss)
    torch.testing.assert_close(actual.loss, expected.loss)
    expected.loss.backward()
    actual.loss.backward()
    stock_parameters = dict(stock.named_parameters())
    for name, parameter in generated.named_parameters():
        torch.testing.assert_close(parameter.grad, stock_parameters[name].grad, msg=name)


@pytest.mark.parametrize("module", [next_cpu, next_gpu], ids=["cpu", "gpu"])
def test_gated_attention_forward_calls_the_shared_steps(module):
    forward = inspect.getsource(module.Qwen3NextAttention.forward)
    assert "output_gate = gated_query_projection(self, hidden_states)" in forward
    assert "= per_head_qk_norm(self, query_states, key_states, hidden_shape)" in forward
    assert "= partial_rotary(query_states, key_states, cos, sin)" in forward
    assert "= gated_output_projection(self, attn_output, output_gate)" in forward
    assert "attn_output * torch.sigmoid(output_gate)" in inspect.getsource(module.gated_output_projection)
    assert "ALL_ATTENTION_FUNCTIONS.get_interface(" in forward  # what set_attn_implementation looks for


def test_delta_net_forward_calls_each_files_delta_rule():
    cpu_forward = inspect.getsource(next_cpu.Qwen3NextGatedDeltaNet.forward)
    gpu_forward = inspect.getsource(next_gpu.Qwen3NextGatedDeltaNet.forward)
    assert "= torch_chunk_gated_delta_rule(" in cpu_forward and "fla_chunk_gated_delta_rule" not in cpu_forward
    assert "= fla_chunk_gated_delta_rule(" in gpu_forward and "torch_chunk_gated_delta_rule" not in gpu_forward
    # the single-token decoding step keeps upstream's recurrent rule (fla's when upstream finds it installed)
    assert (
        "= torch_recurrent_gated_delta_rule(" in cpu_forward and "= torch_recurrent_gated_delta_rule(" in gpu_forward
    )


def delta_rule_inputs(device, dtype=torch.float32, seq=37):
    """[batch, seq, heads, dim] inputs as the layer passes them: 4 heads, a decay <= 0, beta in (0, 1)."""
    generator = torch.Generator().manual_seed(3)
    query, key, value = (torch.randn(2, seq, 4, 16, generator=generator) for _ in range(3))
    g = -torch.rand(2, seq, 4, generator=generator)
    beta = torch.rand(2, seq, 4, generator=generator)
    return [x.to(device, dtype) for x in (query, key, value, g, beta)]


@pytest.mark.skipif(FLA_INSTALLED, reason="flash-linear-attention is installed here")
def test_gpu_delta_rule_without_fla_fails_in_one_line_naming_the_pin():
    query, key, value, g, beta = delta_rule_inputs("cpu")
    with pytest.raises(ImportError, match=r"pip install flash-linear-attention==0\.6\.0") as failure:
        next_gpu.fla_chunk_gated_delta_rule(query, key, value, g=g, beta=beta, use_qk_l2norm_in_kernel=True)
    assert "\n" not in str(failure.value)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or not FLA_INSTALLED, reason="needs a CUDA GPU and fla")
def test_fla_delta_rule_equals_upstreams_torch_delta_rule_on_gpu():
    """fla's Triton kernel against upstream's pure-torch chunked rule, with an initial and a final state.

    Tolerance 2e-3: fla multiplies with tl.dot, which runs fp32 operands as TF32 (10-bit mantissa, ~1e-3
    relative) on NVIDIA tensor cores, while the torch reference keeps full fp32 matmuls.
    """
    query, key, value, g, beta = delta_rule_inputs("cuda")
    state = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(5)).cuda()
    options = dict(g=g, beta=beta, initial_state=state, output_final_state=True, use_qk_l2norm_in_kernel=True)
    # upstream's function with its fla dispatch unwrapped: the pure-torch reference
    torch_rule = inspect.unwrap(modeling_qwen3_next.torch_chunk_gated_delta_rule)
    expected_out, expected_state = torch_rule(query, key, value, **options)
    out, final_state = next_gpu.fla_chunk_gated_delta_rule(query, key, value, **options)
    torch.testing.assert_close(out, expected_out, rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(final_state, expected_state, rtol=2e-3, atol=2e-3)
