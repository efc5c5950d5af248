"""The two CLIs as users run them: `python -m patchgen.run_codegen` and `python -m patchgen.check_patchgen`."""

import shutil
import textwrap

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, REPO, run_cli

from patchgen import check_patchgen, run_codegen


CONFIG = """
from patchgen import PatchConfig
from models.toy.patches import toy_project_patches as patches

config = PatchConfig(source_module="toyupstream.models.toy.modeling_toy", target_file="patched_modeling_toy_gpu.py")
config.replace_function("scale", description="project patch")(patches.scale_twice)
"""

PATCHES = """
def scale_twice(x, factor=2.0):
    # a comment that must reach the generated file
    return x * factor * 2
"""


@pytest.fixture
def project(tmp_path):
    """A project folder laid out like ours, with one toy config (model 'toy')."""
    (tmp_path / "models" / "toy" / "patches").mkdir(parents=True)
    for package in ["models", "models/toy", "models/toy/patches"]:
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "models" / "toy" / "toy_gpu_patch_gen_config.py").write_text(textwrap.dedent(CONFIG))
    (tmp_path / "models" / "toy" / "patches" / "toy_project_patches.py").write_text(textwrap.dedent(PATCHES))
    return tmp_path


def cli(module, *args, cwd):
    return run_cli(module, *args, cwd=cwd, extra_path=(FIXTURES,))


def test_help_is_complete():
    result = CliRunner().invoke(run_codegen.main, ["--help"])
    assert result.exit_code == 0
    for option in [
        "--output-dir",
        "--config-name",
        "--all",
        "--list",
        "--dry-run",
        "--diff",
        "--verbose",
        "CONFIG_MODULE",
    ]:
        assert option in result.output
    result = CliRunner().invoke(check_patchgen.main, ["--help"])
    assert result.exit_code == 0 and "--fix" in result.output


def test_list_shows_repository_configs(monkeypatch):
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(run_codegen.main, ["--list"])
    assert result.exit_code == 0, result.output
    assert "models.qwen3.qwen3_gpu_patch_gen_config" in result.output
    assert "transformers.models.qwen3.modeling_qwen3" in result.output
    assert "generated/qwen3/patched_modeling_qwen3_gpu.py" in result.output


def test_generate_check_drift_fix_cycle(project):
    dry = cli("patchgen.run_codegen", "--all", "--diff", "--dry-run", cwd=project)
    assert dry.returncode == 0, dry.stderr
    assert "would write generated/toy/patched_modeling_toy_gpu.py" in dry.stdout
    assert not (project / "generated").exists()

    run = cli("patchgen.run_codegen", "models/toy/toy_gpu_patch_gen_config.py", "--diff", "-v", cwd=project)
    assert run.returncode == 0, run.stderr
    out = project / "generated" / "toy" / "patched_modeling_toy_gpu.py"
    diff = out.with_suffix(".diff")
    assert "# a comment that must reach the generated file" in out.read_text()
    assert diff.read_text().startswith(
        "--- a/toyupstream/models/toy/modeling_toy.py\n+++ b/generated/toy/patched_modeling_toy_gpu.py\n"
    )
    assert (project / "generated" / "toy" / "__init__.py").exists()
    assert "function_replacement: scale" in run.stdout

    ok = cli("patchgen.check_patchgen", cwd=project)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "check-patchgen: OK" in ok.stdout

    # a hand edit of the generated file is drift, shown as a diff
    out.write_text(out.read_text().replace("factor * 2", "factor * 3"))
    drift = cli("patchgen.check_patchgen", cwd=project)
    assert drift.returncode == 1
    assert "DRIFT   generated/toy/patched_modeling_toy_gpu.py" in drift.stdout
    assert "-    return x * factor * 3\n+    return x * factor * 2" in drift.stdout

    # a stale .diff too
    diff.write_text(diff.read_text() + "+stale\n")
    stale = cli("patchgen.check_patchgen", "-q", cwd=project)
    assert stale.returncode == 1 and "DRIFT   generated/toy/patched_modeling_toy_gpu.diff" in stale.stdout

    # files no config produces, and outputs that are missing
    shutil.copy(out, project / "generated" / "toy" / "patched_modeling_toy_old.py")
    orphan = cli("patchgen.check_patchgen", "-q", cwd=project)
    assert "ORPHAN  generated/toy/patched_modeling_toy_old.py" in orphan.stdout

    fixed = cli("patchgen.check_patchgen", "--fix", cwd=project)
    assert fixed.returncode == 0, fixed.stdout
    assert "fixed   generated/toy/patched_modeling_toy_gpu.py" in fixed.stdout
    assert not (project / "generated" / "toy" / "patched_modeling_toy_old.py").exists()
    assert cli("patchgen.check_patchgen", cwd=project).returncode == 0

    out.unlink()
    missing = cli("patchgen.check_patchgen", cwd=project)
    assert missing.returncode == 1 and "MISSING generated/toy/patched_modeling_toy_gpu.py" in missing.stdout


def test_checker_fails_on_config_that_does_not_import(project):
    (project / "models" / "toy" / "broken_patch_gen_config.py").write_text("import nowhere_to_be_found\n")
    result = cli("patchgen.check_patchgen", cwd=project)
    assert result.returncode == 1
    assert "ERROR   models.toy.broken_patch_gen_config: config module failed to import" in result.stdout
    assert "FAILED" in result.stdout


def test_output_dir_option(project, tmp_path_factory):
    target = tmp_path_factory.mktemp("custom_out")
    result = cli(
        "patchgen.run_codegen", "models.toy.toy_gpu_patch_gen_config", "-o", str(target), "--diff", cwd=project
    )
    assert result.returncode == 0, result.stderr
    assert (target / "patched_modeling_toy_gpu.py").exists()
    assert (target / "patched_modeling_toy_gpu.diff").read_text().splitlines()[
        1
    ] == "+++ b/patched_modeling_toy_gpu.py"
    assert not (project / "generated").exists()


def test_cli_usage_error_without_config():
    result = CliRunner().invoke(run_codegen.main, [])
    assert result.exit_code == 2
    assert "give exactly one of CONFIG_MODULE or --all" in result.output
