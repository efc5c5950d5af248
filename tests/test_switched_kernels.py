"""patchgen/sets/kernels/switched_kernels.py: upstream's RMSNorm / SwiGLU MLP below a token count, Liger's kernels from it.

On CPU the modules always run their torch branch, a copy of upstream's code: compared bitwise with stock
Qwen3RMSNorm / Qwen3MLP on the same shapes, both as defined in models/common and as copied into the
generated Qwen3 GPU file. The rule that picks the branch (`patchgen.runtime.kernel_sizes`) is tested at its
boundary; the Liger branch itself needs CUDA (Liger's RMSNorm / SwiGLU kernels fail under Triton's CPU
interpreter) and is compared with stock on both sides of the threshold by the `gpu` test at the end.
"""

from __future__ import annotations

import importlib
import os

import pytest
import torch
from conftest import TINY_DENSE
from transformers import Qwen3Config
from transformers.models.qwen3 import modeling_qwen3

import generated.qwen3.patched_modeling_qwen3_gpu as qwen3_gpu
from patchgen.commands.codegen import generate
from patchgen.load.discovery import load_config
from patchgen.runtime import kernel_sizes
from patchgen.sets.kernels.switched_kernels import SizeSwitchedRMSNorm, SizeSwitchedSwiGLUMLP


NORMS = {"switched_kernels": SizeSwitchedRMSNorm, "generated gpu file": qwen3_gpu.Qwen3RMSNorm}
MLPS = {"switched_kernels": SizeSwitchedSwiGLUMLP, "generated gpu file": qwen3_gpu.Qwen3MLP}


def norm_pair(norm_class, dtype: torch.dtype, width: int):
    torch.manual_seed(0)
    upstream = modeling_qwen3.Qwen3RMSNorm(width, eps=1e-6)
    switched = norm_class(width, eps=1e-6)
    with torch.no_grad():
        upstream.weight.add_(0.1 * torch.randn(width))
    switched.load_state_dict(upstream.state_dict())  # strict: the same keys and shapes
    return upstream.to(dtype), switched.to(dtype)


def mlp_pair(mlp_class, dtype: torch.dtype, config: Qwen3Config | None = None):
    torch.manual_seed(0)
    config = config or Qwen3Config(**TINY_DENSE)
    upstream = modeling_qwen3.Qwen3MLP(config)
    switched = mlp_class(config)
    switched.load_state_dict(upstream.state_dict())
    return upstream.to(dtype), switched.to(dtype)


def assert_forward_and_backward_equal(upstream, switched, shape, dtype):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(dtype).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    expected, actual = upstream(x), switched(x2)
    assert torch.equal(actual, expected)
    gradient = torch.randn(expected.shape, generator=torch.Generator().manual_seed(2)).to(dtype)
    expected.backward(gradient)
    actual.backward(gradient)
    assert torch.equal(x2.grad, x.grad)
    upstream_grads = dict(upstream.named_parameters())
    for name, parameter in switched.named_parameters():
        assert torch.equal(parameter.grad, upstream_grads[name].grad), name


DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])


@DTYPES
@pytest.mark.parametrize("source", sorted(NORMS))
@pytest.mark.parametrize("shape", [(2, 7, 32), (2, 7, 4, 8)], ids=["hidden", "per-head (q_norm)"])
def test_norm_on_cpu_is_upstream_bit_for_bit(source, shape, dtype):
    upstream, switched = norm_pair(NORMS[source], dtype, shape[-1])
    assert_forward_and_backward_equal(upstream, switched, shape, dtype)


@DTYPES
@pytest.mark.parametrize("source", sorted(MLPS))
def test_mlp_on_cpu_is_upstream_bit_for_bit(source, dtype):
    upstream, switched = mlp_pair(MLPS[source], dtype)
    assert_forward_and_backward_equal(upstream, switched, (2, 7, 32), dtype)


