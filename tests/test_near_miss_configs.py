"""A file in the configs folders that looks like a config but escapes the config pattern is refused.

`qwen3_gpu_patchgen_config.py` (one underscore short) used to be skipped without a word by
`generate --all` and by the drift check: its generated file would go stale with every check green.
"""

from __future__ import annotations

import shutil

import pytest
from conftest import REPO, run_cli
from test_upgrade_report import make_project

from patchgen.dsl.layout import _near_pattern, load_layout


PATTERN = "*_patch_gen_config.py"
CONFIG = "models/toyup/toyup_patch_gen_config.py"


@pytest.mark.parametrize(
    "name",
    [
        "qwen3_gpu_patchgen_config.py",
        "qwen3_gpu_patch_gen_conf.py",
        "qwen3_gpu_patch_gen_configs.py",
        "qwen3_patch_config.py",
        "patch_gen_config.py",
        "Qwen3_GPU_Patch_Gen_Config.py",
    ],
)
def test_names_close_to_the_pattern_are_near_misses(name):
    assert _near_pattern(name, PATTERN)


@pytest.mark.parametrize(
    "name",
    ["toyup_patches.py", "qwen3_patch_config_helpers.py", "training_sets.py", "generic_config.py", "x.pyc"],
)
def test_helpers_beside_configs_are_not(name):
    assert not _near_pattern(name, PATTERN)


def test_this_repository_has_no_near_misses():
    assert load_layout(REPO).near_miss_configs() == []


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("models/toyup/toyup_patchgen_config.py", f"its name is close to config-pattern {PATTERN!r}"),
        ("models/toyup/toyup_patch_gen_conf.py", f"its name is close to config-pattern {PATTERN!r}"),
        ("models/toyup/variants/fast.py", "it assigns `config = PatchConfig(...)`"),
    ],
)
def test_generate_all_and_check_refuse_a_near_miss_naming_file_and_pattern(tmp_path, name, why):
    make_project(tmp_path)
    assert run_cli("patchgen.commands.run_codegen", "--all", "--diff", cwd=tmp_path).returncode == 0
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / CONFIG, tmp_path / name)  # a copy of the real config: both tests apply
    expected = (
        f"error: 1 file(s) in the configs folders look like configs but do not match config-pattern {PATTERN!r}, "
        f"so they would be skipped: {name}: {why}; rename each to match the pattern, or move it out of the "
        "configs folders (models)"
    )
    for module, args, where in [
        ("patchgen.commands.run_codegen", ["--all"], tmp_path),
        ("patchgen.commands.check_patchgen", ["-q"], tmp_path / "generated"),
        ("patchgen.commands.cli", ["list"], tmp_path / "models"),
    ]:
        result = run_cli(module, *args, cwd=where)
        assert (result.returncode, result.stdout, result.stderr.splitlines()) == (2, "", [expected]), module

    # gone again, the project checks clean
    (tmp_path / name).unlink()
    assert run_cli("patchgen.commands.check_patchgen", "-q", cwd=tmp_path).returncode == 0
