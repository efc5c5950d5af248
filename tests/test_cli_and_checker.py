"""The two CLIs as users run them: `python -m patchgen.run_codegen` and `python -m patchgen.check_patchgen`."""

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, REPO, run_cli

from patchgen.commands import check_patchgen, run_codegen
from patchgen.render.formatting import FormatSettings, format_sources
from patchgen.render.outputs import write_all


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
    dry = cli("patchgen.commands.run_codegen", "--all", "--diff", "--dry-run", cwd=project)
    assert dry.returncode == 0, dry.stderr
    assert "would write generated/toy/patched_modeling_toy_gpu.py" in dry.stdout
    assert not (project / "generated").exists()

    run = cli("patchgen.commands.run_codegen", "models/toy/toy_gpu_patch_gen_config.py", "--diff", "-v", cwd=project)
    assert run.returncode == 0, run.stderr
    out = project / "generated" / "toy" / "patched_modeling_toy_gpu.py"
    diff = out.with_suffix(".diff")
    assert "# a comment that must reach the generated file" in out.read_text()
    assert diff.read_text().startswith(
        "--- a/toyupstream/models/toy/modeling_toy.py\n+++ b/generated/toy/patched_modeling_toy_gpu.py\n"
    )
    assert (project / "generated" / "toy" / "__init__.py").exists()
    assert "function_replacement: scale" in run.stdout

    ok = cli("patchgen.commands.check_patchgen", cwd=project)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "check-patchgen: OK" in ok.stdout

    # a hand edit of the generated file is drift, shown as a diff
    out.write_text(out.read_text().replace("factor * 2", "factor * 3"))
    drift = cli("patchgen.commands.check_patchgen", cwd=project)
    assert drift.returncode == 1
    assert "DRIFT   generated/toy/patched_modeling_toy_gpu.py" in drift.stdout
    assert "-    return x * factor * 3\n+    return x * factor * 2" in drift.stdout

    # a stale .diff too
    diff.write_text(diff.read_text() + "+stale\n")
    stale = cli("patchgen.commands.check_patchgen", "-q", cwd=project)
    assert stale.returncode == 1 and "DRIFT   generated/toy/patched_modeling_toy_gpu.diff" in stale.stdout

    # files no config produces, and outputs that are missing
    shutil.copy(out, project / "generated" / "toy" / "patched_modeling_toy_old.py")
    orphan = cli("patchgen.commands.check_patchgen", "-q", cwd=project)
    assert "ORPHAN  generated/toy/patched_modeling_toy_old.py" in orphan.stdout

    fixed = cli("patchgen.commands.check_patchgen", "--fix", cwd=project)
    assert fixed.returncode == 0, fixed.stdout
    assert "fixed   generated/toy/patched_modeling_toy_gpu.py" in fixed.stdout
    assert not (project / "generated" / "toy" / "patched_modeling_toy_old.py").exists()
    assert cli("patchgen.commands.check_patchgen", cwd=project).returncode == 0

    out.unlink()
    missing = cli("patchgen.commands.check_patchgen", cwd=project)
    assert missing.returncode == 1 and "MISSING generated/toy/patched_modeling_toy_gpu.py" in missing.stdout


def test_checker_fails_on_config_that_does_not_import(project):
    (project / "models" / "toy" / "broken_patch_gen_config.py").write_text("import nowhere_to_be_found\n")
    result = cli("patchgen.commands.check_patchgen", cwd=project)
    assert result.returncode == 1
    assert "ERROR   models.toy.broken_patch_gen_config: config module failed to import" in result.stdout
    assert "FAILED" in result.stdout


