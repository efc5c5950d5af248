"""The check's cache (`patchgen.verify.cache`): reused only while every input it recorded is unchanged.

A stale answer must be impossible to observe: each test edits one kind of input (a patch source, a
helper module a patch imports, the upstream file, a module a generated file imports) after a cached
run and shows that the next run sees the edit.
"""

import re
import shutil
import subprocess
import sys
import textwrap

import pytest
from conftest import FIXTURES, REPO, run_cli

from patchgen.commands.check_patchgen import _findings_from_json
from patchgen.commands.config_runs import ConfigRun
from patchgen.verify.cache import CACHE_DIR, Cache
from patchgen.verify.import_check import ImportCheck


CONFIG = """
import sys

from patchgen import PatchConfig
from models.toy.patches import toy_patches as patches

print("config imported", file=sys.stderr)  # tells the test whether the config ran or came from the cache

config = PatchConfig(source_module="toyupstream.models.toy.modeling_toy", target_file="patched_modeling_toy_gpu.py")
config.replace_function("scale", description="project patch")(patches.scale_twice)
"""

PATCHES = """
from models.toy.patches.toy_helpers import helper_factor


def scale_twice(x, factor=2.0):
    return x * factor * helper_factor()
"""

HELPERS = "def helper_factor():  # copied into the generated file with the patch\n    return 2\n"


@pytest.fixture
def project(tmp_path):
    """A toy project, and its own copy of the toy upstream package (outside the project, on the path)."""
    root = tmp_path / "project"
    for package in ["models", "models/toy", "models/toy/patches"]:
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
    (root / "models/toy/toy_gpu_patch_gen_config.py").write_text(textwrap.dedent(CONFIG))
    (root / "models/toy/patches/toy_patches.py").write_text(textwrap.dedent(PATCHES))
    (root / "models/toy/patches/toy_helpers.py").write_text(HELPERS)
    shutil.copytree(FIXTURES / "toyupstream", tmp_path / "upstream" / "toyupstream")
    return root


def cli(module, *args, root):
    return run_cli(module, *args, cwd=root, extra_path=(root.parent / "upstream",))


def check(root):
    """`check_patchgen -q --no-import`: (exit status, stdout, whether the config was imported)."""
    result = cli("patchgen.commands.check_patchgen", "--no-import", root=root)
    return result.returncode, result.stdout, "config imported" in result.stderr


def test_a_cached_check_sees_every_edit_of_what_the_config_read(project):
    """One project, one edit after another; each check after an edit must import the config again."""
    assert cli("patchgen.commands.run_codegen", "--all", "--diff", root=project).returncode == 0
    assert check(project)[::2] == (0, True)  # imported, and recorded in the cache
    assert check(project)[::2] == (0, False)  # answered from the cache: the config was not imported
    assert list((project / CACHE_DIR / "config").glob("*.json"))

    patch = project / "models/toy/patches/toy_patches.py"
    patch.write_text(patch.read_text().replace("x * factor * helper_factor()", "x * factor * helper_factor() + 1"))
    status, out, imported = check(project)
    assert (status, imported) == (1, True)
    assert "+    return x * factor * helper_factor() + 1" in out

    helper = project / "models/toy/patches/toy_helpers.py"
    helper.write_text(HELPERS.replace("return 2", "return 3"))
    status, out, imported = check(project)
    assert (status, imported) == (1, True)
    assert "+    return 3" in out  # not the answer recorded after the patch edit

    upstream = project.parent / "upstream/toyupstream/models/toy/modeling_toy.py"
    upstream.write_text(upstream.read_text().replace("# A comment attached to the norm class", "# Edited upstream"))
    status, out, imported = check(project)
    assert (status, imported) == (1, True)
    assert "+# Edited upstream: it goes with the class" in out

    # A package beside the helper module: `models.toy.patches.toy_helpers` now resolves to it, although
    # no file the config read before has changed.
    shadow = project / "models/toy/patches/toy_helpers"
    shadow.mkdir()
    (shadow / "__init__.py").write_text(HELPERS.replace("return 2", "return 4"))
    status, out, imported = check(project)
    assert (status, imported) == (1, True)
    assert "+    return 4" in out


def test_a_cached_import_check_sees_an_edit_of_a_module_the_generated_file_imports(tmp_path):
    (tmp_path / "generated").mkdir()
    (tmp_path / "generated/patched_modeling_x.py").write_text("from runtime_helpers import VALUE\n")
    helper = tmp_path / "runtime_helpers.py"
    helper.write_text("VALUE = 1\n")
    files = [tmp_path / "generated/patched_modeling_x.py"]

    first = ImportCheck(files, tmp_path, {"models"}, Cache(tmp_path))
    assert first.process is not None and first.failures() == []
    again = ImportCheck(files, tmp_path, {"models"}, Cache(tmp_path))
    assert again.process is None and again.failures() == []  # the cache answered

    helper.write_text("raise RuntimeError('helper broke')\n")
    broken = ImportCheck(files, tmp_path, {"models"}, Cache(tmp_path))
    assert broken.process is not None
    (failure,) = broken.failures()
    assert "RuntimeError: helper broke" in failure.reason


def test_bench_codegen_reports_the_warm_check_against_its_floor():
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_codegen.py", "--repeat", "1", "--warm-only"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.match(r"patchgen benchmark: \d+ configs, \d+ generated files, \d+ CPU cores$", lines[0])
    measured = dict(re.match(r"^  (.+?)\s{2,}([\d.]+) (?:s|x) wall", line).groups() for line in lines[1:])
    assert set(measured) == {"check, warm cache", "ruff format alone (the floor)", "ratio warm check / floor"}
    warm, floor = float(measured["check, warm cache"]), float(measured["ruff format alone (the floor)"])
    assert float(measured["ratio warm check / floor"]) == pytest.approx(warm / floor, rel=0.1)


