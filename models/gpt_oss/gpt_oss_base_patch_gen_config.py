"""GPT-OSS: what every generated GPT-OSS file shares. A base: the _cpu and _gpu variants extend it.

Not generated on its own (`PatchConfig.base`). What stays upstream's, and why:

- the experts (`GptOssExperts`, with its `@use_experts_implementation(..., has_bias=True)` dispatch): biased
  `gate_up_proj` / `down_proj` (interleaved gate/up columns) and a clamped SwiGLU (`alpha`, `limit`); the shared
  experts kernels (`LIGER_EXPERTS` / `TORCH_EXPERTS`) compute plain SiLU gates without biases, so none is bound
  and transformers' own dispatch stays (the generator accepted `TORCH_EXPERTS` here: those sets declare no
  requirement on biases or the activation, a finding): `set_experts_implementation("eager" | "batched_mm" | "grouped_mm")` and
  `from_pretrained(..., experts_implementation=...)` work as on stock (the router stays upstream's too);
- the attention, so no Ulysses sequence parallelism yet: every head has a learned sink (`self.sinks`, one logit
  per query head, passed as `s_aux` and read by the eager attention from `module.sinks`); after the all-to-all a
  rank holds `heads/P` query heads, so the shared forward would need a step that hands the attention function
  this rank's slice of the sinks (both as `s_aux` and where the eager function reads the module), which no
  shared step does today;
- the rope (`apply_rotary_pos_emb`): GPT-OSS's rotary embedding returns half-width cos/sin (one column per
  frequency) and rotates chunked halves; the rope sets' torch twin (`TORCH_ROPE`, rotate_half over full-width
  cos/sin) was accepted by the generator and failed on the first forward with a shape error (no set requirement
  says what width of cos/sin it takes: a finding), and Liger's kernel (which Liger's own GPT-OSS patch binds)
  has no CPU twin that runs this layout, so it stays unverified and unbound;
- the causal-LM forward (no fused loss): upstream's adds the router aux loss (`output_router_logits`), as
  Qwen3-MoE's.

The classes stay transformers' own code (`NATIVE_MODEL_CODE`, applied by the generator), so checkpoint conversion
and weight initialisation follow stock's path.
"""

from patchgen import PatchConfig


config = PatchConfig.base(
    source_module="transformers.models.gpt_oss.modeling_gpt_oss",
    description="GPT-OSS, causal-LM training heads only",
)
config.exclude_from_output(
    "GptOssForSequenceClassification",
    "GptOssForTokenClassification",
    reason="heads not used for causal-LM training",
)
