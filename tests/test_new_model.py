"""`patchgen new-model`: configs for a Llama-shaped family, written from upstream's syntax tree, that generate and
whose CPU file computes what stock computes.

Granite and Helium are in transformers 5.17 and not in this repository: each is scaffolded into a copy of the
project layout (models/common only), generated, and its CPU file compared with stock HF on a tiny config in
fp32 (the same pure-torch ops as upstream: torch.testing's fp32 defaults). Granite's multipliers are set away
from 1 so a forward that dropped one (the attention's scaling, the residual or logits scaling) would show.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import transformers
from conftest import TINY_DENSE, import_file, run_cli
from tiny_families import assert_logits_loss_and_gradients_equal

from patchgen.commands import cli, new_model
from patchgen.dsl.errors import PatchgenError
from tests.families import TABLE, covered


# family -> (config keys that make its particular ops matter, the steps and kernels the scaffold must pick)
SCAFFOLDED = {
    "granite": (
        {"embedding_multiplier": 2.0, "residual_multiplier": 0.5, "attention_multiplier": 0.3, "logits_scaling": 4.0},
        "kept: causal_lm: GraniteForCausalLM.forward kept as upstream: no fused loss",
    ),
    # its RMSNorm scales in fp32 and its rope is interleaved: both kept as upstream, the MLP and loss fitted
    "helium": ({}, "kept: rms_norm: HeliumRMSNorm kept as upstream"),
}


@pytest.fixture
def project(tmp_path):
    """A project with this repository's layout and no family (the shared sets ship with patchgen)."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("")
    return tmp_path


def tiny_config(config_class: str, **extra):
    cls = getattr(transformers, config_class)
    kwargs = {**TINY_DENSE, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, **extra}
    if getattr(cls(), "head_dim", None) is None:
        kwargs.pop("head_dim")
    return cls(**kwargs)


@pytest.mark.parametrize("model", sorted(SCAFFOLDED))
def test_scaffolded_family_generates_and_its_cpu_file_equals_stock(project, model):
    extra, expected_line = SCAFFOLDED[model]
    result = run_cli("patchgen.commands.new_model", model, "--generate", cwd=project)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"wrote models/{model}/{model}_cpu_patch_gen_config.py" in lines
    assert any(line.startswith(expected_line) for line in lines), result.stdout
    assert f'    "{model}": Family(' in lines  # the table entry to add
    written = sorted((project / "models" / model).glob("*.py"))
    formatted = subprocess.run([sys.executable, "-m", "ruff", "format", "--check", "--line-length", "119", *written])
    assert formatted.returncode == 0  # written as a person would format it

    scaffold = new_model.plan_scaffold(model)
    cpu = import_file(project / "generated" / model / f"patched_modeling_{model}_cpu.py", f"scaffolded_{model}_cpu")
    gpu = import_file(project / "generated" / model / f"patched_modeling_{model}_gpu.py", f"scaffolded_{model}_gpu")
    assert hasattr(gpu, scaffold.causal_lm)
    config = tiny_config(scaffold.config_class, **extra)
    torch.manual_seed(0)
    stock = getattr(transformers, scaffold.causal_lm)(config).eval()
    with torch.no_grad():
        for parameter in stock.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))  # norm weights away from 1
    patched = getattr(cpu, scaffold.causal_lm)(config).eval()
    loaded = patched.load_state_dict(stock.state_dict())
    assert not loaded.missing_keys and not loaded.unexpected_keys
    assert_logits_loss_and_gradients_equal(patched, stock)


# hand-written families whose attention the scaffold keeps upstream's (a set of their own, written by hand), and
# those it refuses; every other family gets the Ulysses steps its base config binds
ATTENTION_KEPT = {
    "gemma3": "Gemma3Attention kept as upstream: its forward is none of the Ulysses step bindings",
    "deepseek_v3": "DeepseekV3Attention kept as upstream: its forward is none of the Ulysses step bindings",
    "qwen3_next": "Qwen3NextAttention kept as upstream: its forward is none of the Ulysses step bindings",
    # the gated attention of Qwen3-Next (the scaffold reads the text-only *ForCausalLM, not the composite)
    "qwen3_5": "Qwen3_5Attention kept as upstream: its forward is none of the Ulysses step bindings",
    "qwen3_5_moe": "Qwen3_5MoeAttention kept as upstream: its forward is none of the Ulysses step bindings",
    # attention sinks: no shared step hands a rank its slice of them
    "gpt_oss": "GptOssAttention kept as upstream: its forward is none of the Ulysses step bindings",
    # its hand-written config binds the residual-dropout output step, which the scaffold does not try
    "seed_oss": "SeedOssAttention kept as upstream: its forward is none of the Ulysses step bindings",
}
REFUSED = {
    "qwen2_5_vl": "not a decoder to scaffold: 0 \\*ForCausalLM classes",
    "qwen2_vl": "not a decoder to scaffold: 0 \\*ForCausalLM classes",
    "qwen3_vl": "not a decoder to scaffold: 0 \\*ForCausalLM classes",
    "qwen3_vl_moe": "not a decoder to scaffold: 0 \\*ForCausalLM classes",
}
QWEN3_STEPS = ("separate_qkv_projection", "per_head_qk_norm", "full_rotary", "output_projection")


