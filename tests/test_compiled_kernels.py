"""patchgen/sets/kernels/compiled_kernels.py: upstream's RMSNorm and gated MLP, compiled on CUDA, upstream's eagerly elsewhere.

On CPU the modules run `eager_forward`: the ops of upstream's modules on the same shapes, hence compared
bitwise with them. That the compiled region traces whole (no graph break, so one Inductor graph each
way) is checked with Dynamo's `eager` backend, which traces without generating code. The compiled
path itself (Inductor's kernels) is compared with the eager one on a GPU (`-m gpu`).
"""

from __future__ import annotations

import functools

import pytest
import torch
from conftest import TINY_DENSE
from transformers import LlamaConfig, Qwen3Config
from transformers.models.llama import modeling_llama
from transformers.models.qwen3 import modeling_qwen3

from patchgen.sets.kernels.compiled_kernels import CompiledGatedMLP, CompiledRMSNorm, run_on_token_rows


def norm_pair(dtype: torch.dtype):
    torch.manual_seed(0)
    upstream = modeling_qwen3.Qwen3RMSNorm(32, eps=1e-6)
    compiled = CompiledRMSNorm(32, eps=1e-6)
    with torch.no_grad():
        upstream.weight.add_(0.1 * torch.randn(32))
    compiled.load_state_dict(upstream.state_dict())
    return upstream.to(dtype), compiled.to(dtype)


def mlp_pair(model: str):
    torch.manual_seed(0)
    if model == "llama":  # mlp_bias: upstream's LlamaMLP has biases when the config asks
        config = LlamaConfig(**TINY_DENSE, mlp_bias=True)
        upstream = modeling_llama.LlamaMLP(config)
    else:
        config = Qwen3Config(**TINY_DENSE)
        upstream = modeling_qwen3.Qwen3MLP(config)
    compiled = CompiledGatedMLP(config)
    compiled.load_state_dict(upstream.state_dict())  # strict: the same parameter names and shapes
    return upstream, compiled


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("shape", [(2, 7, 32), (2, 7, 4, 32)], ids=["hidden", "per-head (q_norm)"])
def test_norm_off_cuda_is_upstream_bit_for_bit(dtype, shape):
    upstream, compiled = norm_pair(dtype)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(dtype).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    expected, actual = upstream(x), compiled(x2)
    assert torch.equal(actual, expected)
    gradient = torch.randn_like(expected)
    expected.backward(gradient)
    actual.backward(gradient)
    assert torch.equal(x2.grad, x.grad) and torch.equal(compiled.weight.grad, upstream.weight.grad)


@pytest.mark.parametrize("model", ["qwen3", "llama"])
def test_gated_mlp_off_cuda_is_upstream_bit_for_bit(model):
    upstream, compiled = mlp_pair(model)
    x = torch.randn(2, 7, 32, generator=torch.Generator().manual_seed(1))
    expected, actual = upstream(x), compiled(x)
    assert torch.equal(actual, expected)
    expected.sum().backward()
    actual.sum().backward()
    upstream_grads = dict(upstream.named_parameters())
    for name, parameter in compiled.named_parameters():
        assert torch.equal(parameter.grad, upstream_grads[name].grad), name


def test_each_compiled_region_traces_as_one_graph():
    """fullgraph=True raises on a graph break: each module compiles to one graph, forward and backward."""
    _, norm = norm_pair(torch.float32)
    _, mlp = mlp_pair("qwen3")
    for module in (norm, mlp):
        traced = torch.compile(type(module).eager_forward, backend="eager", fullgraph=True)
        x = torch.randn(2, 7, 32, requires_grad=True)
        out = traced(module, x)
        assert torch.equal(out, module(x))
        out.sum().backward()
        assert x.grad is not None


def test_every_batch_size_and_sequence_length_shares_one_graph():
    """The compiled regions see [tokens, last dim] rows with the token count dynamic: no recompile per shape."""
    from torch._dynamo.testing import CompileCounter

    _, norm = norm_pair(torch.float32)
    _, mlp = mlp_pair("qwen3")
    for module in (norm, mlp):
        torch._dynamo.reset()
        counter = CompileCounter()
        compiled = functools.partial(torch.compile(type(module).eager_forward, backend=counter), module)
        for shape in ((1, 7, 32), (2, 16, 32), (3, 5, 32), (1, 64, 32)):
            x = torch.randn(shape)
            torch.testing.assert_close(run_on_token_rows(compiled, x), module(x))
        assert counter.frame_count == 1, f"{type(module).__name__}: {counter.frame_count} graphs"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="Inductor's GPU kernels need CUDA")
@pytest.mark.parametrize(
    "dtype, tolerance",
    # fp32: Inductor reduces in another order than eager (~1e-6 relative); bf16: the fused kernel rounds once
    # where eager rounds after each op (a bf16 ulp is 2**-8 ~ 4e-3 relative)
    [(torch.float32, dict(rtol=1e-5, atol=1e-5)), (torch.bfloat16, dict(rtol=1.6e-2, atol=1e-2))],
    ids=["fp32", "bf16"],
)
def test_compiled_regions_on_cuda_match_eager(dtype, tolerance):
    _, norm = norm_pair(dtype)
    _, mlp = mlp_pair("qwen3")
    for module, shape in ((norm.cuda(), (2, 64, 32)), (norm, (2, 64, 4, 32)), (mlp.to("cuda", dtype), (2, 64, 32))):
        x = torch.randn(shape, device="cuda", dtype=dtype, requires_grad=True)
        eager, compiled = module.eager_forward(x), module(x)  # forward on CUDA: the compiled region
        torch.testing.assert_close(compiled, eager, **tolerance)
        (eager_grad,) = torch.autograd.grad(eager.float().sum(), x)
        (compiled_grad,) = torch.autograd.grad(compiled.float().sum(), x)
        torch.testing.assert_close(compiled_grad, eager_grad, **tolerance)
