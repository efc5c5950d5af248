"""Every subcommand of the `patchgen` console script works from anywhere in a project (issue 23).

`python -m patchgen.X` from the project root has the root on sys.path; the console script starts
with its own bin folder there instead. Each subcommand must still import the project's own modules
(its shared patch sets, a project-local upstream), from the root and from a folder below it, with
PYTHONPATH unset, as a user in their shell runs it.

The toy project (tests/fixtures/upgrade: a pure-Python upstream package inside the project, patches
under models/) keeps each run to about a second; `new-model` needs a configs folder (the sets ship with patchgen)
and runs once, in a copy of models/.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO
from test_upgrade_report import make_project


SCRIPT = REPO / ".venv" / "bin" / "patchgen"
IMPORT_FAILURES = ("Traceback", "ImportError", "ModuleNotFoundError", "no importable", "not installed")


def patchgen(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The console script as a shell runs it: no PYTHONPATH, started in `cwd`."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def ok(result: subprocess.CompletedProcess) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert not any(failure in output for failure in IMPORT_FAILURES), output
    return result.stdout


def subcommands() -> list[str]:
    """The subcommands `patchgen --help` lists."""
    shown = ok(patchgen("--help", cwd=REPO))
    listing = shown.split("Commands:\n", 1)[1]
    return [match.group(1) for match in re.finditer(r"^  (\S+)", listing, re.MULTILINE)]


def test_the_tests_below_cover_every_subcommand():
    assert sorted(subcommands()) == sorted(["generate", "check", "upgrade-report", "list", "new-model", "survey"])


@pytest.fixture(scope="module")
def toy_project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("anywhere")
    make_project(root)  # toyup_upstream/ (the upstream) and models/toyup/ (config and patches) in the root
    return root


@pytest.mark.parametrize("subcommand", ["generate", "check", "upgrade-report", "list", "new-model", "survey"])
@pytest.mark.parametrize("where", [".", "models/toyup"])
def test_help_of_every_subcommand_from_anywhere(toy_project, subcommand, where):
    assert ok(patchgen(subcommand, "--help", cwd=toy_project / where)).startswith(f"Usage: patchgen {subcommand} ")


def test_generate_check_list_and_upgrade_report_import_the_project_from_the_root_and_below(toy_project):
    # generate from a config folder: the config imports models.toyup.patches and the upstream is
    # toyup_upstream, both only importable with the root on sys.path
    written = ok(patchgen("generate", "--all", "--diff", cwd=toy_project / "models" / "toyup"))
    assert "wrote generated/toyup/patched_modeling_toyup.py" in written.splitlines()
    for where in [toy_project, toy_project / "generated", toy_project / "generated" / "toyup"]:
        assert ok(patchgen("generate", "models.toyup.toyup_patch_gen_config", "--dry-run", cwd=where)) == ""
        listed = ok(patchgen("list", cwd=where))
        assert re.search(r"^models\.toyup\.toyup_patch_gen_config\s.*\scurrent$", listed, re.MULTILINE), listed
        checked = ok(patchgen("check", "-q", cwd=where))
        assert checked.splitlines()[-1] == "check-patchgen: OK (1 config(s), 5 file(s) up to date)"
        # the report reads the project-local upstream module the check just found
        reported = ok(patchgen("upgrade-report", cwd=where))
        assert reported.splitlines()[-1].startswith("upgrade-report: 6 unchanged, 0 new upstream name(s)")


def test_new_model_writes_configs_over_the_shipped_sets_from_a_subfolder(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(REPO / "models", project / "models", ignore=shutil.ignore_patterns("__pycache__"))
    out = ok(patchgen("new-model", "helium", cwd=project / "models" / "qwen3"))
    assert out.splitlines()[:4] == [
        "wrote models/helium/__init__.py",
        "wrote models/helium/helium_base_patch_gen_config.py",
        "wrote models/helium/helium_cpu_patch_gen_config.py",
        "wrote models/helium/helium_gpu_patch_gen_config.py",
    ]
    assert "generates: generated/helium/patched_modeling_helium_cpu.py, generated/helium/" in out
    assert not (project / "generated").exists()  # generated in memory only (no --generate)
