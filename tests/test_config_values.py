"""Sets check the config values they depend on: at generation (upstream's reads, config defaults) and at construction."""

import importlib
import json
import os
import subprocess
import sys

import pytest
import torch
import transformers
from conftest import REPO, run_cli


# -- refused at generation -----------------------------------------------------------------------------

MISFITS = {
    "fused_loss_on_granite": [
        "upstream GraniteForCausalLM.forward",
        "reads config.logits_scaling, which fused_loss.linear_cross_entropy_forward ignores",
        "supports only final_logit_softcapping=(None,)",
    ],
    "swiglu_on_gemma3": [
        "upstream Gemma3MLP",
        "reads config.hidden_activation, which torch_kernels.TorchSwiGLUMLP ignores",
        "hidden_act=('silu', 'swish')",
    ],
    "fused_loss_on_gemma2": [
        "requires_config('causal_lm', final_logit_softcapping=(None,))",
        "Gemma2Config() defaults final_logit_softcapping=30.0, outside the supported (None,)",
    ],
}
GENERATE = """
import json, sys, tempfile
from pathlib import Path
from patchgen.commands.codegen import generate
from patchgen.load.discovery import load_config
errors = {}
for name in sys.argv[1:]:
    (result,) = generate([load_config("config_value_misfits", name)], output_dir=Path(tempfile.mkdtemp()))
    errors[name] = [result.error, len(result.outputs)]
print(json.dumps(errors))
"""


@pytest.fixture(scope="module")
def misfit_errors():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests" / "fixtures")])}
    result = subprocess.run(
        [sys.executable, "-c", GENERATE, *MISFITS], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("name", sorted(MISFITS))
def test_sets_refuse_config_values_they_do_not_support(misfit_errors, name):
    error, outputs = misfit_errors[name]
    assert error is not None and outputs == 0
    assert "\n" not in error
    for fragment in MISFITS[name]:
        assert fragment in error, (fragment, error)


GRANITE_CONFIG = """
from patchgen.sets.training_sets import TORCH_LINEAR_CROSS_ENTROPY
from patchgen import PatchConfig

config = PatchConfig(source_module="transformers.models.granite.modeling_granite", target_file="patched_granite_cpu.py")
config.use(TORCH_LINEAR_CROSS_ENTROPY, "GraniteForCausalLM")
"""


def test_fused_loss_on_granite_exit_2_one_line_nothing_written(tmp_path):
    """As a user runs it: the README's Llama recipe applied to Granite is refused, not generated wrong."""
    (tmp_path / "models").mkdir()  # the shipped sets come with patchgen
    (tmp_path / "models" / "__init__.py").write_text("")
    (tmp_path / "models" / "granite").mkdir()
    (tmp_path / "models" / "granite" / "__init__.py").write_text("")
    (tmp_path / "models" / "granite" / "granite_cpu_patch_gen_config.py").write_text(GRANITE_CONFIG)
    result = run_cli(
        "patchgen.commands.run_codegen", "models.granite.granite_cpu_patch_gen_config", "--diff", cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "granite_cpu_patch_gen_config.py:6: use(torch_linear_cross_entropy)" in errors[0]
    assert "config.logits_scaling" in errors[0]
    assert not (tmp_path / "generated").exists()


# -- refused at construction -------------------------------------------------------------------------------

TINY = dict(
    vocab_size=99,
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=8,
)


@pytest.mark.parametrize(
    ("module", "config_class", "causal_lm"),
    [
        ("generated.llama.patched_modeling_llama_cpu", "LlamaConfig", "LlamaForCausalLM"),
        ("generated.qwen3.patched_modeling_qwen3_cpu", "Qwen3Config", "Qwen3ForCausalLM"),
    ],
)
def test_generated_file_refuses_unsupported_activation_at_construction(module, config_class, causal_lm):
    generated = importlib.import_module(module)
    config = getattr(transformers, config_class)(**TINY, hidden_act="gelu")
    with pytest.raises(ValueError) as caught:
        getattr(generated, causal_lm)(config)
    message = str(caught.value)
    assert "\n" not in message
    assert "patch set torch_swiglu_mlp" in message and "config.hidden_act" in message
    assert "'silu', 'swish'" in message and "'gelu'" in message
    # a supported value builds, and computes what stock computes
    torch.manual_seed(0)
    good = getattr(transformers, config_class)(**TINY)
    model = getattr(generated, causal_lm)(good).eval()
    stock = getattr(transformers, causal_lm)(good).eval()
    stock.load_state_dict(model.state_dict())
    ids = torch.randint(0, 99, (2, 7))
    torch.testing.assert_close(model(ids).logits, stock(ids).logits)


def test_fused_loss_refuses_soft_capping_at_construction():
    """The fused-loss forward's declared value is checked at the causal LM's construction."""
    from generated.llama.patched_modeling_llama_cpu import LlamaForCausalLM

    config = transformers.LlamaConfig(**TINY)
    config.final_logit_softcapping = 30.0
    with pytest.raises(ValueError, match=r"LlamaForCausalLM: patch set torch_linear_cross_entropy supports "):
        LlamaForCausalLM(config)


def test_runtime_helper_one_line():
    from patchgen.runtime.config_checks import check_config_values

    class Config:
        mlp_bias = 1

    check_config_values(Config(), "s", "T", {"absent": ("x",)})  # an attribute the config lacks is not checked
    with pytest.raises(ValueError, match=r"^T: patch set s supports config.mlp_bias in \(False\) only, got 1;"):
        check_config_values(Config(), "s", "T", {"mlp_bias": (False,)})
