"""flash-linear-attention's kernels for linear-attention layers, as steps the `_gpu` files bind.

Upstream already looks for flash-linear-attention: `torch_chunk_gated_delta_rule` is decorated with
`use_kernel_func_from_hub_with_fallback("chunk_gated_delta_rule", "fla")`, which binds fla's kernel
when `import fla` succeeds at import time and otherwise falls back, with a log line, to the pure-torch
chunked delta rule (more than 10x slower on an H100, by upstream's own comment). A training file should
not slow down silently, so the GPU files bind fla's kernel explicitly as the delta-rule step of the
Ulysses delta-net forward (`patchgen/sets/attention/ulysses_linear_attention.py` calls `torch_chunk_gated_delta_rule`;
a GPU config re-applies that set with `bind={"torch_chunk_gated_delta_rule": fla_chunk_gated_delta_rule}`).
The step imports fla on the first call and, if the package is missing, fails there with one line
naming the pin; the import is deferred so the GPU file imports on machines without fla (CPU test runs).
Its pure-torch twin is upstream's own `torch_chunk_gated_delta_rule`, which the `_cpu` files keep.
"""

import torch


def fla_chunk_gated_delta_rule(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    chunk_size: int = 64,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    use_qk_l2norm_in_kernel: bool = False,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Upstream's chunked gated delta rule (same arguments, `[batch, seq, heads, dim]` layout) on fla's kernel.

    `cu_seqlens` (packed sequences under flash attention, batch 1) is passed on; fla scales the queries by
    `head_dim ** -0.5` as upstream does.
    """
    try:
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule
    except ImportError as error:
        raise ImportError(
            "this GPU file (Qwen3-Next, Qwen3.5) runs the gated delta rule on flash-linear-attention's kernel: "
            "pip install flash-linear-attention==0.6.0 (the pin in patchgen's `gpu` extra)"
        ) from error
    return chunk_gated_delta_rule(
        query,
        key,
        value,
        g=g,
        beta=beta,
        initial_state=initial_state,
        output_final_state=output_final_state,
        use_qk_l2norm_in_kernel=use_qk_l2norm_in_kernel,
        cu_seqlens=kwargs.get("cu_seqlens"),
        chunk_size=chunk_size,
    )
