"""`patchgen new-model`: configs for a Llama-shaped family, written from upstream's syntax tree, that generate and
whose CPU file computes what stock computes.

Granite and Helium are in transformers 5.17 and not in this repository: each is scaffolded into a copy of the
project layout (models/common only), generated, and its CPU file compared with stock HF on a tiny config in
fp32 (the same pure-torch ops as upstream: torch.testing's fp32 defaults). Granite's multipliers are set away
from 1 so a forward that dropped one (the attention's scaling, the residual or logits scaling) would show.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import torch
import transformers
from conftest import REPO, TINY_DENSE, import_file, run_cli
from tiny_families import assert_logits_loss_and_gradients_equal

from patchgen.commands import cli, new_model
from patchgen.dsl.errors import PatchgenError
from tests.families import TABLE, covered


# family -> (config keys that make its particular ops matter, the steps and kernels the scaffold must pick)
SCAFFOLDED = {
    "granite": (
        {"embedding_multiplier": 2.0, "residual_multiplier": 0.5, "attention_multiplier": 0.3, "logits_scaling": 4.0},
        "not fitted: GraniteForCausalLM.forward kept as upstream (no fused loss)",
    ),
    # its RMSNorm scales in fp32 and its rope is interleaved: both kept as upstream, the MLP and loss fitted
    "helium": ({}, "not fitted: HeliumRMSNorm kept as upstream"),
}


@pytest.fixture
def project(tmp_path):
    """A project with this repository's layout and shared sets, and no family."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("")
    shutil.copytree(REPO / "models" / "common", tmp_path / "models" / "common")
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


REFUSED = {
    "gemma3": "Gemma3Attention.forward is none of the Ulysses step bindings",
    "qwen3_moe": "routed experts",
    "deepseek_v3": "routed experts",
    "qwen3_next": "routed experts",
    "qwen2_5_vl": "0 \\*ForCausalLM classes",
}


@pytest.mark.parametrize("model", covered())
def test_scaffold_picks_the_steps_of_the_hand_written_configs(model):
    """Run on the families written by hand: the same Ulysses steps as their base configs, or a refusal."""
    if model in REFUSED:
        with pytest.raises(PatchgenError, match=f"not Llama-shaped: .*{REFUSED[model]}"):
            new_model.plan_scaffold(model)
        return
    scaffold = new_model.plan_scaffold(model)
    assert (scaffold.attention, *scaffold.steps) == TABLE[model].attention_steps


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["smollm3"], "error: transformers.models.smollm3.modeling_smollm3: not Llama-shaped: SmolLM3Attention.forward "
         "is none of the Ulysses step bindings (separate or fused q/k/v, no/per-head/full-projection q/k norm); "
         "against Llama's it differs at `if self.use_rope:`"),
        (["no_such_model"], "error: source module 'transformers.models.no_such_model.modeling_no_such_model' cannot be "
         "found: No module named 'transformers.models.no_such_model'"),
    ],
)  # fmt: skip
def test_refuses_in_one_line_and_writes_nothing(project, args, message):
    result = run_cli("patchgen.commands.cli", "new-model", *args, cwd=project)  # the console script's subcommand
    assert result.returncode == 2
    assert result.stderr.splitlines() == [message]
    assert sorted(path.name for path in (project / "models").iterdir()) == ["__init__.py", "common"]
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
