"""The Qwen3-MoE GPU file's experts on a CUDA GPU: Liger's kernel runs by default, the switch works, compile refuses.

    pytest -m gpu -rA tests/gpu/test_moe_experts_gpu.py

Compiles use backend="eager": dynamo's fullgraph tracing is what fails or passes, and inductor's build
would spend device time on nothing this checks. `test_liger_kernel_itself_cannot_compile_fullgraph`
measures the reason the GPU file refuses torch.compile(fullgraph=True) / torch.export while Liger's
kernel is selected, and prints dynamo's message; if it ever compiles, that test fails and the refusal
should go.
"""

from __future__ import annotations

from unittest.mock import Mock, patch

import pytest
import torch
from tiny_families import FAMILIES
from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM
from transformers.integrations.moe import ALL_EXPERTS_FUNCTIONS, grouped_mm_experts_forward


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (Liger's Triton kernels)"),
]

# Liger's kernel multiplies fp32 operands as TF32 (tests/equivalence/architectures.py measured logits 9.3e-4
# apart from stock fp32 on an H200); 5e-3 is the harness's tolerance for this kernel.
TF32_TOL = dict(rtol=5e-3, atol=5e-3)


def tiny_config(**overrides) -> Qwen3MoeConfig:
    """The tiny Qwen3-MoE of the family tests: layer 0 sparse (4 experts, top 2), layer 1 dense."""
    return Qwen3MoeConfig(**{**FAMILIES["qwen3_moe"].config_kwargs, **overrides})


@pytest.fixture
def models():
    import generated.qwen3_moe.patched_modeling_qwen3_moe_gpu as moe_gpu

    torch.manual_seed(0)
    stock = Qwen3MoeForCausalLM(tiny_config(experts_implementation="eager")).cuda().eval()
    patched = moe_gpu.Qwen3MoeForCausalLM(tiny_config()).cuda().eval()
    patched.load_state_dict(stock.state_dict())
    input_ids = torch.randint(1, 99, (2, 16), device="cuda", generator=torch.Generator("cuda").manual_seed(3))
    return moe_gpu, stock, patched, input_ids


def test_liger_kernel_runs_by_default_and_the_switch_works(models):
    moe_gpu, stock, patched, input_ids = models
    assert patched.config._experts_implementation == "liger_fused_moe"
    expected = stock(input_ids).logits
    spies = {
        "liger_fused_moe": Mock(wraps=moe_gpu.liger_fused_moe),
        "grouped_mm": Mock(wraps=grouped_mm_experts_forward),
    }
    with patch.dict(ALL_EXPERTS_FUNCTIONS._global_mapping, spies):
        for implementation in ["liger_fused_moe", "grouped_mm", "eager"]:
            patched.set_experts_implementation(implementation)
            for spy in spies.values():
                spy.reset_mock()
            logits = patched(input_ids).logits
            for name, spy in spies.items():
                # one call per sparse layer (layer 0; layer 1 is dense)
                assert spy.call_count == (1 if name == implementation else 0), (implementation, name)
            torch.testing.assert_close(logits, expected, **TF32_TOL, msg=implementation)


def test_gpu_file_refuses_compile_then_compiles_with_grouped_mm(models):
    _, _, patched, input_ids = models
    torch._dynamo.reset()
    with pytest.raises(Exception, match=r"set_experts_implementation\('grouped_mm'\)"):
        torch.compile(patched, fullgraph=True, backend="eager")(input_ids)
    patched.set_experts_implementation("grouped_mm")
    torch._dynamo.reset()
    with torch.no_grad():
        compiled = torch.compile(patched, fullgraph=True, backend="eager")(input_ids).logits
        torch.testing.assert_close(compiled, patched(input_ids).logits, **TF32_TOL)


def test_liger_kernel_itself_cannot_compile_fullgraph(models):
    """Liger's forward without the GPU file's guard: dynamo must fail on it (the reason for the refusal)."""
    moe_gpu, _, patched, _ = models
    experts = patched.model.layers[0].mlp.experts
    hidden = torch.randn(16, 32, device="cuda")
    index = torch.randint(0, 4, (16, 2), device="cuda")
    weights = torch.rand(16, 2, device="cuda")
    torch._dynamo.reset()
    with pytest.raises(Exception) as failure:
        torch.compile(moe_gpu.LigerExperts.forward, fullgraph=True, backend="eager")(experts, hidden, index, weights)
    print("dynamo on LigerExperts.forward:", " ".join(str(failure.value).split())[:600])
