"""The one table of model families the tests cover: model type -> tiny config and what the architecture supports.

A family is tested when `generated/<x>/patched_modeling_*.py` exists (its banner's `# Source:
transformers.models.<x>.modeling_<x>` names the type) *and* `TABLE` has an entry for `<x>`. Every
model test derives its families from that join (`covered()`):

    tests/test_models_families.py    keys, logits/loss/gradients vs stock, Liger bindings, committed = generated
    tests/test_hf_behaviours.py      what transformers' own model tests check, both files
    tests/test_models_gpu.py         the `_gpu` files vs stock on a CUDA GPU
    tests/test_models_sequence_parallel.py   `sequence_parallel`: Ulysses on 2 and 4 gloo ranks
    tests/test_tensor_parallel.py    `tensor_parallel`: HF's TP plan on 2 gloo ranks
    tests/test_expert_parallel.py    `expert_parallel`: HF's EP plan beside FSDP2 (and Ulysses) on 2 and 4 gloo ranks
    tests/test_ulysses_steps.py      `attention_steps`: the steps each generated forward calls
    tests/equivalence/              the equivalence harness (`ARCHITECTURES` is a view of this table)

and `tests/test_families.py` fails once, in one line, for a generated type with no entry and for an
entry with no generated files. Each harness builds its own tiny dimensions (hidden 32 for the model
tests, 64 for the equivalence harness, sizes divisible by the TP degree for TP) and adds the
family's `config` keys on top, so an entry says only what is particular to the architecture.

Imports nothing but the standard library and the discovery of generated files: the GPU script and
`python -m tests.equivalence` read it without pytest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.equivalence.discovery import GeneratedFileError, discover_generated_modules


REPO = Path(__file__).resolve().parent.parent
TABLE_PLACE = "TABLE in tests/families.py"

RMS = "liger_kernel.transformers.rms_norm:LigerRMSNorm"
SWIGLU = "liger_kernel.transformers.swiglu:LigerSwiGLUMLP"
ROPE = "liger_kernel.transformers.rope:liger_rotary_pos_emb"


@dataclass(frozen=True)
class Family:
    """One architecture: how to build it tiny, and which tests apply to it."""

    config_class: str  # a name exported by `transformers`
    causal_lm: str  # looked up by name in both the stock and the generated module
    #: the architecture's own config keys, added to each harness's shared tiny dimensions
    config: dict[str, Any] = field(default_factory=dict)
    #: keys one harness adds on top of `config` ("equivalence", "sequence_parallel"), each with a comment why
    harness_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the config class computes head_dim from hidden_size / num_attention_heads: the shared value is left out
    derives_head_dim: bool = False
    #: a composite config (a VLM) takes the shared tiny dimensions in this sub-config (e.g. "text_config")
    shared_in: str | None = None
    #: the `_gpu` file binds these upstream names to Liger objects ("liger module:object")
    liger: dict[str, str] = field(default_factory=dict)
    #: the attention class and the Ulysses steps (projection, q/k norm, rope, output) its generated forward calls;
    #: None when the base config applies no Ulysses set
    attention_steps: tuple[str, str, str, str, str] | None = None
    #: Ulysses sequence parallelism applies (tested on 2 and 4 gloo ranks against one process)
    sequence_parallel: bool = True
    #: `*ForCausalLM.forward` is the shared fused-loss forward (else upstream's, e.g. router loss, softcapping)
    fused_loss: bool = True
    #: HF's tensor-parallel plan is tested on 2 gloo ranks against stock sharded the same way
    tensor_parallel: bool = True
    #: routed experts (MoE)
    experts: bool = False
    #: HF's expert-parallel plan (`base_model_ep_plan`) is tested on 2 and 4 gloo ranks against stock under the same
    #: plan and one process; the tiny config's routed-expert count must divide by 4
    expert_parallel: bool = False
    #: the `_gpu` file's default experts implementation is Liger's fused MoE kernel: on a GPU stock is compared
    #: with its eager loop, and compiling needs `set_experts_implementation('grouped_mm')`
    liger_experts: bool = False
    #: the model takes image inputs (pixel values) besides token ids
    vision_inputs: bool = False
    #: rtol = atol of the behaviour tests for the `_gpu` file on a GPU (Liger's reduction order; TF32 experts)
    gpu_tolerance: float = 1e-4
    #: why bf16 logits cannot be compared (then CUDA compares in fp32 only), or None
    no_bf16_comparison: str | None = None
    #: why the GPU file's kernels compute fp32 matmuls in TF32 (then CUDA fp32 uses the TF32 tolerance), or None
    tf32_kernels: str | None = None

    def config_kwargs(self, shared: dict[str, Any], harness: str | None = None) -> dict[str, Any]:
        """A harness's shared tiny dimensions with this family's keys (and the harness's own) on top."""
        own = {**self.config, **self.harness_config.get(harness, {})}
        if self.shared_in is None:
            kwargs = {**shared, **own}
            if self.derives_head_dim:
                kwargs.pop("head_dim", None)
            return kwargs
        nested = {**shared, **own.get(self.shared_in, {})}
        if self.derives_head_dim:
            nested.pop("head_dim", None)
        return {**own, self.shared_in: nested}


# Qwen3.5's and Qwen3.5-MoE's tiny text decoder and vision tower (their entries below). The decoder: one gated delta-net
# layer (separate in_proj_qkv/z/b/a; 4 key heads, as many as the largest SP degree tested, twice as many value heads,
# wider than the key heads, and a 3-tap convolution) and one gated full-attention layer; 16-channel heads with half of
# each rotated (partial_rotary_factor 0.5, default 0.25) and the 4 rotated frequencies in interleaved mrope sections
# 2 + 1 + 1. The vision tower: 2 LayerNorm/GELU blocks, 2x2 patch merging, a 4x4 grid of learned position embeddings.
QWEN3_5_TEXT = {
    "head_dim": 16,
    "layer_types": ["linear_attention", "full_attention"],
    "linear_num_key_heads": 4,
    "linear_num_value_heads": 8,
    "linear_key_head_dim": 8,
    "linear_value_head_dim": 12,
    "linear_conv_kernel_dim": 3,
    "rope_parameters": {
        "rope_type": "default",
        "rope_theta": 10000.0,
        "partial_rotary_factor": 0.5,
        "mrope_section": [2, 1, 1],
        "mrope_interleaved": True,
    },
    "bos_token_id": 1,
    "eos_token_id": 2,
}
QWEN3_5_VISION = {
    "depth": 2,
    "hidden_size": 32,
    "intermediate_size": 40,
    "num_heads": 2,
    "patch_size": 2,
    "temporal_patch_size": 2,
    "spatial_merge_size": 2,
    "num_position_embeddings": 16,
    "out_hidden_size": 32,
}
# routed experts (top-2 of 4) and a gated shared expert in both layers; the router aux loss coefficient away from the
# default (0.001). The aux loss stays off here (upstream's default): under SP each rank would add the aux loss of its
# own tokens, not its share of the whole batch's (docs/limitations.md); tests/test_models_qwen3_5.py turns it on.
QWEN3_5_MOE_TEXT = {
    **QWEN3_5_TEXT,
    "num_experts": 4,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 16,
    "shared_expert_intermediate_size": 16,
    "router_aux_loss_coef": 0.01,
}
# the equivalence harness's decoder: hidden 64 (the vision tower's output too) and vocabulary 101
QWEN3_5_EQUIVALENCE = {
    "vision_config": {**QWEN3_5_VISION, "out_hidden_size": 64},
    "image_token_id": 97,
    "video_token_id": 98,
    "vision_start_token_id": 99,
    "vision_end_token_id": 100,
}
QWEN3_5_TOKENS = {"image_token_id": 95, "video_token_id": 96, "vision_start_token_id": 97, "vision_end_token_id": 98}
# the equivalence harness's vocabulary is wider: its vision tokens sit at its top
HARNESS_VISION_TOKENS = {
    "image_token_id": 97,
    "video_token_id": 98,
    "vision_start_token_id": 99,
    "vision_end_token_id": 100,
}
# Qwen3-VL's tower (both families): a learned 4x4 position grid, DeepStack features from blocks 0 and 1
QWEN3_VL_VISION = {
    "depth": 2,
    "hidden_size": 32,
    "intermediate_size": 40,
    "num_heads": 2,
    "patch_size": 2,
    "out_hidden_size": 32,
    "num_position_embeddings": 16,
    "deepstack_visual_indexes": [0, 1],
}


TABLE: dict[str, Family] = {
    # Tied embeddings like Qwen3-0.6B in the equivalence harness: the fused loss must read the shared lm_head weight.
    "qwen3": Family(
        "Qwen3Config",
        "Qwen3ForCausalLM",
        harness_config={"equivalence": {"tie_word_embeddings": True}},
        # RMSNorm and MLP: copied classes that call Liger's kernels from a token count (patchgen/sets/kernels/switched_kernels.py)
        liger={"apply_rotary_pos_emb": ROPE},
        attention_steps=(
            "Qwen3Attention",
            "separate_qkv_projection",
            "per_head_qk_norm",
            "full_rotary",
            "output_projection",
        ),
    ),
    "llama": Family(
        "LlamaConfig",
        "LlamaForCausalLM",
        liger={"LlamaRMSNorm": RMS, "LlamaMLP": SWIGLU, "apply_rotary_pos_emb": ROPE},
        attention_steps=(
            "LlamaAttention",
            "separate_qkv_projection",
            "no_qk_norm",
            "full_rotary",
            "output_projection",
        ),
    ),
    "qwen2": Family(
        "Qwen2Config",
        "Qwen2ForCausalLM",
        derives_head_dim=True,
        liger={"Qwen2RMSNorm": RMS, "Qwen2MLP": SWIGLU, "apply_rotary_pos_emb": ROPE},
        attention_steps=(
            "Qwen2Attention",
            "separate_qkv_projection",
            "no_qk_norm",
            "full_rotary",
            "output_projection",
        ),
    ),
    # a window shorter than the test sequences, so the sliding mask cuts something
    "mistral": Family(
        "MistralConfig",
        "MistralForCausalLM",
        {"sliding_window": 5},
        liger={"MistralRMSNorm": RMS, "MistralMLP": SWIGLU, "apply_rotary_pos_emb": ROPE},
        attention_steps=(
            "MistralAttention",
            "separate_qkv_projection",
            "no_qk_norm",
            "full_rotary",
            "output_projection",
        ),
    ),
    # layer 1 dense (mlp_only_layers) so both the experts and the dense MLP patches run
    "qwen3_moe": Family(
        "Qwen3MoeConfig",
        "Qwen3MoeForCausalLM",
        {"moe_intermediate_size": 16, "num_experts": 4, "num_experts_per_tok": 2, "mlp_only_layers": [1]},
        harness_config={
            # every layer routed; wider experts and normalised top-k as the harness measured its tolerances
            "equivalence": {"moe_intermediate_size": 24, "mlp_only_layers": [], "norm_topk_prob": True},
            # every layer routed, so each rank's slice goes through the experts
            "sequence_parallel": {"mlp_only_layers": []},
        },
        liger={"Qwen3MoeRMSNorm": RMS, "Qwen3MoeMLP": SWIGLU, "apply_rotary_pos_emb": ROPE},
        # its base config binds nothing: the forward calls the slots, whose default assignments are copied
        attention_steps=("Qwen3MoeAttention", "project_qkv", "qk_norm", "rotary", "project_output"),
        fused_loss=False,  # upstream's forward adds the router aux loss
        experts=True,
        expert_parallel=True,
        liger_experts=True,
        gpu_tolerance=5e-3,  # TF32 experts kernel (tf32_kernels below)
        no_bf16_comparison=(
            "top-2 routing flips between two valid bf16 implementations: measured with the pure-torch file in bf16, "
            "one token in 24 picks another expert and its logits move by 0.087 (stock's own bf16 error: 0.013)"
        ),
        tf32_kernels=(
            "LigerExperts multiplies with tl.dot, which runs fp32 operands as TF32 (10-bit mantissa) on NVIDIA tensor "
            "cores, while stock matmuls stay full fp32: measured on an H200, logits 9.3e-4 and gradients 3.5e-4 apart"
        ),
    ),
    # Text-only Gemma 3: one sliding and one full layer
    "gemma3": Family(
        "Gemma3TextConfig",
        "Gemma3ForCausalLM",
        {"sliding_window": 5, "layer_types": ["sliding_attention", "full_attention"]},
        liger={
            "Gemma3RMSNorm": "liger_kernel.transformers.rms_norm:LigerRMSNormForGemma3",
            "Gemma3MLP": "liger_kernel.transformers.geglu:LigerGEGLUMLP",
            "apply_rotary_pos_emb": ROPE,
        },
        attention_steps=(
            "Gemma3Attention",
            "separate_qkv_projection",
            "per_head_qk_norm",
            "full_rotary",
            "output_projection",
        ),
        fused_loss=False,  # the shared forward has no final-logit softcapping
    ),
    # post-norm layers and a q/k norm over the whole projection; the eos default (50279) is outside the tiny vocab
    "olmo2": Family(
        "Olmo2Config",
        "Olmo2ForCausalLM",
        {"bos_token_id": 1, "eos_token_id": 2},
        liger={
            "Olmo2RMSNorm": "liger_kernel.transformers.rms_norm:LigerRMSNormForOlmo2",
            "Olmo2MLP": SWIGLU,
            "apply_rotary_pos_emb": ROPE,
        },
        attention_steps=(
            "Olmo2Attention",
            "separate_qkv_projection",
            "full_projection_qk_norm",
            "full_rotary",
            "output_projection",
        ),
    ),
    # fused qkv_proj and gate_up_proj; partial rotary as Phi-4-mini (rope over 0.75 of each head's channels)
    "phi3": Family(
        "Phi3Config",
        "Phi3ForCausalLM",
        {"partial_rotary_factor": 0.75, "bos_token_id": 1, "eos_token_id": 2},
        derives_head_dim=True,
        liger={
            "Phi3RMSNorm": RMS,
            "Phi3MLP": "liger_kernel.transformers.swiglu:LigerPhi3SwiGLUMLP",
            "apply_rotary_pos_emb": ROPE,
        },
        attention_steps=("Phi3Attention", "fused_qkv_projection", "no_qk_norm", "partial_rotary", "output_projection"),
    ),
    # vision-language: a 2-block vision tower (windowed + full attention) and the tiny decoder (the shared
    # dimensions go into its text config); these tables run it on text, tests/test_models_qwen2_5_vl.py with images
    "qwen2_5_vl": Family(
        "Qwen2_5_VLConfig",
        "Qwen2_5_VLForConditionalGeneration",
        {
            # mrope sections of the 4 frequencies of an 8-channel head (temporal, height, width)
            "text_config": {
                "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]}
            },
            "vision_config": {
                "depth": 2,
                "hidden_size": 32,
                "intermediate_size": 40,
                "num_heads": 2,
                "patch_size": 2,
                "window_size": 8,
                "fullatt_block_indexes": [1],
                "out_hidden_size": 32,
            },
            "image_token_id": 95,
            "video_token_id": 96,
            "vision_start_token_id": 97,
            "vision_end_token_id": 98,
        },
        harness_config={
            # the harness's decoder: hidden 64 and 16-channel heads (8 frequencies: sections 4 + 2 + 2)
            "equivalence": {
                "text_config": {
                    "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 2, 2]}
                },
                "vision_config": {
                    "depth": 2,
                    "hidden_size": 32,
                    "intermediate_size": 40,
                    "num_heads": 2,
                    "patch_size": 2,
                    "window_size": 8,
                    "fullatt_block_indexes": [1],
                    "out_hidden_size": 64,
                },
                "image_token_id": 97,
                "video_token_id": 98,
                "vision_start_token_id": 99,
                "vision_end_token_id": 100,
            }
        },
        shared_in="text_config",
        derives_head_dim=True,
        liger={
            "Qwen2_5_VLRMSNorm": RMS,
            "Qwen2MLP": SWIGLU,
            "apply_rotary_pos_emb": ROPE,
            "apply_rotary_pos_emb_vision": "liger_kernel.transformers.rope:liger_rotary_pos_emb_vision",
        },
        attention_steps=(
            "Qwen2_5_VLAttention",
            "separate_qkv_projection",
            "no_qk_norm",
            "full_rotary",
            "output_projection",
        ),
        vision_inputs=True,
    ),
    # Qwen2-VL: Qwen2.5-VL's decoder with a LayerNorm/GELU vision tower (full attention per image), no second_per_grid_ts;
    # layer 0 slides over a window shorter than the test sequences (use_sliding_window, max_window_layers=1)
    "qwen2_vl": Family(
        "Qwen2VLConfig",
        "Qwen2VLForConditionalGeneration",
        {
            "text_config": {
                "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]},
                "use_sliding_window": True,
                "sliding_window": 5,
                "max_window_layers": 1,
                "rms_norm_eps": 1e-5,
            },
            "vision_config": {
                "depth": 2,
                "embed_dim": 16,
                "hidden_size": 32,
                "mlp_ratio": 2,
                "num_heads": 2,
                "patch_size": 2,
            },
            "image_token_id": 95,
            "video_token_id": 96,
            "vision_start_token_id": 97,
            "vision_end_token_id": 98,
        },
        harness_config={
            # the harness's decoder: hidden 64 and 16-channel heads (8 frequencies: sections 4 + 2 + 2)
            "equivalence": {
                "text_config": {
                    "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 2, 2]},
                    "use_sliding_window": True,
                    "sliding_window": 5,
                    "max_window_layers": 1,
                    "rms_norm_eps": 1e-5,
                },
                "vision_config": {
                    "depth": 2,
                    "embed_dim": 16,
                    "hidden_size": 64,
                    "mlp_ratio": 2,
                    "num_heads": 2,
                    "patch_size": 2,
                },
                "image_token_id": 97,
                "video_token_id": 98,
                "vision_start_token_id": 99,
                "vision_end_token_id": 100,
            }
        },
        shared_in="text_config",
        derives_head_dim=True,
        # the text MLP stays upstream's: the SwiGLU sets are refused (models/qwen2_vl/qwen2_vl_base_patch_gen_config.py)
        liger={
            "Qwen2VLRMSNorm": RMS,
            "apply_rotary_pos_emb": ROPE,
            "apply_rotary_pos_emb_vision": "liger_kernel.transformers.rope:liger_rotary_pos_emb_vision",
        },
        attention_steps=(
            "Qwen2VLAttention",
            "separate_qkv_projection",
            "no_qk_norm",
            "full_rotary",
            "output_projection",
        ),
        vision_inputs=True,
    ),
    # Qwen3-VL: Qwen3's decoder (q/k norm per head) with interleaved MRoPE (sections folded into cos/sin by the rotary
    # module) and DeepStack (vision blocks 0 and 1 add features to the visual tokens after text layers 0 and 1); a
    # LayerNorm/GELU vision tower with a learned 4x4 position grid; rope_theta and sections away from the defaults
    "qwen3_vl": Family(
        "Qwen3VLConfig",
        "Qwen3VLForConditionalGeneration",
        {
            "text_config": {
                "rope_parameters": {"rope_type": "default", "rope_theta": 5000.0, "mrope_section": [2, 1, 1]},
                "rms_norm_eps": 1e-5,
            },
            "vision_config": QWEN3_VL_VISION,
            **QWEN3_5_TOKENS,
        },
        harness_config={
            # the harness's decoder: hidden 64 and 16-channel heads (8 frequencies: sections 4 + 2 + 2)
            "equivalence": {
                "text_config": {
                    "rope_parameters": {"rope_type": "default", "rope_theta": 5000.0, "mrope_section": [4, 2, 2]},
                    "rms_norm_eps": 1e-5,
                },
                "vision_config": {**QWEN3_VL_VISION, "out_hidden_size": 64},
                **HARNESS_VISION_TOKENS,
            }
        },
        shared_in="text_config",
        # the text MLP stays upstream's: the SwiGLU sets are refused (models/qwen3_vl/qwen3_vl_base_patch_gen_config.py)
        liger={
            "Qwen3VLTextRMSNorm": RMS,
            "apply_rotary_pos_emb": ROPE,
            "apply_rotary_pos_emb_vision": "liger_kernel.transformers.rope:liger_rotary_pos_emb_vision",
        },
        attention_steps=(
            "Qwen3VLTextAttention",
            "separate_qkv_projection",
            "per_head_qk_norm",
            "full_rotary",
            "output_projection",
        ),
        vision_inputs=True,
    ),
    # Qwen3-VL-MoE: Qwen3-VL (above) with routed experts in the text decoder; layer 1 dense (mlp_only_layers) so both the
    # experts and the dense MLP run (under SP too: a harness key would replace the whole nested text config, and layer 0
    # sends each rank's slice through the experts); a router aux loss coefficient away from the default
    "qwen3_vl_moe": Family(
        "Qwen3VLMoeConfig",
        "Qwen3VLMoeForConditionalGeneration",
        {
            "text_config": {
                "rope_parameters": {"rope_type": "default", "rope_theta": 5000.0, "mrope_section": [2, 1, 1]},
                "rms_norm_eps": 1e-5,
                "moe_intermediate_size": 16,
                "num_experts": 4,
                "num_experts_per_tok": 2,
                "mlp_only_layers": [1],
                "router_aux_loss_coef": 0.01,
            },
            "vision_config": QWEN3_VL_VISION,
            **QWEN3_5_TOKENS,
        },
        harness_config={
            # the harness's decoder: hidden 64 and 16-channel heads (8 frequencies: sections 4 + 2 + 2); every layer
            # routed, wider experts, as the Qwen3-MoE entry
            "equivalence": {
                "text_config": {
                    "rope_parameters": {"rope_type": "default", "rope_theta": 5000.0, "mrope_section": [4, 2, 2]},
                    "rms_norm_eps": 1e-5,
                    "moe_intermediate_size": 24,
                    "num_experts": 4,
                    "num_experts_per_tok": 2,
                    "mlp_only_layers": [],
                    "router_aux_loss_coef": 0.01,
                },
                "vision_config": {**QWEN3_VL_VISION, "out_hidden_size": 64},
                **HARNESS_VISION_TOKENS,
            },
        },
        shared_in="text_config",
        # the dense MLP stays upstream's: the SwiGLU sets are refused (models/qwen3_vl_moe/...base...)
        liger={
            "Qwen3VLMoeTextRMSNorm": RMS,
            "apply_rotary_pos_emb": ROPE,
            "apply_rotary_pos_emb_vision": "liger_kernel.transformers.rope:liger_rotary_pos_emb_vision",
        },
        attention_steps=(
            "Qwen3VLMoeTextAttention",
            "separate_qkv_projection",
            "per_head_qk_norm",
            "full_rotary",
            "output_projection",
        ),
        fused_loss=False,  # upstream's forward adds the router aux loss
        experts=True,
        expert_parallel=True,
        liger_experts=True,
        vision_inputs=True,
        gpu_tolerance=5e-3,  # TF32 experts kernel, as Qwen3-MoE (not measured on Qwen3-VL-MoE)
        no_bf16_comparison=(
            "top-2 routing flips between two valid bf16 implementations, as for Qwen3-MoE (same router and experts "
            "kernels; not measured on Qwen3-VL-MoE itself)"
        ),
        tf32_kernels=(
            "LigerExperts multiplies with tl.dot, which runs fp32 operands as TF32, as for Qwen3-MoE (same kernel)"
        ),
    ),
    # Llama-shaped but for dropout after o_proj and down_proj (residual_dropout) and biases on every projection
    # (attention_out_bias, mlp_bias: off by default); residual_dropout 0 (default 0.1), since the harnesses compare
    # training mode with stock, whose dropout masks are drawn from another generator state; eval ignores it anyway
    "seed_oss": Family(
        "SeedOssConfig",
        "SeedOssForCausalLM",
        {
            "attention_out_bias": True,
            "mlp_bias": True,
            "residual_dropout": 0.0,
            "attention_dropout": 0.0,
            "rms_norm_eps": 1e-5,
            "rope_parameters": {"rope_type": "default", "rope_theta": 5000.0},
            "bos_token_id": 3,
            "eos_token_id": 2,
        },
        liger={"SeedOssRMSNorm": RMS, "apply_rotary_pos_emb": ROPE},
        attention_steps=(
            "SeedOssAttention",
            "separate_qkv_projection",
            "no_qk_norm",
            "full_rotary",
            "output_projection_with_residual_dropout",
        ),
    ),
    # MoE with biased experts and a clamped SwiGLU (a limit the tiny activations reach), attention sinks, one sliding and
    # one full layer, yarn rope; only the RMSNorm is patched (models/gpt_oss/...base...)
    "gpt_oss": Family(
        "GptOssConfig",
        "GptOssForCausalLM",
        {
            "num_local_experts": 4,
            "num_experts_per_tok": 2,
            "intermediate_size": 16,
            "sliding_window": 5,
            "layer_types": ["sliding_attention", "full_attention"],
            "swiglu_alpha": 1.5,
            "swiglu_limit": 0.05,
            "router_aux_loss_coef": 0.01,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {
                "rope_type": "yarn",
                "factor": 4.0,
                "beta_fast": 16.0,
                "beta_slow": 2.0,
                "original_max_position_embeddings": 64,
                "rope_theta": 10000.0,
            },
            "bos_token_id": 1,
            "eos_token_id": 2,
        },
        liger={"GptOssRMSNorm": RMS},
        sequence_parallel=False,  # sinks per query head: no shared Ulysses step slices them to a rank's heads
        tensor_parallel=False,  # the TP test runs sdpa, which GPT-OSS (sinks) does not support, stock included
        fused_loss=False,  # upstream's forward adds the router aux loss
        experts=True,
        expert_parallel=True,
    ),
    # multi-head latent attention (its own Ulysses set, no shared steps), routed + shared experts in 2 groups,
    # layer 0 dense (first_k_dense_replace); interleaved rope, so no rope kernel
    "deepseek_v3": Family(
        "DeepseekV3Config",
        "DeepseekV3ForCausalLM",
        {
            "num_key_value_heads": 4,
            "q_lora_rank": 24,
            "kv_lora_rank": 16,
            "qk_nope_head_dim": 8,
            "qk_rope_head_dim": 8,
            "v_head_dim": 12,
            "moe_intermediate_size": 16,
            "n_routed_experts": 8,
            "n_shared_experts": 1,
            "num_experts_per_tok": 2,
            "n_group": 2,
            "topk_group": 1,
            "first_k_dense_replace": 1,
            "bos_token_id": 1,
            "eos_token_id": 2,
        },
        harness_config={
            # the harness's hidden 64: latent and head dimensions doubled
            "equivalence": {
                "q_lora_rank": 32,
                "kv_lora_rank": 24,
                "qk_nope_head_dim": 16,
                "qk_rope_head_dim": 16,
                "v_head_dim": 24,
                "moe_intermediate_size": 24,
            }
        },
        derives_head_dim=True,
        liger={"DeepseekV3RMSNorm": RMS, "DeepseekV3MLP": SWIGLU},
        experts=True,
        expert_parallel=True,
        liger_experts=True,
        gpu_tolerance=5e-3,  # TF32 experts kernel (tf32_kernels below)
        no_bf16_comparison=(
            "top-2 routing flips between two valid bf16 implementations, as for Qwen3-MoE (its measurement: one token "
            "in 24 picks another expert, logits move by 0.087)"
        ),
        tf32_kernels=(
            "LigerExperts multiplies with tl.dot, which runs fp32 operands as TF32 on NVIDIA tensor cores, as for "
            "Qwen3-MoE (measured there on an H200: logits 9.3e-4 apart)"
        ),
    ),  # hybrid: one gated delta-net (linear attention) layer and one gated full-attention layer (the shared Ulysses
    # forward with gated steps); routed + shared experts; partial rotary; upstream's forward adds the router loss
    "qwen3_next": Family(
        "Qwen3NextConfig",
        "Qwen3NextForCausalLM",
        {
            "layer_types": ["linear_attention", "full_attention"],
            "linear_num_key_heads": 4,
            "linear_num_value_heads": 8,
            "linear_key_head_dim": 8,
            "linear_value_head_dim": 8,
            "linear_conv_kernel_dim": 4,
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 16,
            "shared_expert_intermediate_size": 16,
            "partial_rotary_factor": 0.5,
            "bos_token_id": 1,
            "eos_token_id": 2,
        },
        harness_config={
            # the harness's hidden 64: two 16-channel key heads and four value heads, a quarter of each head rotated
            "equivalence": {
                "linear_num_key_heads": 2,
                "linear_num_value_heads": 4,
                "linear_key_head_dim": 16,
                "linear_value_head_dim": 16,
                "moe_intermediate_size": 24,
                "shared_expert_intermediate_size": 24,
                "partial_rotary_factor": 0.25,
            }
        },
        liger={
            "Qwen3NextRMSNorm": "liger_kernel.transformers.rms_norm:LigerRMSNormForGemma3",
            "Qwen3NextMLP": SWIGLU,
            "apply_rotary_pos_emb": ROPE,
        },
        attention_steps=(
            "Qwen3NextAttention",
            "gated_query_projection",
            "per_head_qk_norm",
            "partial_rotary",
            "gated_output_projection",
        ),
        fused_loss=False,  # upstream's forward adds the router aux loss
        experts=True,
        expert_parallel=True,
        liger_experts=True,
        gpu_tolerance=5e-3,  # TF32 experts kernel, as Qwen3-MoE (not measured on Qwen3-Next)
        no_bf16_comparison=(
            "top-2 routing flips between two valid bf16 implementations, as for Qwen3-MoE (same router and experts "
            "kernels; not measured on Qwen3-Next itself)"
        ),
        tf32_kernels=(
            "LigerExperts multiplies with tl.dot, which runs fp32 operands as TF32, as for Qwen3-MoE (same kernel); "
            "fla's delta rule also multiplies with tl.dot"
        ),
    ),
    # hybrid vision-language (QWEN3_5_TEXT, QWEN3_5_VISION above); the shared dimensions go into the text config
    "qwen3_5": Family(
        "Qwen3_5Config",
        "Qwen3_5ForConditionalGeneration",
        {"text_config": QWEN3_5_TEXT, "vision_config": QWEN3_5_VISION, **QWEN3_5_TOKENS},
        harness_config={"equivalence": QWEN3_5_EQUIVALENCE},
        shared_in="text_config",
        # the text MLP stays upstream's: the SwiGLU sets are refused (models/qwen3_5/qwen3_5_base_patch_gen_config.py)
        liger={
            "Qwen3_5RMSNorm": "liger_kernel.transformers.rms_norm:LigerRMSNormForGemma3",
            "apply_rotary_pos_emb": ROPE,
            "apply_rotary_pos_emb_vision": "liger_kernel.transformers.rope:liger_rotary_pos_emb_vision",
        },
        attention_steps=(
            "Qwen3_5Attention",
            "gated_query_projection",
            "per_head_qk_norm",
            "partial_rotary",
            "gated_output_projection",
        ),
        vision_inputs=True,
        tf32_kernels="fla's delta rule multiplies with tl.dot, which runs fp32 operands as TF32 (unmeasured on Qwen3.5)",
    ),
    # Qwen3.5 with routed + shared experts in every layer (QWEN3_5_MOE_TEXT above); upstream's forwards add the router
    # loss (kept), so no fused loss
    "qwen3_5_moe": Family(
        "Qwen3_5MoeConfig",
        "Qwen3_5MoeForConditionalGeneration",
        {"text_config": QWEN3_5_MOE_TEXT, "vision_config": QWEN3_5_VISION, **QWEN3_5_TOKENS},
        harness_config={
            "equivalence": {
                **QWEN3_5_EQUIVALENCE,
                # the harness's hidden 64: wider experts
                "text_config": {
                    **QWEN3_5_MOE_TEXT,
                    "moe_intermediate_size": 24,
                    "shared_expert_intermediate_size": 24,
                },
            },
        },
        shared_in="text_config",
        # the shared expert's MLP stays upstream's: the SwiGLU sets are refused (models/qwen3_5_moe/...base...)
        liger={
            "Qwen3_5MoeRMSNorm": "liger_kernel.transformers.rms_norm:LigerRMSNormForGemma3",
            "apply_rotary_pos_emb": ROPE,
            "apply_rotary_pos_emb_vision": "liger_kernel.transformers.rope:liger_rotary_pos_emb_vision",
        },
        attention_steps=(
            "Qwen3_5MoeAttention",
            "gated_query_projection",
            "per_head_qk_norm",
            "partial_rotary",
            "gated_output_projection",
        ),
        fused_loss=False,  # upstream's forward adds the router aux loss
        experts=True,
        expert_parallel=True,
        liger_experts=True,
        vision_inputs=True,
        gpu_tolerance=5e-3,  # TF32 experts kernel, as Qwen3-MoE (not measured on Qwen3.5-MoE)
        no_bf16_comparison=(
            "top-2 routing flips between two valid bf16 implementations, as for Qwen3-MoE (same router and experts "
            "kernels; not measured on Qwen3.5-MoE itself)"
        ),
        tf32_kernels=(
            "LigerExperts multiplies with tl.dot, which runs fp32 operands as TF32, as for Qwen3-MoE (same kernel); "
            "fla's delta rule also multiplies with tl.dot"
        ),
    ),
}


def generated_types(root: Path = REPO) -> dict[str, list[Path]]:
    """Model type -> its generated files (relative to `root`), read from each file's `# Source:` line."""
    found: dict[str, list[Path]] = {}
    for module in discover_generated_modules(root):
        found.setdefault(module.architecture, []).append(module.path)
    return found


def registration_problems(root: Path = REPO, table: dict[str, Family] = TABLE) -> list[str]:
    """One line per generated type without an entry and per entry without generated files."""
    try:
        generated = generated_types(root)
    except GeneratedFileError as error:  # no Source line: the equivalence harness names the file too
        return [str(error)]
    problems = [
        f"{paths[0].as_posix()}: model type {model!r} has no entry; add one to {TABLE_PLACE} "
        "(tiny config keys and what the architecture supports)"
        for model, paths in sorted(generated.items())
        if model not in table
    ]
    problems += [
        f"{TABLE_PLACE}: entry {model!r} has no generated/*/patched_modeling_*.py from transformers.models.{model}; "
        f"generate its configs (`python -m patchgen.run_codegen --all --diff`) or remove the entry"
        for model in sorted(table)
        if model not in generated
    ]
    return problems


def covered(root: Path = REPO) -> list[str]:
    """The families the model tests run: generated and in the table, sorted."""
    try:
        generated = generated_types(root)
    except GeneratedFileError:
        return []  # reported by test_families and the equivalence harness
    return sorted(model for model in generated if model in TABLE)


def covered_where(capability: str) -> list[str]:
    """The covered families whose entry has `capability` (a boolean field of Family) set."""
    return [model for model in covered() if getattr(TABLE[model], capability)]


if __name__ == "__main__":  # `python -m tests.families`: the covered families, e.g. for the GPU script
    print(" ".join(covered()))
