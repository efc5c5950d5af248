"""flash-linear-attention's kernels for linear-attention layers, as patch sets (the `_gpu` files).

Upstream already looks for flash-linear-attention: `torch_chunk_gated_delta_rule` is decorated with
`use_kernel_func_from_hub_with_fallback("chunk_gated_delta_rule", "fla")`, which binds fla's kernel
when `import fla` succeeds at import time and otherwise falls back, with a log line, to the pure-torch
chunked delta rule (more than 10x slower on an H100, by upstream's own comment). A training file should
not slow down silently, so the GPU files bind fla's kernel explicitly: the function imports it on the
first call and, if the package is missing, fails there with one line naming the pin. The import is
deferred so the GPU file imports on machines without fla (CPU test runs); its pure-torch twin is
upstream's own `torch_chunk_gated_delta_rule`, which the `_cpu` files keep.
"""

import torch

from patchgen.patch_sets import PatchSet


FLA_CHUNK_GATED_DELTA_RULE = PatchSet(
    "fla_chunk_gated_delta_rule", "flash-linear-attention's chunked gated delta rule (Triton), imported on first call"
)


@FLA_CHUNK_GATED_DELTA_RULE.replace_function(
    "chunk_delta_rule",
    description="flash-linear-attention's chunked gated delta rule (Triton), imported on the first call; one line "
    "naming the pin when the package is missing, instead of upstream's silent fallback to the pure-torch loop",
)
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
            "this Qwen3-Next GPU file runs the gated delta rule on flash-linear-attention's kernel: "
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