def test_a_cpu_tensor_never_takes_the_liger_branch_even_at_threshold_zero(monkeypatch):
    monkeypatch.setattr(kernel_sizes, "LIGER_NORM_MLP_MIN_TOKENS", 0)
    x = torch.randn(2, 7, 32, generator=torch.Generator().manual_seed(1))
    assert kernel_sizes.liger_norm_mlp_for_tokens(14)  # the size alone would pick Liger's kernel
    assert not kernel_sizes.use_liger_norm_mlp(x)  # but Liger's kernels are Triton: CUDA only
    upstream, switched = norm_pair(qwen3_gpu.Qwen3RMSNorm, torch.float32, 32)
    assert torch.equal(switched(x), upstream(x))
    upstream, switched = mlp_pair(qwen3_gpu.Qwen3MLP, torch.float32)
    assert torch.equal(switched(x), upstream(x))


def test_the_rule_switches_at_the_threshold():
    threshold = kernel_sizes.LIGER_NORM_MLP_MIN_TOKENS
    if "PATCHGEN_LIGER_NORM_MLP_MIN_TOKENS" not in os.environ:
        assert threshold == 8192  # the value run 1's per-op table supports (reasons at the constant)
    assert not kernel_sizes.liger_norm_mlp_for_tokens(threshold - 1)
    assert kernel_sizes.liger_norm_mlp_for_tokens(threshold)
    assert kernel_sizes.liger_norm_mlp_for_tokens(4 * threshold)


def test_tokens_are_batch_times_sequence_for_hidden_states_and_per_head_inputs():
    meta = dict(device="meta")
    assert kernel_sizes.tokens_in(torch.empty(2, 4096, 1024, **meta)) == 8192
    assert kernel_sizes.tokens_in(torch.empty(2, 4096, 16, 128, **meta)) == 8192  # q_norm: the same step's count
    assert kernel_sizes.tokens_in(torch.empty(8191, 1024, **meta)) == 8191


def test_the_threshold_is_read_from_the_environment(monkeypatch):
    as_imported = dict(vars(kernel_sizes))  # reload makes new function objects: the generated file holds these
    try:
        monkeypatch.setenv("PATCHGEN_LIGER_NORM_MLP_MIN_TOKENS", "12345")
        importlib.reload(kernel_sizes)  # re-runs the module in its own namespace, where the file's imports look
        assert kernel_sizes.LIGER_NORM_MLP_MIN_TOKENS == 12345
        assert not kernel_sizes.liger_norm_mlp_for_tokens(12344) and kernel_sizes.liger_norm_mlp_for_tokens(12345)
        assert qwen3_gpu.use_liger_norm_mlp.__globals__["LIGER_NORM_MLP_MIN_TOKENS"] == 12345
    finally:
        vars(kernel_sizes).update(as_imported)


def test_the_mlp_refuses_an_activation_the_kernel_does_not_compute():
    config = Qwen3Config(**TINY_DENSE, hidden_act="gelu")
    with pytest.raises(ValueError, match="needs hidden_act silu, not gelu"):
        qwen3_gpu.Qwen3MLP(config)


def test_the_bench_note_names_the_branch_the_file_takes():
    from benchmarks import bench_worker

    model = qwen3_gpu.Qwen3ForCausalLM(Qwen3Config(**TINY_DENSE))
    assert bench_worker.norm_mlp_path(model, 4, 8192) == "norm/mlp: torch"  # on CPU: Liger's kernels cannot run
    assert bench_worker.norm_mlp_path(modeling_qwen3.Qwen3ForCausalLM(Qwen3Config(**TINY_DENSE)), 4, 8192) == ""


SWITCHED_MISFITS = {
    "switched_norm_on_olmo2": ["Olmo2RMSNorm", "LlamaRMSNorm", "LIGER_RMS_NORM_OUT_OF_PLACE"],
    "switched_norm_on_gemma3": ["Gemma3RMSNorm", "LIGER_GEMMA_RMS_NORM"],
    "switched_mlp_on_llama": ["LlamaMLP", "bias=config.mlp_bias", "LIGER_SWIGLU_MLP"],
}


