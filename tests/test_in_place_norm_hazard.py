"""The in-place RMSNorm backward (LigerRMSNorm's default) is wrong on post-norm layouts, right on pre-norm ones.

LigerRMSNorm(in_place=True) writes its input gradient dX into the incoming gradient dY
(`liger_kernel/ops/rms_norm.py`, `rms_norm_backward`: `dX = dY`). The Triton kernel needs a GPU and
the CPU twins compute with plain autograd (never in place), so no CPU equivalence test can see what
that does. Here an autograd function computes the norm in plain torch with the same in-place
backward, and replaces every RMSNorm of stock models:

- OLMo-2 (post-norm: `residual + post_attention_layernorm(attn_out)`): autograd hands the sum's
  gradient to the residual branch and to the norm as the *same tensor*; the in-place write corrupts
  the residual's gradient, so every earlier parameter's gradient is wrong. The out-of-place variant
  (`LIGER_RMS_NORM_OUT_OF_PLACE`, Liger's in_place=False) gives stock's gradients.
- Llama (pre-norm: every norm's output feeds projections only): both variants give stock's gradients,
  which is why `LIGER_RMS_NORM` stays the in-place kernel for pre-norm families.

So `LIGER_RMS_NORM` declares `requires_pre_norm`, and generation refuses it on OLMo-2 (last test, with
the MLP sets' state-dict-key requirements on Phi-3 and Llama, and the Ulysses steps' on Phi-3 and Llama).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import transformers
from conftest import REPO, TINY_DENSE
from torch import nn


class _RMSNormFunction(torch.autograd.Function):
    """`weight * x / sqrt(mean(x^2) + eps)` with a hand-written backward, optionally in place like Liger's."""

    @staticmethod
    def forward(ctx, x, weight, eps, in_place):
        rstd = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
        ctx.save_for_backward(x, weight, rstd)
        ctx.in_place = in_place
        return weight * (x * rstd)

    @staticmethod
    def backward(ctx, grad_output):
        x, weight, rstd = ctx.saved_tensors
        normalized = x * rstd
        grad_weight = (grad_output * normalized).reshape(-1, x.shape[-1]).sum(0)
        scaled = grad_output * weight
        grad_input = rstd * (scaled - normalized * (scaled * normalized).mean(-1, keepdim=True))
        if ctx.in_place:  # what LigerRMSNorm(in_place=True) does: dX is stored in dY's memory
            grad_output.copy_(grad_input)
            grad_input = grad_output
        return grad_input, grad_weight, None, None


class TwinRMSNorm(nn.Module):
    def __init__(self, weight: torch.Tensor, eps: float, in_place: bool):
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone())
        self.eps, self.in_place = eps, in_place

    def forward(self, hidden_states):
        return _RMSNormFunction.apply(hidden_states, self.weight, self.eps, self.in_place)


