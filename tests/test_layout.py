"""`[tool.patchgen]`: project root, config discovery, module names and output paths (`patchgen.dsl.layout`)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import REPO, run_cli

from patchgen.commands import check_patchgen, cli, run_codegen, upgrade_report
from patchgen.dsl.errors import PatchgenError
from patchgen.dsl.layout import find_project_root, load_layout


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def src_layout_project(root: Path, table: str, package: str = "acme") -> Path:
    """A project keeping its configs in a package under src/, with its settings in pyproject.toml.

    Tests that import the package give it a name of their own: it stays in sys.modules.
    """
    table = textwrap.dedent(table).replace("acme", package)
    write(root / "pyproject.toml", f'[project]\nname = "{package}"\n\n[tool.patchgen]\n{table}')
    for folder in [package, f"{package}/patch_configs", f"{package}/patch_configs/llama"]:
        write(root / "src" / folder / "__init__.py")
    write(root / f"src/{package}/patch_configs/qwen3_fast_patch_gen_config.py")
    write(root / f"src/{package}/patch_configs/llama/llama_fast_patch_gen_config.py")
    write(root / f"src/{package}/patch_configs/helpers.py")  # not a config: the pattern does not match
    return root


def test_this_repository_needs_no_settings_and_keeps_its_layout():
    layout = load_layout(REPO)
    assert layout.settings_file is None
    assert layout.output_root == Path("generated")
    assert layout.import_roots == [REPO.resolve()]
    assert "models.qwen3.qwen3_gpu_patch_gen_config" in layout.config_modules()
    assert all(name.startswith("models.") and name.endswith("_patch_gen_config") for name in layout.config_modules())
    out = layout.output_file("qwen3", "gpu", "patched_modeling_qwen3_gpu.py")
    assert out == Path("generated/qwen3/patched_modeling_qwen3_gpu.py")
    assert layout.package_inits(out) == [Path("generated/qwen3/__init__.py"), Path("generated/__init__.py")]


def test_src_layout_configs_are_named_by_package_and_outputs_follow_the_template(tmp_path):
    root = src_layout_project(
        tmp_path,
        """
        configs = ["src/acme/patch_configs"]
        output-root = "src/acme/modeling"
        output-path = "{model}/{variant}/{target_file}"
        """,
    )
    assert find_project_root(root / "src" / "acme" / "patch_configs" / "llama") == root.resolve()
    layout = load_layout(root)
    assert layout.config_modules() == [
        "acme.patch_configs.llama.llama_fast_patch_gen_config",
        "acme.patch_configs.qwen3_fast_patch_gen_config",
    ]
    assert layout.import_roots == [root.resolve(), (root / "src").resolve()]
    out = layout.output_file("qwen3", "fast", "patched_modeling_qwen3_fast.py")
    assert out == Path("src/acme/modeling/qwen3/fast/patched_modeling_qwen3_fast.py")
    assert layout.package_inits(out) == [
        Path("src/acme/modeling/qwen3/fast/__init__.py"),
        Path("src/acme/modeling/qwen3/__init__.py"),
        Path("src/acme/modeling/__init__.py"),
    ]


def test_a_dotted_package_name_is_a_configs_entry_too(tmp_path, monkeypatch):
    """Configs may live in an installed package: named in `configs` by its dotted name, found on sys.path."""
    site = src_layout_project(tmp_path / "site", "", package="acme_dotted") / "src"
    monkeypatch.syspath_prepend(str(site))
    root = tmp_path / "project"
    write(root / "pyproject.toml", '[tool.patchgen]\nconfigs = ["acme_dotted.patch_configs.llama"]\n')
    layout = load_layout(root)
    assert layout.config_modules() == ["acme_dotted.patch_configs.llama.llama_fast_patch_gen_config"]
    assert layout.import_roots == [root.resolve(), site.resolve()]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('config = ["src"]\n', "unknown key 'config'; the keys are configs, config-pattern, output-root, output-path"),
        ('configs = "src"\n', "configs must be a non-empty list of folders or dotted package names"),
        ('configs = ["src/acme/nowhere"]\n', "configs entry 'src/acme/nowhere' is not a folder under"),
        ('configs = ["acme.nowhere"]\n', "configs entry 'acme.nowhere' is neither a folder under"),
        ('output-root = "../elsewhere"\n', "output-root '../elsewhere' must be a folder inside the project root"),
        ('output-path = "{model}/{name}.py"\n', "output-path '{model}/{name}.py' names {name}; it may use {model}"),
        ('output-path = "{model}/{variant}"\n', "must be a relative path ending in .py"),
    ],
)
def test_bad_settings_are_one_line_naming_the_file_and_key(tmp_path, table, message):
    root = src_layout_project(tmp_path, table)
    with pytest.raises(PatchgenError) as caught:
        load_layout(root)
    assert str(caught.value).startswith(f"{root.resolve() / 'pyproject.toml'} [tool.patchgen]: ")
    assert message in str(caught.value)


def test_every_command_outside_a_project_says_so_in_one_line_and_exits_2(tmp_path):
    expected = (
        f"error: not inside a patchgen project: no pyproject.toml with a [tool.patchgen] table and no "
        f"models/__init__.py in {tmp_path.resolve()} or any folder above it; run from inside your project "
        "or add the table to its pyproject.toml"
    )
    write(tmp_path / "pyproject.toml", '[project]\nname = "not-a-patchgen-user"\n')  # no table: not a project
    for module, args in [
        ("patchgen.commands.run_codegen", ["--all"]),
        ("patchgen.commands.check_patchgen", []),
        ("patchgen.commands.upgrade_report", []),
        ("patchgen.commands.cli", ["list"]),
    ]:
        result = run_cli(module, *args, cwd=tmp_path)
        assert (result.returncode, result.stdout, result.stderr.strip()) == (2, "", expected), module


def test_console_script_subcommands_are_the_module_commands():
    assert cli.main.commands["generate"] is run_codegen.main
    assert cli.main.commands["check"] is check_patchgen.main
    assert cli.main.commands["upgrade-report"] is upgrade_report.main
    shown = CliRunner().invoke(cli.main, ["--help"])
    assert shown.exit_code == 0
    for name in ["generate", "check", "upgrade-report", "list"]:
        assert f"  {name} " in shown.output
    # the same help text (and so the same options) under both spellings, but for the usage line
    for name, command in [("generate", run_codegen.main), ("check", check_patchgen.main)]:
        via_script = CliRunner().invoke(cli.main, [name, "--help"]).output.split("\n", 1)[1]
        via_module = CliRunner().invoke(command, ["--help"]).output.split("\n", 1)[1]
        assert via_script == via_module


def test_list_subcommand_is_run_codegen_list(tmp_path, monkeypatch):
    root = src_layout_project(tmp_path, 'configs = ["src/acme/patch_configs"]\n', package="acme_listed")
    write(root / "src/acme_listed/patch_configs/qwen3_fast_patch_gen_config.py", "broken(\n")
    monkeypatch.chdir(root / "src")
    via_script = CliRunner().invoke(cli.main, ["list"])
    via_module = CliRunner().invoke(run_codegen.main, ["--list"])
    assert via_script.exit_code == via_module.exit_code == 2  # both configs fail to load: listed as errors
    assert via_script.output == via_module.output
    assert "acme_listed.patch_configs.qwen3_fast_patch_gen_config" in via_script.output
