"""patchgen runs only with a transformers inside the range its distribution requires (issue 19).

The range is read back from the installed metadata, so these tests fake the installed transformers
(a monkeypatched version lookup in process; a fake `transformers-*.dist-info` first on PYTHONPATH
for the console script) and never install another release.
"""

from __future__ import annotations

import os
import subprocess
import tomllib

import pytest
from click.testing import CliRunner
from conftest import REPO
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from patchgen.commands import cli
from patchgen.dsl import supported_range
from patchgen.dsl.errors import PatchgenError


RANGE = ">=5.17.0,<5.26"


def _declared_range() -> SpecifierSet:
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (transformers,) = [Requirement(d) for d in dependencies if Requirement(d).name == "transformers"]
    return transformers.specifier


def test_the_range_is_read_from_the_installed_metadata_and_is_pyprojects():
    assert _declared_range() == SpecifierSet(RANGE)
    assert supported_range.supported_range() == _declared_range()  # else: `make install` is stale
    assert supported_range.describe(_declared_range()) == RANGE


@pytest.mark.parametrize("version", ["5.17.0", "5.18.1", "5.25.0", "5.25.9", "5.20.0rc1"])
def test_releases_inside_the_range_pass(version):
    assert supported_range.unsupported_reason(version, SpecifierSet(RANGE)) is None


@pytest.mark.parametrize("version", ["5.16.2", "5.26.0", "5.26.0rc1", "6.0.0", "4.57.1"])
def test_releases_outside_the_range_are_one_line_naming_version_range_and_remedy(version):
    reason = supported_range.unsupported_reason(version, SpecifierSet(RANGE))
    assert reason == (
        f"transformers {version} is installed, but this patchgen supports transformers{RANGE} only; install a "
        f"release in that range (pip install 'transformers{RANGE}') or a patchgen whose range includes {version} "
        "(PATCHGEN_ALLOW_UNSUPPORTED_TRANSFORMERS=1 runs anyway, for an upgrade trial)"
    )


def test_no_transformers_or_no_metadata():
    assert supported_range.unsupported_reason(None, SpecifierSet(RANGE)) == (
        f"transformers is not installed; this patchgen supports transformers{RANGE}: pip install 'transformers{RANGE}'"
    )
    assert supported_range.unsupported_reason("9.0.0", None) is None  # a bare checkout: nothing to compare


def test_the_override_lets_an_upgrade_trial_run(monkeypatch):
    monkeypatch.setattr(supported_range, "installed_version", lambda: "5.30.0")
    with pytest.raises(PatchgenError, match=r"^transformers 5\.30\.0 is installed"):
        supported_range.require_supported_transformers()
    monkeypatch.setenv(supported_range.ALLOW_UNSUPPORTED, "1")
    supported_range.require_supported_transformers()


@pytest.mark.parametrize(
    "args",
    [["generate", "--all", "--dry-run"], ["check", "-q"], ["list"], ["upgrade-report"], ["new-model", "helium"]],
    ids=lambda args: args[0],
)
def test_every_subcommand_refuses_an_unsupported_transformers_before_any_work(args, monkeypatch):
    monkeypatch.delenv(supported_range.ALLOW_UNSUPPORTED, raising=False)
    monkeypatch.setattr(supported_range, "installed_version", lambda: "5.26.0")
    monkeypatch.chdir(REPO / "generated")
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [
        f"error: transformers 5.26.0 is installed, but this patchgen supports transformers{RANGE} only; install a "
        f"release in that range (pip install 'transformers{RANGE}') or a patchgen whose range includes 5.26.0 "
        "(PATCHGEN_ALLOW_UNSUPPORTED_TRANSFORMERS=1 runs anyway, for an upgrade trial)"
    ]
    assert not (REPO / "models" / "helium").exists()


def test_the_console_script_refuses_a_fake_installed_release(tmp_path):
    # A dist-info first on sys.path is what importlib.metadata reports as installed (the real package
    # still imports: the refusal comes before anything reads upstream).
    fake = tmp_path / "site" / "transformers-5.26.0.dist-info"
    fake.mkdir(parents=True)
    (fake / "METADATA").write_text("Metadata-Version: 2.1\nName: transformers\nVersion: 5.26.0\n")
    env = {k: v for k, v in os.environ.items() if k != supported_range.ALLOW_UNSUPPORTED}
    env["PYTHONPATH"] = str(tmp_path / "site")
    script = REPO / ".venv" / "bin" / "patchgen"
    result = subprocess.run(
        [str(script), "check", "-q"], cwd=REPO / "tests", env=env, capture_output=True, text=True, timeout=300
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"error: transformers 5.26.0 is installed, but this patchgen supports transformers{RANGE} only; install a "
        f"release in that range (pip install 'transformers{RANGE}') or a patchgen whose range includes 5.26.0 "
        "(PATCHGEN_ALLOW_UNSUPPORTED_TRANSFORMERS=1 runs anyway, for an upgrade trial)"
    ]