@pytest.mark.parametrize("model", covered())
def test_scaffold_picks_the_steps_of_the_hand_written_configs(model):
    """Run on the families written by hand: the Ulysses steps of their base configs, the attention kept
    upstream's with the reason (the component-wise scaffold still fits what else it can), or a refusal."""
    if model in REFUSED:
        with pytest.raises(PatchgenError, match=REFUSED[model]):
            new_model.plan_scaffold(model)
        return
    scaffold = new_model.plan_scaffold(model)
    if model in ATTENTION_KEPT:
        assert scaffold.attention is None and "attention" not in scaffold.patched
        assert any(line.startswith(f"attention: {ATTENTION_KEPT[model]}") for line in scaffold.not_fitted)
        assert scaffold.patched  # the components that fit are still patched (rope, norms, experts)
    elif model == "qwen3_moe":  # its base config leaves the steps at the set's defaults: Qwen3's
        assert scaffold.steps == QWEN3_STEPS
        assert scaffold.patched == ["attention", "rms_norm", "rope", "experts"]
        assert "router: Qwen3MoeTopKRouter kept as upstream: no shared set for routers" in "\n".join(
            scaffold.not_fitted
        )
    else:
        assert (scaffold.attention, *scaffold.steps) == TABLE[model].attention_steps


def test_component_wise_scaffold_keeps_gemmas_gelu_mlp_upstream(project):
    """Gemma: its attention, rope and loss get sets; its GELU MLP and (1 + weight) RMSNorm stay upstream's, each
    with its reason, in the report and in the base config's docstring; the variants use only what fits."""
    result = run_cli("patchgen.commands.new_model", "gemma", cwd=project)
    assert result.returncode == 0, result.stderr
    assert (
        "attention: ULYSSES_ATTENTION on GemmaAttention with separate_qkv_projection, no_qk_norm, full_rotary, "
        "output_projection" in result.stdout.splitlines()
    )
    assert any(
        line.startswith(
            "kept: mlp: GemmaMLP kept as upstream: LIGER_SWIGLU_MLP: requires_config('mlp', "
            "hidden_act=('silu', 'swish')"
        )
        for line in result.stdout.splitlines()
    ), result.stdout
    folder = project / "models" / "gemma"
    base = " ".join((folder / "gemma_base_patch_gen_config.py").read_text().split())
    assert "Kept as upstream by the scaffold (no shared set fits), one line per component:" in base
    assert (
        "- mlp: GemmaMLP kept as upstream: LIGER_SWIGLU_MLP: requires_config('mlp', hidden_act=('silu', 'swish'), "
        "mlp_bias=(False,))" in base
    )
    assert "GemmaConfig() defaults hidden_act='gelu_pytorch_tanh', outside the supported ('silu', 'swish')" in base
    assert "- rms_norm: GemmaRMSNorm kept as upstream:" in base
    assert 'config.use( ULYSSES_ATTENTION, attention="GemmaAttention",' in base
    gpu = (folder / "gemma_gpu_patch_gen_config.py").read_text()
    assert 'config.use(LIGER_ROPE, "apply_rotary_pos_emb")' in gpu
    assert 'config.use(CHUNKED_LINEAR_CROSS_ENTROPY, "GemmaForCausalLM")' in gpu
    assert "MLP" not in gpu and "RMS_NORM" not in gpu
    cpu = (folder / "gemma_cpu_patch_gen_config.py").read_text()
    assert 'config.use(TORCH_ROPE, "apply_rotary_pos_emb")' in cpu and "MLP" not in cpu


def test_attention_kept_upstream_leaves_the_ulysses_set_out_of_the_base(project):
    """SmolLM3's attention skips rope on some layers (`if self.use_rope:`): no Ulysses binding reproduces it, so
    the base config has no Ulysses set while the norm, MLP, rope and loss kernels still fit."""
    result = run_cli("patchgen.commands.new_model", "smollm3", cwd=project)
    assert result.returncode == 0, result.stderr
    assert any(
        line.startswith(
            "kept: attention: SmolLM3Attention kept as upstream: its forward is none of the Ulysses step bindings"
        )
        and line.endswith("differs at `if self.use_rope:`")
        for line in result.stdout.splitlines()
    ), result.stdout
    base = (project / "models" / "smollm3" / "smollm3_base_patch_gen_config.py").read_text()
    assert "ULYSSES_ATTENTION" not in base.split('"""')[2]  # not imported, not used (the docstring names it)
    assert "sequence_parallel=False," in result.stdout  # the table entry


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mamba"], "error: transformers.models.mamba.modeling_mamba: no shared set fits any component (attention: "
         "upstream defines no such class with a forward; rms_norm: "),
        (["no_such_model"], "error: source module 'transformers.models.no_such_model.modeling_no_such_model' cannot be "
         "found: No module named 'transformers.models.no_such_model'"),
    ],
)  # fmt: skip
def test_refuses_in_one_line_and_writes_nothing(project, args, message):
    result = run_cli("patchgen.commands.cli", "new-model", *args, cwd=project)  # the console script's subcommand
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(message)
    assert sorted(path.name for path in (project / "models").iterdir()) == ["__init__.py"]
    assert not (project / "generated").exists()


