"""Seed-OSS: what every generated Seed-OSS file shares. A base: the _cpu and _gpu variants extend it.

Not generated on its own (`PatchConfig.base`). Seed-OSS is Llama-shaped but for two things:

- its attention drops out after `o_proj` (`residual_dropout`, 0.1 by default) and its q/k/v (and, with
  `attention_out_bias`, o) projections carry biases: the shared Ulysses forward takes it with the output step
  `output_projection_with_residual_dropout` (the dropout on this rank's tokens after the second all-to-all, where
  upstream applies it); without a sequence-parallel group the file computes exactly what upstream does;
- its MLP drops out after `down_proj` too (`residual_dropout`) and may carry biases (`mlp_bias`): the SwiGLU
  kernel sets (Liger's `LigerSwiGLUMLP`, its torch twin) have no dropout and refuse `mlp_bias`: the generator
  refuses them (`SeedOssMLP` reads `config.residual_dropout`, which `TorchSwiGLUMLP` ignores), so `SeedOssMLP`
  stays upstream's in every variant.
"""

from patchgen import PatchConfig
from patchgen.sets.attention.ulysses_attention import (
    full_rotary,
    no_qk_norm,
    output_projection_with_residual_dropout,
    separate_qkv_projection,
)
from patchgen.sets.training_sets import ULYSSES_ATTENTION


config = PatchConfig.base(
    source_module="transformers.models.seed_oss.modeling_seed_oss",
    description="Seed-OSS, causal-LM training heads only",
)
config.exclude_from_output(
    "SeedOssForSequenceClassification",
    "SeedOssForTokenClassification",
    "SeedOssForQuestionAnswering",
    reason="heads not used for causal-LM training",
)
config.use(
    ULYSSES_ATTENTION,
    attention="SeedOssAttention",
    bind={
        "project_qkv": separate_qkv_projection,
        "qk_norm": no_qk_norm,
        "rotary": full_rotary,
        "project_output": output_projection_with_residual_dropout,
    },
    note="dropout after o_proj (residual_dropout), as upstream",
)