def _model(config_class: str, causal_lm: str):
    config = getattr(transformers, config_class)(**TINY_DENSE, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = getattr(transformers, causal_lm)(config)
    with torch.no_grad():  # norm weights away from 1, so the norms' own gradients matter
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model.train()


def _swap_norms(model, in_place: bool) -> int:
    """Replace every RMSNorm module of `model` by the twin (same weight); returns how many."""
    norms = [(name, module) for name, module in model.named_modules() if type(module).__name__.endswith("RMSNorm")]
    for name, module in norms:
        parent_name, _, attribute = name.rpartition(".")
        twin = TwinRMSNorm(module.weight, module.variance_epsilon, in_place)
        setattr(model.get_submodule(parent_name), attribute, twin)
    return len(norms)


def _gradients(model) -> dict[str, torch.Tensor]:
    input_ids = torch.randint(0, TINY_DENSE["vocab_size"], (2, 12), generator=torch.Generator().manual_seed(0))
    model(input_ids=input_ids, labels=input_ids).loss.backward()
    return {name: parameter.grad for name, parameter in model.named_parameters()}


def _largest_relative_error(got: dict, expected: dict) -> float:
    return max(float((got[name] - grad).abs().max() / grad.abs().max()) for name, grad in expected.items())


ARCHITECTURES = {
    "olmo2 (post-norm)": ("Olmo2Config", "Olmo2ForCausalLM"),
    "llama (pre-norm)": ("LlamaConfig", "LlamaForCausalLM"),
}


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_out_of_place_norm_backward_gives_stock_gradients(architecture):
    expected = _gradients(_model(*ARCHITECTURES[architecture]))
    model = _model(*ARCHITECTURES[architecture])
    assert _swap_norms(model, in_place=False) >= 5
    got = _gradients(model)
    for name, grad in expected.items():
        # the same function, differentiated by hand: float32 rounding apart, nothing more
        torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")


def test_in_place_norm_backward_is_right_on_pre_norm_layers():
    config_class, causal_lm = ARCHITECTURES["llama (pre-norm)"]
    expected = _gradients(_model(config_class, causal_lm))
    model = _model(config_class, causal_lm)
    _swap_norms(model, in_place=True)
    assert _largest_relative_error(_gradients(model), expected) < 1e-4


def test_in_place_norm_backward_is_wrong_on_post_norm_layers():
    """The configuration the in-place set must refuse: OLMo-2's post-norm layers get wrong gradients."""
    config_class, causal_lm = ARCHITECTURES["olmo2 (post-norm)"]
    expected = _gradients(_model(config_class, causal_lm))
    model = _model(config_class, causal_lm)
    _swap_norms(model, in_place=True)
    got = _gradients(model)
    assert _largest_relative_error(got, expected) > 0.1
    # the last layer's post-norms see their own gradient before any in-place write: the harm is upstream of them
    torch.testing.assert_close(
        got["model.layers.1.post_feedforward_layernorm.weight"],
        expected["model.layers.1.post_feedforward_layernorm.weight"],
        rtol=1e-4,
        atol=1e-6,
    )


# -- the generator refuses the layouts shown wrong above, for the repository's own sets ------------------

MISFITS = {
    "in_place_norm_on_olmo2": [
        "requires_pre_norm('rms_norm')",
        "post_attention_layernorm",
        "LIGER_RMS_NORM_OUT_OF_PLACE",
    ],
    "separate_swiglu_on_phi3": ["'gate_proj', 'up_proj', 'down_proj'", "LIGER_FUSED_SWIGLU_MLP"],
    "fused_swiglu_on_llama": ["'gate_up_proj', 'down_proj'", "TORCH_SWIGLU_MLP"],
    "separate_qkv_on_phi3": ["'q_proj', 'k_proj', 'v_proj'", "Phi3Attention", "project_qkv=fused_qkv_projection"],
    "per_head_norm_on_llama": ["'q_norm', 'k_norm'", "LlamaAttention", "qk_norm=no_qk_norm"],
}
# In a fresh interpreter, as a user runs the generator: a step requirement is matched to the bound step by
# identity, which modules imported afresh by earlier tests in this process would break.
GENERATE_MISFITS = """
import json, sys, tempfile
from patchgen.commands.codegen import generate
from patchgen.load.discovery import load_config
errors = {}
for name in sys.argv[1:]:
    (result,) = generate([load_config("misfit_kernel_configs", name)], output_dir=tempfile.mkdtemp())
    errors[name] = [result.error, len(result.outputs)]
print(json.dumps(errors))
"""


@pytest.fixture(scope="module")
def misfit_errors():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests" / "fixtures")])}
    result = subprocess.run(
        [sys.executable, "-c", GENERATE_MISFITS, *MISFITS], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("name", sorted(MISFITS))
def test_kernel_sets_refuse_layouts_they_do_not_fit(misfit_errors, name):
    error, outputs = misfit_errors[name]
    assert error is not None and outputs == 0
    assert "\n" not in error
    for fragment in MISFITS[name]:
        assert fragment in error, (fragment, error)