def test_refuses_a_model_that_already_has_a_folder(project):
    (project / "models" / "llama").mkdir()
    result = run_cli("patchgen.commands.new_model", "llama", cwd=project)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: models/llama already exists; edit its configs instead of scaffolding"
    ]


def test_console_script_runs_the_module_command():
    assert cli.main.commands["new-model"] is new_model.main


def test_leaves_out_only_the_heads_nothing_kept_names(tmp_path):
    """Bailing-hybrid's (and Kimi-Linear's) `<P>ForgetGate` starts like a head (`<P>For`) and its attention builds
    one; Whisper's `_init_weights` names its audio-classification head. Leaving such a class out made a file the
    generator refuses ("Undefined name"); the scaffold leaves out only the `<P>For<Task>` classes that no kept code
    names (a kept head keeps the heads it names), and the toy's base config generates with exactly those left out."""
    from patchgen.commands.codegen import generate
    from patchgen.dsl.patch_spec import PatchConfig
    from patchgen.load.discovery import LoadedConfig
    from patchgen.load.upstream import read_upstream

    source = "toyupstream.models.heads.modeling_heads"
    excluded = new_model.excluded_heads(read_upstream(source), "HeadsForCausalLM")
    assert excluded == ["HeadsForQuestionAnswering"]

    def generated(names):
        config = PatchConfig(source_module=source, target_file="patched_modeling_heads.py")
        config.exclude_from_output(*names, reason="heads not used for causal-LM training")
        (result,) = generate([LoadedConfig("heads_config", config)], output_dir=tmp_path)
        return result

    result = generated(excluded)
    assert result.error is None, result.error
    text = next(output.text for output in result.outputs if output.path.suffix == ".py")
    assert "class HeadsForgetGate(" in text and "class HeadsForSequenceClassification(" in text
    assert "class HeadsForQuestionAnswering(" not in text and '"HeadsForQuestionAnswering",' not in text
    refused = generated(["HeadsForgetGate", *excluded]).error  # what a prefix match on `HeadsFor` left out
    assert "Undefined name `HeadsForgetGate`" in refused and "exclude_from_output HeadsForgetGate" in refused


def test_components_named_after_the_text_model_are_found():
    """Gemma-4's causal LM is `Gemma4ForCausalLM` and its attention `Gemma4TextAttention`: `<P>Text<role>` where
    only that is defined, else `<P><role>` (whose absence the scaffold reports as such)."""
    from patchgen.load.upstream import read_upstream

    upstream = read_upstream("toyupstream.models.heads.modeling_heads")
    assert new_model._component(upstream, "Heads", "MLP") == "HeadsTextMLP"
    assert new_model._component(upstream, "Heads", "Attention") == "HeadsAttention"
    assert new_model._component(upstream, "Heads", "Experts") == "HeadsExperts"


def test_a_composite_that_builds_its_parts_with_automodel_is_left_out_with_the_heads():
    """Gemma 3's `Gemma3Model` builds its text model with `AutoModel.from_config` (transformers' class, not the file's
    copy: the generator refuses such an output); `Gemma3ForCausalLM` does not go through it, so the scaffold leaves it
    out with the heads, and says why. A module without such a composite keeps the heads-only reason."""
    gemma3 = new_model.plan_scaffold("gemma3", "Gemma3ForCausalLM", "transformers.models.gemma3.modeling_gemma3")
    assert {"Gemma3Model", "Gemma3ForConditionalGeneration"} <= set(gemma3.excluded)
    assert "Gemma3TextModel" not in gemma3.excluded
    base = new_model.render_configs(gemma3, "models.gemma3")
    text = next(text for name, text in base.items() if "base" in name)
    assert "composites whose AutoModel parts would be transformers' own" in text
    llama = new_model.plan_scaffold("llama", "LlamaForCausalLM", "transformers.models.llama.modeling_llama")
    assert llama.excluded and all(name.startswith("LlamaFor") for name in llama.excluded)
    assert "heads not used for causal-LM training" in next(
        text for name, text in new_model.render_configs(llama, "models.llama").items() if "base" in name
    )
