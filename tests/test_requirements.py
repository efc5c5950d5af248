"""A patch set that does not fit an upstream is refused at generation, naming the requirement, the upstream
place and what fits instead; where it fits, it generates. Checked on real transformers modules."""

import pytest
import torch

from patchgen.commands.codegen import generate
from patchgen.load.discovery import load_config


REFUSED = {
    "in_place_on_post_norm": [
        "use(in_place_norm) on Olmo2RMSNorm",
        "requires_pre_norm('rms_norm')",
        "Olmo2DecoderLayer.forward",
        "adds the output of self.post_attention_layernorm",
        "use an out-of-place norm set",
    ],
    "separate_on_fused": [
        "requires_attributes('attention', 'q_proj', 'k_proj', 'v_proj')",
        "Phi3Attention.__init__",
        "defines no self.q_proj, self.k_proj, self.v_proj",
        "self.qkv_proj)",
        "bind a fused-qkv projection step instead",
    ],
    "full_rotary_on_partial": [
        "requires_same_code('rope', ...)",
        "upstream apply_rotary_pos_emb",
        "transformers.models.llama.modeling_llama.apply_rotary_pos_emb",
        "it differs at",
        "partial-rotary",
    ],
    "default_step_on_fused": [
        "requires_attributes('attention', 'q_proj') of step project=separate_projection",
        "Phi3Attention.__init__",
        "bind project=fused_projection",
    ],
    "fused_step_on_separate": [
        "requires_attributes('attention', 'qkv_proj') of step project=fused_projection",
        "LlamaAttention.__init__",
        "bind project=separate_projection",
    ],
    "narrow_constructor": ["calls `Olmo2RMSNorm(", "NarrowNorm(hidden_size) cannot take", "upstream's constructor"],
}


def run(name, tmp_path):
    (result,) = generate([load_config("reqpatches.sets", name)], output_dir=tmp_path)
    return result


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_set_that_does_not_fit_is_refused_in_one_line(name, tmp_path):
    result = run(name, tmp_path)
    assert result.error is not None and not result.outputs
    assert "\n" not in result.error
    for fragment in REFUSED[name]:
        assert fragment in result.error, (fragment, result.error)


@pytest.mark.parametrize(
    "name", ["in_place_on_pre_norm", "separate_on_separate", "full_rotary_on_full", "fused_step_on_fused"]
)
def test_set_that_fits_generates(name, tmp_path):
    result = run(name, tmp_path)
    assert result.error is None, result.error


def test_refused_layout_would_have_trained_wrongly():
    """Why post-norm + in-place is refused, in plain torch: a norm whose backward overwrites its incoming
    gradient (as LigerRMSNorm(in_place=True) does) gives wrong gradients when its output is added to the
    residual, and right ones in a pre-norm layer."""

    class InPlaceNorm(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            with torch.enable_grad():
                x = x.detach().requires_grad_()
                y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
                (dx,) = torch.autograd.grad(y, x, grad)
            grad.copy_(dx)  # the incoming gradient buffer is reused for the result, as in-place kernels do
            return grad

    def reference_norm(x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)

    torch.manual_seed(0)
    x = torch.randn(4, 8, dtype=torch.float64)
    weight = torch.randn(8, 8, dtype=torch.float64)

    def gradients(norm, post_norm):
        inputs = x.clone().requires_grad_()
        residual = inputs * 1.0
        if post_norm:  # OLMo-2: residual + norm(f(x))
            out = residual + norm(inputs @ weight)
        else:  # Llama: residual + f(norm(x))
            out = residual + norm(inputs) @ weight
        out.pow(2).sum().backward()
        return inputs.grad

    post_error = (gradients(InPlaceNorm.apply, True) - gradients(reference_norm, True)).abs().max()
    pre_error = (gradients(InPlaceNorm.apply, False) - gradients(reference_norm, False)).abs().max()
    assert post_error > 1e-3  # wrong: the residual's gradient was overwritten
    assert pre_error < 1e-12  # right: the norm's gradient buffer is its own