@pytest.mark.parametrize("name", sorted(SWITCHED_MISFITS))
def test_generation_refuses_the_sets_where_upstream_computes_something_else(name, tmp_path):
    (result,) = generate([load_config("switched_kernel_misfits", name)], output_dir=tmp_path)
    assert result.error is not None and not result.outputs and "\n" not in result.error
    for fragment in SWITCHED_MISFITS[name]:
        assert fragment in result.error, (fragment, result.error)


# -- on a GPU: each branch against stock, on both sides of the threshold ----------------------------------------

# Each output and gradient is compared with stock's in fp32 on the same input. fp32: Liger's kernels reduce in
# another order (~1e-6 relative): within FP32_FLOOR x the largest |entry|. bf16: Liger's RMSNorm rounds once where
# eager torch rounds after each op, and its SwiGLU casts silu(gate) * up once; the file passes when its error is
# at most BF16_FACTOR x the error of stock run in bf16, plus BF16_FLOOR x the largest |entry| (as
# tests/gpu/check_qwen3_gpu.py judges the whole model).
FP32_FLOOR, BF16_FACTOR, BF16_FLOOR = 1e-5, 2.0, 1e-3


def outputs_and_gradients(module, x: torch.Tensor, gradient: torch.Tensor) -> dict[str, torch.Tensor]:
    """Output, input gradient and parameter gradients of one forward + backward, all in fp32."""
    x = x.detach().clone().requires_grad_()
    output = module(x)
    # a fresh copy of the incoming gradient: Liger's norm writes its input gradient into it (in place)
    output.backward(gradient.to(output.dtype).clone())
    found = {"output": output, "input grad": x.grad}
    found.update({f"{name} grad": parameter.grad for name, parameter in module.named_parameters()})
    return {name: value.detach().float() for name, value in found.items()}


def gpu_cases(dtype: torch.dtype, tokens: int):
    """(stock module, switched module, input shape) for the hidden norm, the per-head q norm and the MLP."""
    config = Qwen3Config(hidden_size=256, intermediate_size=512, num_attention_heads=4, head_dim=64)
    yield (*norm_pair(qwen3_gpu.Qwen3RMSNorm, dtype, 256), (1, tokens, 256))
    yield (*norm_pair(qwen3_gpu.Qwen3RMSNorm, dtype, 64), (1, tokens, 4, 64))
    yield (*mlp_pair(qwen3_gpu.Qwen3MLP, dtype, config), (1, tokens, 256))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="Liger's Triton kernels need CUDA")
@DTYPES
def test_both_branches_match_stock_on_cuda(dtype):
    threshold = kernel_sizes.LIGER_NORM_MLP_MIN_TOKENS
    generator = torch.Generator("cuda").manual_seed(1)
    for tokens, takes_liger in ((max(threshold // 2, 1), False), (max(threshold, 1), True)):
        for stock, switched, shape in gpu_cases(dtype, tokens):
            stock, switched = stock.cuda(), switched.cuda()
            x = torch.randn(shape, device="cuda", generator=generator)
            gradient = torch.randn(shape, device="cuda", generator=generator)  # the output has the input's shape
            assert qwen3_gpu.use_liger_norm_mlp(x.to(dtype)) is takes_liger
            reference = outputs_and_gradients(stock.float(), x, gradient)  # stock in fp32
            stock.to(dtype)
            stock_found = outputs_and_gradients(stock, x.to(dtype), gradient)
            switched_found = outputs_and_gradients(switched, x.to(dtype), gradient)
            for name, expected in reference.items():
                largest = expected.abs().max().item()
                stock_error = (stock_found[name] - expected).abs().max().item()
                error = (switched_found[name] - expected).abs().max().item()
                allowed = (
                    BF16_FACTOR * stock_error + BF16_FLOOR * largest
                    if dtype == torch.bfloat16
                    else FP32_FLOOR * largest
                )
                where = (
                    f"{type(switched).__name__} {shape} {dtype} {'Liger' if takes_liger else 'torch'} branch: {name}"
                )
                assert error <= allowed, (
                    f"{where}: error {error:.3g} > allowed {allowed:.3g} (stock's own {stock_error:.3g})"
                )
