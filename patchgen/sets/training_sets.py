"""The training-time forwards of `models/common` as patch sets: Ulysses attention and the fused loss.

`ulysses_attention.py` and `fused_loss.py` hold the implementations (one copy for every Llama-style
model); this module only names them as sets so a config maps them onto its upstream names:

    config.use(ULYSSES_ATTENTION, "LlamaAttention")
    config.use(FASTEST_LINEAR_CROSS_ENTROPY, "LlamaForCausalLM")   # GPU files (or CHUNKED_..., LIGER_..., CCE_...)
    config.use(TORCH_LINEAR_CROSS_ENTROPY, "LlamaForCausalLM")     # CPU files, same forward and interface

The GPU files bind FASTEST_LINEAR_CROSS_ENTROPY: per call Liger's fused kernel or the chunked torch one, by
the rule measured on an H200 (`patchgen.runtime.losses.LIGER_MIN_CHUNK_ROWS`: Liger's when its chunks have
256 rows or more: Qwen3-0.6B at 32768 tokens, Llama-3.2-1B at 8192 and 32768; chunked for Qwen3-0.6B at
8192). The single-kernel sets stay as the measured alternatives (bench_train_step.py's per-op `loss` rows).
"""

from patchgen.dsl.patch_sets import PatchSet
from patchgen.sets.attention import ulysses_attention
from patchgen.sets.losses import fused_loss


ULYSSES_ATTENTION = PatchSet("ulysses_attention", "Ulysses sequence parallelism around the attention call")
ULYSSES_ATTENTION.modify_init("attention", description="fix the sequence-parallel head layout at construction")(
    ulysses_attention.ulysses_attention_init
)
ULYSSES_ATTENTION.override_method(
    "attention.forward", description="Ulysses sequence parallelism: all-to-alls around the attention call"
)(ulysses_attention.ulysses_attention_forward)
# What each step reads from the attention's __init__, in force only where that step is bound (or is the default).
for projection in (ulysses_attention.separate_qkv_projection, ulysses_attention.gated_query_projection):
    ULYSSES_ATTENTION.requires_attributes(
        "attention",
        "q_proj",
        "k_proj",
        "v_proj",
        otherwise="bind project_qkv=fused_qkv_projection for a fused qkv_proj",
        step=("project_qkv", projection),
    )
ULYSSES_ATTENTION.requires_attributes(
    "attention",
    "qkv_proj",
    otherwise="bind project_qkv=separate_qkv_projection for q_proj/k_proj/v_proj",
    step=("project_qkv", ulysses_attention.fused_qkv_projection),
)
ULYSSES_ATTENTION.requires_attributes(
    "attention",
    "q_norm",
    "k_norm",
    otherwise="bind qk_norm=no_qk_norm for an attention without q/k norms",
    step=("qk_norm", ulysses_attention.per_head_qk_norm),
)
ULYSSES_ATTENTION.requires_attributes(
    "attention",
    "q_norm",
    "k_norm",
    otherwise="bind qk_norm=no_qk_norm for an attention without q/k norms",
    step=("qk_norm", ulysses_attention.full_projection_qk_norm),
)


def fused_loss_set(name: str, description: str, kernel_module: str, kernel: str, kernel_description: str) -> PatchSet:
    """The fused-loss forward as a set, with `linear_cross_entropy` bound to `kernel` from `kernel_module`.

    Every loss set applies the same forward (`fused_loss.linear_cross_entropy_forward`: the kernel for many
    logits, upstream's loss for few); sets differ only in that binding, so a CPU file proves the GPU forward.
    """
    patch_set = PatchSet(name, description)
    patch_set.override_method("causal_lm.forward", description=kernel_description)(
        fused_loss.linear_cross_entropy_forward
    )
    patch_set.add_import(kernel_module, names=[f"{kernel} as linear_cross_entropy"])
    # The forward computes `lm_head(hidden)` and nothing else on the logits: no final soft-capping (Gemma 2/3). Other
    # logit changes upstream makes (Granite's `logits_scaling`) are not declared: the generator refuses them.
    patch_set.requires_config(
        "causal_lm", final_logit_softcapping=None, otherwise="upstream's forward (and loss) for soft-capped logits"
    )
    return patch_set


_BY_SIZE = "for many logits (tokens x vocab), upstream's logits and loss for few"
FASTEST_LINEAR_CROSS_ENTROPY = fused_loss_set(
    "fastest_linear_cross_entropy",
    "loss from hidden states and lm_head weight, by the kernel measured faster at the call's shape",
    "patchgen.runtime.losses",
    "fastest_linear_cross_entropy",
    f"with labels, Liger's fused linear cross-entropy where its chunks have >= 256 rows (measured H200: Qwen3-0.6B "
    f"32768 tokens 70.9 vs 176.8 ms chunked, Llama-3.2-1B 8192 tokens 27.5 vs 48.7 ms), else the chunked torch "
    f"kernel (Qwen3-0.6B 8192 tokens, 64-row Liger chunks: 45.4 vs 58.6 ms Liger), {_BY_SIZE}",
)
CHUNKED_LINEAR_CROSS_ENTROPY = fused_loss_set(
    "chunked_linear_cross_entropy",
    "loss from hidden states and lm_head weight, logits materialised a chunk of rows at a time",
    "patchgen.runtime.losses",
    "chunked_linear_cross_entropy",
    f"with labels, a chunked linear cross-entropy in plain torch (~2**25 logits per chunk, gradients in the "
    f"forward) {_BY_SIZE}",
)
LIGER_FUSED_LINEAR_CROSS_ENTROPY = fused_loss_set(
    "liger_fused_linear_cross_entropy",
    "loss from hidden states and lm_head weight, logits never materialised (Liger's kernel)",
    "liger_kernel.transformers.functional",
    "liger_fused_linear_cross_entropy",
    f"with labels, Liger's fused linear cross-entropy {_BY_SIZE}",
)
TORCH_LINEAR_CROSS_ENTROPY = fused_loss_set(
    "torch_linear_cross_entropy",
    "the fused-loss forward with a plain-torch loss (CPU stand-in)",
    "patchgen.runtime.losses",
    "torch_linear_cross_entropy",
    f"the GPU file's forward, its fused kernel swapped for a plain-torch loss (CPU stand-in), {_BY_SIZE}",
)


# Seed-OSS's output step (patchgen/sets/attention/ulysses_attention.py)
ULYSSES_ATTENTION.requires_attributes(
    "attention",
    "o_proj",
    "residual_dropout",
    otherwise="bind project_output=output_projection for an attention without dropout after o_proj",
    step=("project_output", ulysses_attention.output_projection_with_residual_dropout),
)