# -- inputs read without being imported (issue 21) ------------------------------------------------


def _cached_ok(root):
    """Generate, then check twice: OK both times, the second answered by the cache."""
    assert cli("patchgen.commands.run_codegen", "--all", "--diff", root=root).returncode == 0
    assert check(root)[::2] == (0, True)
    assert check(root)[::2] == (0, False)


def test_a_changed_tool_patchgen_table_is_seen_by_a_cached_check(project):
    """The output path comes from pyproject.toml, which is read, not imported."""
    _cached_ok(project)  # no pyproject.toml yet: the project is found by its models/ package
    (project / "pyproject.toml").write_text('[tool.patchgen]\noutput-path = "{model}/{variant}.py"\n')
    status, out, imported = check(project)
    assert (status, imported) == (1, True)
    assert "MISSING generated/toy/gpu.py" in out
    assert "ORPHAN  generated/toy/patched_modeling_toy_gpu.py" in out

    assert cli("patchgen.commands.check_patchgen", "--no-import", "--fix", root=project).returncode == 0
    assert check(project)[::2] == (0, True)
    (project / "pyproject.toml").write_text('[tool.patchgen]\noutput-path = "{model}/{target_file}"\n')
    status, out, _ = check(project)
    assert status == 1 and "MISSING generated/toy/patched_modeling_toy_gpu.py" in out


def test_an_add_import_module_the_config_never_imports_is_an_input(project):
    """`add_import` checks its name in the module's source (read, not imported): removing the name is seen."""
    extras = project.parent / "upstream/toyextras.py"  # beside the upstream package, on the path
    extras.write_text("EXTRA = 1\nOTHER = 2\n")
    config = project / "models/toy/toy_gpu_patch_gen_config.py"
    config.write_text(config.read_text() + 'config.add_import("toyextras", names=["EXTRA"])\n')
    _cached_ok(project)
    extras.write_text("OTHER = 2\n")
    status, out, imported = check(project)
    assert (status, imported) == (1, True)
    assert "ERROR" in out and "EXTRA" in out


def test_a_data_file_a_patch_module_reads_while_importing_is_an_input(project):
    """A patch module that opens a data file at import, and looks for another: editing the first, or
    creating the second, is seen."""
    data = project / "models/toy/patches/factor.txt"
    data.write_text("2\n")
    (project / "models/toy/patches/toy_patches.py").write_text(
        textwrap.dedent(
            """
            import os
            from pathlib import Path

            HERE = Path(__file__).parent
            FACTOR = (HERE / "factor.txt").read_text().strip()
            if os.path.exists(HERE / "override.txt"):
                FACTOR = "4"


            def scale_by_two(x, factor=2.0):
                return x * factor * 2


            def scale_by_three(x, factor=2.0):
                return x * factor * 3


            def scale_by_four(x, factor=2.0):
                return x * factor * 4


            scale_twice = {"2": scale_by_two, "3": scale_by_three, "4": scale_by_four}[FACTOR]
            """
        )
    )
    _cached_ok(project)
    data.write_text("3\n")
    status, out, imported = check(project)
    assert (status, imported) == (1, True)
    assert "+    return x * factor * 3" in out

    data.write_text("2\n")
    assert check(project)[::2] == (0, True)
    assert check(project)[::2] == (0, False)
    (project / "models/toy/patches/override.txt").write_text("")  # absent before: recorded as absent
    status, out, imported = check(project)
    assert (status, imported) == (1, True)
    assert "+    return x * factor * 4" in out


# Entries a cache file can hold that are not what a check stored: each must load as a miss.
WRONG_SHAPES = {
    "not-json": "not json {",
    "a-list": "[]",
    "a-string": '"text"',
    "files-a-list": '{"inputs": {"files": [], "lookups": []}, "result": 1}',
    "short-lookup": '{"inputs": {"files": {}, "lookups": [["a"]]}, "result": 1}',
    "no-result": '{"inputs": {"files": {}, "lookups": []}}',
    "result-a-number": '{"inputs": {"files": {}, "lookups": []}, "result": 1}',
    "bad-summary": '{"inputs": {"files": {}, "lookups": []}, "result": {"summary": {"module_name": 3}, "outputs": [1]}}',
    "bad-finding": '{"inputs": {"files": {}, "lookups": []}, "result": [["drift"]]}',
}


@pytest.mark.parametrize("kind", ["config", "upgrade"])
@pytest.mark.parametrize("entry", WRONG_SHAPES.values(), ids=WRONG_SHAPES.keys())
def test_a_stored_entry_of_the_wrong_shape_loads_as_a_miss(tmp_path, kind, entry):
    """In process, with the parsers the check uses: every shape above is a miss (None), never an exception."""
    parse = {"config": ConfigRun.from_json, "upgrade": _findings_from_json}[kind]
    cache = Cache(tmp_path)
    path = cache._path(kind, ["a key"])
    path.parent.mkdir(parents=True)
    path.write_text(entry)
    assert cache.load(kind, ["a key"], parse) is None


def test_an_entry_of_the_wrong_shape_is_a_miss_not_a_traceback(project):
    """End to end, one shape in every entry (the in-process test above covers each shape)."""
    entry = WRONG_SHAPES["bad-summary"]
    _cached_ok(project)
    entries = list((project / CACHE_DIR).rglob("*.json"))
    assert {e.parent.name for e in entries} >= {"config", "upgrade"}
    for path in entries:
        path.write_text(entry)
    status, out, imported = check(project)
    assert (status, imported) == (0, True), out
    assert "Traceback" not in out
    assert check(project)[::2] == (0, False)  # the entries were rewritten