def test_output_dir_option(project, tmp_path_factory):
    target = tmp_path_factory.mktemp("custom_out")
    result = cli(
        "patchgen.commands.run_codegen",
        "models.toy.toy_gpu_patch_gen_config",
        "-o",
        str(target),
        "--diff",
        cwd=project,
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


# -- each output depends on its own config only ----------------------------------------------------


def test_formatting_settings_of_one_file_do_not_reach_another():
    # `math` is kept in the file whose config asked for it (add_import), removed as unused from the other;
    # each file sorts its own upstream package as first-party.
    text = (
        "import math\nimport os\n\nimport toyupstream\n\nimport transformers\n\nX = (os, toyupstream, transformers)\n"
    )
    keeps_math = FormatSettings(first_party=("transformers",), keep_imports=("math",))
    plain = FormatSettings(first_party=("toyupstream",))
    together, _ = format_sources([(text, keeps_math), (text, plain)])
    alone = [format_sources([(text, settings)])[0][0] for settings in (keeps_math, plain)]
    assert together == alone
    assert "import math\n" in alone[0] and "import math\n" not in alone[1]
    assert "import toyupstream\n\nimport transformers\n" in alone[0]
    assert "import transformers\n\nimport toyupstream\n" in alone[1]


ALONE_SCRIPT = """
import json, sys
from pathlib import Path
from patchgen.commands.config_runs import run_configs
from patchgen.load.discovery import discover_configs

root = Path.cwd()
alone = {}
for spec in discover_configs(root):
    (run,) = run_configs(root, [spec])
    assert run.generation.error is None, run.generation.error
    alone.update({str(o.path): o.text for o in run.generation.outputs})
print(json.dumps(alone))
"""


def test_every_committed_config_generated_alone_gives_the_committed_bytes():
    """The committed files come from `--all`; each config alone, in a process that imported no other config
    before it, must give the same bytes (what the header's Regenerate command runs)."""
    result = subprocess.run(
        [sys.executable, "-c", ALONE_SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    alone = json.loads(result.stdout.splitlines()[-1])
    modules = [p for p in alone if p.endswith(".py") and not p.endswith("__init__.py")]
    assert len(modules) >= 12
    for path, text in alone.items():
        assert (REPO / path).read_text(encoding="utf-8") == text, path
    for path in modules:
        regenerate = next(line for line in alone[path].splitlines() if line.startswith("# Regenerate: "))
        config = alone[path].split("# Config: ", 1)[1].split("\n", 1)[0]
        assert regenerate == f"# Regenerate: python -m patchgen.run_codegen {config} --diff"


def test_two_configs_writing_one_file_are_an_error_naming_both(project):
    twin = project / "models" / "toy" / "toy_twin_patch_gen_config.py"
    twin.write_text(textwrap.dedent(CONFIG))  # same model, same target_file
    run = cli("patchgen.commands.run_codegen", "--all", "--diff", cwd=project)
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: models.toy.toy_gpu_patch_gen_config: writes generated/toy/patched_modeling_toy_gpu.py, which "
        "models.toy.toy_twin_patch_gen_config also writes; give one of them another target_file (or another model)",
        "error: models.toy.toy_twin_patch_gen_config: writes generated/toy/patched_modeling_toy_gpu.py, which "
        "models.toy.toy_gpu_patch_gen_config also writes; give one of them another target_file (or another model)",
    ]
    assert not (project / "generated").exists()


def test_regenerate_line_names_a_config_variable_other_than_config(project, tmp_path_factory):
    config = project / "models" / "toy" / "toy_gpu_patch_gen_config.py"
    config.write_text(config.read_text().replace("config", "toy_config"))
    target = tmp_path_factory.mktemp("named")
    run = cli(
        "patchgen.commands.run_codegen",
        "models.toy.toy_gpu_patch_gen_config",
        "-c",
        "toy_config",
        "-o",
        str(target),
        cwd=project,
    )
    assert run.returncode == 0, run.stderr
    text = (target / "patched_modeling_toy_gpu.py").read_text()
    assert (
        "# Regenerate: python -m patchgen.run_codegen models.toy.toy_gpu_patch_gen_config -c toy_config --diff\n"
        in text
    )


# -- writing ---------------------------------------------------------------------------------------


def test_written_files_keep_their_mode_or_follow_the_umask(tmp_path):
    existing, new = tmp_path / "existing.py", tmp_path / "sub" / "new.py"
    existing.write_text("old\n")
    existing.chmod(0o640)
    previous = os.umask(0o022)
    try:
        write_all({existing: "fresh\n", new: "fresh\n"})
    finally:
        os.umask(previous)
    assert existing.read_text() == "fresh\n" and stat.S_IMODE(existing.stat().st_mode) == 0o640
    assert stat.S_IMODE(new.stat().st_mode) == 0o644  # 0666 under umask 022, not mkstemp's 0600
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["existing.py", "new.py", "sub"]  # no temp file left


def test_temp_files_of_a_killed_run_are_reported_and_ignored_by_git(project):
    assert cli("patchgen.commands.run_codegen", "--all", "--diff", cwd=project).returncode == 0
    leftover = project / "generated" / "toy" / ".patched_modeling_toy_gpu.py.k2j4x9.tmp"
    leftover.write_text("half a file")
    check = cli("patchgen.commands.check_patchgen", "--no-import", cwd=project)
    assert check.returncode == 1
    assert (
        "TEMP    generated/toy/.patched_modeling_toy_gpu.py.k2j4x9.tmp: a temp file an interrupted run left behind"
        in check.stdout
    )
    fixed = cli("patchgen.commands.check_patchgen", "--no-import", "--fix", cwd=project)
    assert fixed.returncode == 0, fixed.stdout
    assert not leftover.exists()
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "--no-index", "generated/qwen3/.patched_modeling_qwen3_gpu.py.abc123.tmp"],
        cwd=REPO,
    )
    assert ignored.returncode == 0


