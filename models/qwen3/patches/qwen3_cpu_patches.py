"""Pure-torch stand-ins for the Liger kernels of the Qwen3 GPU file.

They have the structure of the GPU patches (same classes replaced, same parameters and state-dict
keys) but run anywhere, so CPU tests can prove the generated file computes what stock HF does.
"""

import torch
from torch import nn
from transformers.models.qwen3.modeling_qwen3 import rotate_half


_FP32 = torch.float32


def _rms_normalize(hidden_states: torch.Tensor, eps: float) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) in fp32, as the fused kernels compute it."""
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return hidden_states * torch.rsqrt(variance + eps)


class TorchRMSNorm(nn.Module):
    """RMSNorm with the Liger module's interface: `weight` parameter, `variance_epsilon` kept for HF."""

    def __init__(self, hidden_size, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        # normalise in fp32 like Liger's "llama" casting mode, then scale in the input dtype
        normalized = _rms_normalize(hidden_states.to(_FP32), self.variance_epsilon)
        return self.weight * normalized.to(input_dtype)

    def extra_repr(self):
        return f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}"


def torch_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
    """Rope computed in fp32 and cast back, the precision Liger's rope kernel keeps in bf16."""
    cos = cos.unsqueeze(unsqueeze_dim).to(_FP32)
    sin = sin.unsqueeze(unsqueeze_dim).to(_FP32)
    q_fp32, k_fp32 = q.to(_FP32), k.to(_FP32)
    q_embed = (q_fp32 * cos) + (rotate_half(q_fp32) * sin)
    k_embed = (k_fp32 * cos) + (rotate_half(k_fp32) * sin)
    return q_embed.to(q.dtype), k_embed.to(k.dtype)


def swiglu_forward(self, x):
    # SwiGLU as one expression: the shape of the fused kernel's computation, act(gate) * up
    return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))
