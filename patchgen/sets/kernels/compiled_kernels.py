"""Regional compilation: upstream's RMSNorm and gated MLP, each compiled by `torch.compile` on CUDA.

Each class here is upstream's module (same constructor, parameters, state-dict keys and math) whose
forward runs as one `torch.compile`d region when its input is on CUDA. Inductor fuses the norm's upcast,
mean of squares, rsqrt and scale into one kernel (and its backward into one more), and the MLP's
activation and product into the matmuls' epilogues; its partitioner saves what Liger's kernels save
(the norm's input and per-row scale, the two projections) instead of eager torch's fp32 intermediates.
Nothing is installed: Inductor ships with torch.

On other devices (CPU tests) the same `eager_forward` runs uncompiled, so it is its own pure-torch
twin: bit for bit upstream's module. One compiled function serves every layer (Dynamo treats the
module's parameters as inputs), and the input is seen as `[tokens, last dim]` rows with the token
count dynamic from the first call (`run_on_token_rows`): one graph per last dimension (hidden size,
head_dim) for every batch size and sequence length, instead of a recompile each time one changes,
while the last dimension stays static (Inductor sizes its reductions for it).
"""

import torch
from torch import nn
from transformers.activations import ACT2FN

from patchgen.dsl.patch_sets import PatchSet


COMPILED_RMS_NORM = PatchSet("compiled_rms_norm", "upstream's RMSNorm, compiled by torch.compile on CUDA")
COMPILED_GATED_MLP = PatchSet("compiled_gated_mlp", "upstream's gated MLP, compiled by torch.compile on CUDA")


def run_on_token_rows(function, hidden_states: torch.Tensor) -> torch.Tensor:
    """`function` of `hidden_states` viewed as `[tokens, last dim]`, its result viewed back: a compiled region
    then has one graph for every batch size and sequence length (the row count is dynamic from the first call)."""
    rows = hidden_states.reshape(-1, hidden_states.shape[-1])
    torch._dynamo.maybe_mark_dynamic(rows, 0)
    return function(rows).view(*hidden_states.shape[:-1], -1)


@COMPILED_RMS_NORM.replace_class(
    "rms_norm",
    description=(
        "upstream's RMSNorm (fp32 normalise, cast back, scale), one torch.compile region on CUDA: one fused "
        "kernel forward and backward; eager, bit for bit upstream, elsewhere"
    ),
)
class CompiledRMSNorm(nn.Module):
    """Upstream's RMSNorm; on CUDA its forward is one compiled region (Inductor: one kernel each way)."""

    def __init__(self, hidden_size, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if hidden_states.is_cuda:
            return run_on_token_rows(self.compiled_forward, hidden_states)
        return self.eager_forward(hidden_states)

    def eager_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)

    compiled_forward = torch.compile(eager_forward)

    def extra_repr(self):
        return f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}"


@COMPILED_GATED_MLP.replace_class(
    "mlp",
    description=(
        "upstream's gated MLP down(act(gate(x)) * up(x)), one torch.compile region on CUDA: act * up fused "
        "into one kernel forward and backward; eager, bit for bit upstream, elsewhere"
    ),
)
class CompiledGatedMLP(nn.Module):
    """Upstream's gated MLP; on CUDA its forward is one compiled region (act * up fused with the matmuls)."""

    def __init__(self, config, intermediate_size=None):
        super().__init__()
        self.config = config
        self.hidden_size = config.hidden_size
        self.intermediate_size = intermediate_size if intermediate_size is not None else config.intermediate_size
        bias = getattr(config, "mlp_bias", False)
        self.gate_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=bias)
        self.up_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=bias)
        self.down_proj = nn.Linear(self.intermediate_size, self.hidden_size, bias=bias)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x):
        if x.is_cuda:
            return run_on_token_rows(self.compiled_forward, x)
        return self.eager_forward(x)

    def eager_forward(self, x):
        # through the projection modules, not their weights: tensor parallelism's hooks live on them
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))

    compiled_forward = torch.compile(eager_forward)
