"""`run_codegen --list`: every config with model, variant, base, source, target, patch count and status."""

from conftest import REPO, run_cli
from test_composition import codegen, make_project

from patchgen.commands.listing import COLUMNS
from tests.families import covered


KEYS = ["CONFIG", "MODEL", "VARIANT", "EXTENDS", "SOURCE", "TARGET", "PATCHES", "STATUS"]


def table(stdout: str) -> dict[str, dict[str, str]]:
    """Rows of the listing keyed by config, as column -> cell (cells contain no spaces)."""
    lines = stdout.splitlines()
    assert lines[0].split() == [word for column in COLUMNS for word in column.split()]
    rows = {}
    for line in lines[1:]:
        cells = line.split()
        rows[cells[0]] = dict(zip(KEYS, cells, strict=True))
    return rows


def test_list_statuses_follow_the_committed_files(tmp_path):
    make_project(tmp_path)
    assert codegen(tmp_path, "--all", "--diff").returncode == 0
    listed = codegen(tmp_path, "--list")
    assert listed.returncode == 0, listed.stderr
    rows = table(listed.stdout)
    base, gpu = rows["models.toy.toy_base_patch_gen_config"], rows["models.toy.toy_gpu_patch_gen_config"]
    assert base == {
        "CONFIG": "models.toy.toy_base_patch_gen_config",
        "MODEL": "toy",
        "VARIANT": "base",
        "EXTENDS": "-",
        "SOURCE": "toyupstream.models.toy.modeling_toy",
        "TARGET": "-",
        "PATCHES": "1",
        "STATUS": "base",
    }
    assert gpu["VARIANT"] == "gpu" and gpu["EXTENDS"] == "toy_base" and gpu["PATCHES"] == "1"
    assert gpu["TARGET"] == "generated/toy/patched_modeling_toy_gpu.py" and gpu["STATUS"] == "current"

    generated = tmp_path / "generated" / "toy" / "patched_modeling_toy_gpu.py"
    generated.with_suffix(".diff").write_text("stale\n")
    assert table(codegen(tmp_path, "--list").stdout)["models.toy.toy_gpu_patch_gen_config"]["STATUS"] == "stale"
    generated.unlink()
    assert table(codegen(tmp_path, "--list").stdout)["models.toy.toy_gpu_patch_gen_config"]["STATUS"] == "missing"


def test_list_marks_a_broken_config_and_exits_2(tmp_path):
    make_project(tmp_path)
    (tmp_path / "models" / "toy" / "toy_cpu_patch_gen_config.py").write_text("import not_installed_anywhere\n")
    listed = codegen(tmp_path, "--list")
    assert listed.returncode == 2
    assert table(listed.stdout)["models.toy.toy_cpu_patch_gen_config"]["STATUS"] == "error"
    assert table(listed.stdout)["models.toy.toy_gpu_patch_gen_config"]["STATUS"] == "missing"
    errors = [line for line in listed.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: models.toy.toy_cpu_patch_gen_config: config module failed to import: "
        "ModuleNotFoundError: No module named 'not_installed_anywhere' (toy_cpu_patch_gen_config.py:1)"
    ]


def test_list_shows_every_repository_config_current():
    listed = run_cli("patchgen.commands.run_codegen", "--list", cwd=REPO)
    assert listed.returncode == 0, listed.stderr
    rows = table(listed.stdout)
    for model in covered():
        assert rows[f"models.{model}.{model}_base_patch_gen_config"]["STATUS"] == "base"
        for variant in ["cpu", "gpu"]:
            row = rows[f"models.{model}.{model}_{variant}_patch_gen_config"]
            assert row["MODEL"] == model and row["VARIANT"] == variant and row["EXTENDS"] == f"{model}_base"
            assert row["SOURCE"] == f"transformers.models.{model}.modeling_{model}"
            assert row["TARGET"] == f"generated/{model}/patched_modeling_{model}_{variant}.py"
            assert int(row["PATCHES"]) >= 1 and row["STATUS"] == "current", row  # gpt_oss patches its norm only
