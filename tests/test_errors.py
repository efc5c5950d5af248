"""Bad input: one clear line naming the config and the patch, exit status 2, nothing written."""

import textwrap
from pathlib import Path

import pytest
from conftest import FIXTURES, run_cli


HEADER = """
from patchgen import PatchConfig, create_patch_from_external
config = PatchConfig(source_module="toyupstream.models.toy.modeling_toy", target_file="patched_modeling_toy_x.py")
"""

CASES = {
    "target_class_missing": (
        HEADER
        + """
@config.replace_class("ToyRMSNrom", description="typo")
class Norm:
    pass
""",
        [
            "models.toy.toy_x_patch_gen_config",
            "class_replacement ToyRMSNrom",
            "no class 'ToyRMSNrom'",
            "did you mean 'ToyRMSNorm'",
        ],
    ),
    "function_missing": (
        HEADER
        + """
@config.replace_function("scael")
def f(x):
    return x
""",
        ["function_replacement scael", "no function 'scael'", "did you mean 'scale'"],
    ),
    "method_missing": (
        HEADER
        + """
@config.override_method("ToyMLP.forwrd")
def f(self, x):
    return x
""",
        ["method_override ToyMLP.forwrd", "neither defines nor inherits a method 'forwrd'", "did you mean 'forward'"],
    ),
    "override_without_dot": (
        HEADER
        + """
@config.override_method("forward")
def f(self, x):
    return x
""",
        ["override_method('forward')", "must be 'ClassName.method_name'"],
    ),
    "unknown_source_module": (
        """
from patchgen import PatchConfig
config = PatchConfig(source_module="toyupstream.models.nope.modeling_nope", target_file="patched_x.py")
""",
        ["toyupstream.models.nope.modeling_nope", "cannot be found"],
    ),
    "config_variable_missing": (
        "from patchgen import PatchConfig\ncfg = 1\n",
        ["has no variable 'config'", "--config-name"],
    ),
    "config_not_a_patchconfig": (
        "config = {'source_module': 'x'}\n",
        ["'config' is a dict, not a patchgen PatchConfig"],
    ),
    "config_syntax_error": ("config = (\n", ["syntax error", "toy_x_patch_gen_config.py:1"]),
    "config_import_fails": (
        "import not_a_module_anywhere\n",
        ["failed to import", "No module named 'not_a_module_anywhere'"],
    ),
    "patch_without_source": (
        HEADER
        + """
def make():
    def local(x):
        return x
    return local
config.replace_function("scale")(make())
""",
        ["function_replacement scale", "must be defined at module or class level"],
    ),
    "name_undefined_everywhere": (
        HEADER
        + """
@config.replace_function("scale")
def f(x):
    return undefined_helper(x)
""",
        ["function_replacement scale", "name 'undefined_helper' is defined neither in the upstream module nor in"],
    ),
    "two_patches_one_target": (
        HEADER
        + """
@config.replace_function("scale")
def f(x):
    return x
@config.replace_function("scale")
def g(x):
    return x
""",
        ["function_replacement scale", "already patches this target"],
    ),
    "exclusion_leaves_name_undefined": (
        HEADER + '\nconfig.exclude_from_output("ToyMLP")\n',
        ["would be broken", "Undefined name `ToyMLP`"],
    ),
    "modify_init_bad_params": (
        HEADER
        + """
@config.modify_init("ToyAttention")
def f(self, config, layer_idx):
    pass
""",
        ["init_modification ToyAttention", "must be 'def f(original_init, self, ...)'"],
    ),
}


def make_project(root: Path, config_text: str) -> None:
    (root / "models" / "toy").mkdir(parents=True)
    (root / "models" / "__init__.py").write_text("")
    (root / "models" / "toy" / "__init__.py").write_text("")
    (root / "models" / "toy" / "toy_x_patch_gen_config.py").write_text(textwrap.dedent(config_text))


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2_nothing_written(case, tmp_path):
    config_text, expected = CASES[case]
    make_project(tmp_path, config_text)
    result = run_cli(
        "patchgen.run_codegen", "models.toy.toy_x_patch_gen_config", "--diff", cwd=tmp_path, extra_path=(FIXTURES,)
    )
    assert result.returncode == 2, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in expected:
        assert fragment in error_lines[0], (fragment, error_lines[0])
    assert not (tmp_path / "generated").exists()


def test_unknown_config_module(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("")  # a project laid out like this one, with no configs
    result = run_cli("patchgen.run_codegen", "models.nothing.here_patch_gen_config", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: models.nothing.here_patch_gen_config: no such config module (check the dotted name or the path)",
        "nothing written",
    ]


def test_all_fails_whole_when_one_config_is_bad(tmp_path):
    make_project(tmp_path, HEADER)  # a valid zero-patch config
    bad = tmp_path / "models" / "toy" / "toy_y_patch_gen_config.py"
    bad.write_text(textwrap.dedent(CASES["function_missing"][0]).replace("toy_x.py", "toy_y.py"))
    result = run_cli("patchgen.run_codegen", "--all", "--diff", cwd=tmp_path, extra_path=(FIXTURES,))
    assert result.returncode == 2
    assert "no function 'scael'" in result.stderr and "nothing written" in result.stderr
    assert not (tmp_path / "generated").exists()