def test_an_unreadable_lock_is_labelled_as_such_and_does_not_hide_drift(project):
    assert cli("patchgen.commands.run_codegen", "--all", "--diff", cwd=project).returncode == 0
    out = project / "generated" / "toy" / "patched_modeling_toy_gpu.py"
    out.write_text(out.read_text().replace("factor * 2", "factor * 3"))
    out.with_suffix(".lock.json").write_text("{ not json")
    check = cli("patchgen.commands.check_patchgen", "-q", "--no-import", cwd=project)
    assert check.returncode == 1
    lines = check.stdout.splitlines()
    assert (
        "DRIFT   generated/toy/patched_modeling_toy_gpu.py: committed file differs from a fresh regeneration" in lines
    )
    (lock,) = [line for line in lines if line.startswith("LOCK    ")]
    assert lock.startswith(
        "LOCK    generated/toy/patched_modeling_toy_gpu.lock.json: generated/toy/patched_modeling_toy_gpu.lock.json: "
        "not a readable patchgen lock file (JSONDecodeError"
    )
    assert not any(line.startswith(("UPGRADE", "ERROR")) for line in lines), check.stdout
    run = cli("patchgen.commands.run_codegen", "--all", "--diff", cwd=project)
    assert run.returncode == 2 and "not a readable patchgen lock file" in run.stderr


LLAMA_CONFIG = """
from patchgen import PatchConfig

config = PatchConfig(source_module="transformers.models.llama.modeling_llama", target_file="patched_modeling_toy_x.py")


@config.override_method("LlamaRMSNorm.extra_repr", description="a changed repr")
def extra_repr(self):
    return f"eps={self.variance_epsilon}"
"""


def test_an_output_dir_is_not_checked_against_locks_around_it(tmp_path):
    """--output-dir writes no lock, so there is nothing to check the fresh fingerprints against: a lock of another
    transformers release beside that folder (or anything else around it: `-o /sys` once scanned `/`, racing with
    processes leaving /proc) is not the project's and must not refuse the run."""
    project = tmp_path / "project"
    (project / "models" / "toy").mkdir(parents=True)
    for package in ["models", "models/toy"]:
        (project / package / "__init__.py").write_text("")
    (project / "models" / "toy" / "toy_x_patch_gen_config.py").write_text(textwrap.dedent(LLAMA_CONFIG))
    other = tmp_path / "out" / "other"
    other.mkdir(parents=True)
    lock = json.loads((REPO / "generated" / "llama" / "patched_modeling_llama_cpu.lock.json").read_text())
    lock["upstream_version"] = "transformers==5.17.0"
    (other / "patched_modeling_llama_cpu.lock.json").write_text(json.dumps(lock))
    run = cli(
        "patchgen.commands.run_codegen",
        "models.toy.toy_x_patch_gen_config",
        "-o",
        str(tmp_path / "out" / "mine"),
        cwd=project,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "mine" / "patched_modeling_toy_x.py").exists()
    assert not list((tmp_path / "out" / "mine").glob("*.lock.json"))
