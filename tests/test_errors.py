"""Bad input: one clear line naming the config and the patch, exit status 2, nothing written."""

import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO, run_cli


HEADER = """
from patchgen import PatchConfig, create_patch_from_external
config = PatchConfig(source_module="toyupstream.models.toy.modeling_toy", target_file="patched_modeling_toy_x.py")
"""

CASES = {
    # a composite whose __init__ builds a part with AutoModel.from_config: transformers' class, not the file's copy
    "composite_builds_transformers_submodel": (
        """
from patchgen import PatchConfig
config = PatchConfig(source_module="transformers.models.qwen3_vl.modeling_qwen3_vl", target_file="patched_modeling_toy_x.py")

@config.override_method("Qwen3VLTextRMSNorm.extra_repr", description="a changed repr")
def extra_repr(self):
    return f"eps={self.variance_epsilon}"
""",
        [
            "models.toy.toy_x_patch_gen_config",
            "generated patched_modeling_toy_x.py would build transformers' own Qwen3VLVisionModel, not its own",
            "Qwen3VLModel.__init__ (line ",
            "calls AutoModel.from_config(config.vision_config)",
            "apply OWN_SUBMODELS (patchgen.sets.composite.own_submodels) to Qwen3VLModel",
        ],
    ),
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
    "config_calls_sys_exit": (
        "import sys\nsys.exit(3)\n",
        ["config module called sys.exit(3) while being imported (toy_x_patch_gen_config.py:2)"],
    ),
    "config_raises_system_exit_quietly": (
        "raise SystemExit\n",
        ["config module called sys.exit(None) while being imported (toy_x_patch_gen_config.py:1)"],
    ),
    "config_raises_a_base_exception": (
        "raise GeneratorExit('stray')\n",
        ["config module failed to import: GeneratorExit: stray (toy_x_patch_gen_config.py:1)"],
    ),
    "config_calls_os_exit": (
        "import os\nos._exit(0)\n",
        ["config module called os._exit(0) while being imported (toy_x_patch_gen_config.py:2)"],
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
        "patchgen.commands.run_codegen",
        "models.toy.toy_x_patch_gen_config",
        "--diff",
        cwd=tmp_path,
        extra_path=(FIXTURES,),
    )
    assert result.returncode == 2, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in expected:
        assert fragment in error_lines[0], (fragment, error_lines[0])
    assert not (tmp_path / "generated").exists()
    assert_nothing_machine_specific(result.stderr, tmp_path)


def assert_nothing_machine_specific(message: str, *folders: Path) -> None:
    """No object reprs (`<function f at 0x7f...>`) and no absolute path of this machine in a message."""
    assert not re.search(r" at 0x[0-9a-fA-F]+>", message), message
    for folder in {*folders, REPO, Path(sys.prefix), Path(sys.base_prefix), Path.home(), Path(tempfile.gettempdir())}:
        assert str(folder.resolve()) not in message and str(folder) not in message, (folder, message)


def test_unknown_config_module(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("")  # a project laid out like this one, with no configs
    result = run_cli("patchgen.commands.run_codegen", "models.nothing.here_patch_gen_config", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: models.nothing.here_patch_gen_config: no such config module (check the dotted name or the path)",
        "nothing written",
    ]


def test_all_fails_whole_when_one_config_is_bad(tmp_path):
    make_project(tmp_path, HEADER)  # a valid zero-patch config
    bad = tmp_path / "models" / "toy" / "toy_y_patch_gen_config.py"
    bad.write_text(textwrap.dedent(CASES["function_missing"][0]).replace("toy_x.py", "toy_y.py"))
    result = run_cli("patchgen.commands.run_codegen", "--all", "--diff", cwd=tmp_path, extra_path=(FIXTURES,))
    assert result.returncode == 2
    assert "no function 'scael'" in result.stderr and "nothing written" in result.stderr
    assert not (tmp_path / "generated").exists()


def test_ctrl_c_while_configs_import_is_one_line_and_exit_130(tmp_path):
    # The config interrupts its own process, as Ctrl-C in the terminal does, while it is being imported.
    make_project(tmp_path, "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(30)\n")
    for module, args in [
        ("patchgen.commands.run_codegen", ["--all", "--diff"]),
        ("patchgen.commands.check_patchgen", []),
    ]:
        result = run_as_from_a_terminal(module, *args, cwd=tmp_path)
        assert result.returncode == 130, result.stderr
        assert result.stderr.splitlines() == ["error: interrupted; nothing written"]
    assert not (tmp_path / "generated").exists()


def run_as_from_a_terminal(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`run_cli`, but with Ctrl-C handled as in a terminal: a job started in the background (`cmd &`)
    inherits SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), str(FIXTURES), str(REPO)])}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in (chmod does not stop root: then a kernel folder)."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").write_text("")
    except PermissionError:
        return folder
    (folder / "probe").unlink()
    try:
        tempfile.mkstemp(dir="/sys")
    except PermissionError:
        return Path("/sys")
    pytest.skip("no folder here refuses writes to this user")


@pytest.mark.parametrize("where", ["read_only_folder", "path_under_a_file"])
def test_an_output_that_cannot_be_written_is_one_line_exit_2(where, tmp_path):
    make_project(tmp_path, HEADER)
    if where == "read_only_folder":
        target, reason = read_only_folder(tmp_path), "Permission denied"
    else:
        (tmp_path / "a_file").write_text("not a folder\n")
        target, reason = tmp_path / "a_file" / "out", "Not a directory"
    result = run_cli(
        "patchgen.commands.run_codegen",
        "models.toy.toy_x_patch_gen_config",
        "--diff",
        "-o",
        str(target),
        cwd=tmp_path,
        extra_path=(FIXTURES,),
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert line.startswith("error: cannot write ") and line.endswith(f"patched_modeling_toy_x.py: {reason}"), line
    assert "nothing written" in result.stderr
    assert_nothing_machine_specific(result.stderr, tmp_path)
    assert not list(target.glob("*patched*")) if target.is_dir() else not target.exists()


def test_a_failed_write_leaves_no_file_and_no_folder_behind(tmp_path):
    """Two configs, the second one's folder cannot be made: the first one's files are not written either."""
    make_project(tmp_path, HEADER)
    other = tmp_path / "models" / "other"
    other.mkdir()
    (other / "__init__.py").write_text("")
    (other / "other_x_patch_gen_config.py").write_text(textwrap.dedent(HEADER).replace("toy_x.py", "other_x.py"))
    (tmp_path / "generated").mkdir()
    (tmp_path / "generated" / "toy").write_text("a file where the toy folder would go\n")
    result = run_cli("patchgen.commands.run_codegen", "--all", "--diff", cwd=tmp_path, extra_path=(FIXTURES,))
    assert result.returncode == 2, result.stderr
    assert "error: cannot write generated/toy/" in result.stderr and "Not a directory" in result.stderr
    assert sorted(p.name for p in (tmp_path / "generated").iterdir()) == ["toy"]  # no generated/other/
