"""`config.use(SET, ..., bind={placeholder: step})`: a set's open step picked per config."""

import pytest
import torch
from conftest import import_file

from patchgen.commands.codegen import generate
from patchgen.dsl.errors import PatchgenError
from patchgen.dsl.patch_spec import PatchConfig
from patchgen.load.discovery import load_config


def generated(name, tmp_path):
    (result,) = generate([load_config("bindpatches.configs", name)], output_dir=tmp_path)
    assert result.error is None, result.error
    text = result.module_output.text
    path = tmp_path / result.module_output.path.name
    path.write_text(text)
    return text, import_file(path, f"bind_{name}")


def mlp_output(module):
    from toyupstream.models.toy.configuration_toy import ToyConfig

    torch.manual_seed(0)
    mlp = module.ToyMLP(ToyConfig())
    x = torch.randn(2, ToyConfig().hidden_size)
    with torch.no_grad():
        return mlp(x), mlp.act(mlp.up(x)), x


def test_unbound_placeholder_is_the_patch_modules_own(tmp_path):
    text, module = generated("default", tmp_path)
    assert "return combine(self.act(self.up(x)), x)" in text
    assert "def combine(x, y):" in text
    out, hidden, x = mlp_output(module)
    assert torch.equal(out, hidden + x)


def test_bound_step_is_copied_under_its_own_name_and_called(tmp_path):
    text, module = generated("copied", tmp_path)
    assert "return twice_then_add(self.act(self.up(x)), x)" in text
    assert "def twice_then_add(x, y):" in text and "def double(x):" in text  # with what it needs
    assert "def combine(" not in text  # the default step is not copied when something is bound
    # comments of the bound step travel with it
    assert "# a step copied into the output under its own name" in text
    out, hidden, x = mlp_output(module)
    assert torch.equal(out, hidden * 2 + x)


def test_bound_installed_function_is_imported(tmp_path):
    text, module = generated("imported", tmp_path)
    assert "from torch.nn.functional import mse_loss" in text
    assert "return mse_loss(self.act(self.up(x)), x)" in text
    out, hidden, x = mlp_output(module)
    assert torch.equal(out, torch.nn.functional.mse_loss(hidden, x))


def test_placeholder_the_code_never_uses_is_an_error(tmp_path):
    (result,) = generate([load_config("bindpatches.configs", "unused")], output_dir=tmp_path)
    assert result.error is not None
    assert "never uses the placeholder 'combin'" in result.error and "did you mean 'combine'" in result.error
    assert "\n" not in result.error


@pytest.mark.parametrize(
    ("bind", "message"),
    [
        ([("combine", len)], "bind must be a dict"),
        ({"not a name": len}, "'not a name' is not a Python name"),
        ({"combine": 3}, "'combine' is bound to a int; bind a module-level function or class"),
    ],
)
def test_bad_bind_arguments_fail_at_use(bind, message):
    from bindpatches import steps

    config = PatchConfig(source_module="toyupstream.models.toy.modeling_toy", target_file="patched_x.py")
    with pytest.raises(PatchgenError, match=message):
        config.use(steps.MLP_FORWARD, "ToyMLP", bind=bind)
