"""The generator writes a file that behaves like the patches applied at run time, or refuses in one line.

Every case of `tests/fixtures/soundness/configs.py` either generates a file whose behaviour the
differential oracle (`tests/oracle.py`) finds equal to the same patches applied at run time, or is
refused with one line holding the fragments the case names, with no memory address or absolute path.
"""

import re

import pytest
from oracle import compare
from soundness.configs import CASES

from patchgen.commands.codegen import generate
from patchgen.load.discovery import LoadedConfig


CONFIG_MODULE = "soundness.configs"
GENERATED = sorted(name for name, case in CASES.items() if not case.refused)
REFUSED = sorted(name for name, case in CASES.items() if case.refused)


def assert_clean_one_line(error: str) -> None:
    assert "\n" not in error, error
    assert not re.search(r"0x[0-9a-f]{6,}", error), error
    assert "/tmp/" not in error and "/work/" not in error and "site-packages" not in error, error


@pytest.mark.parametrize("name", GENERATED)
def test_generated_file_behaves_like_the_patches_applied_at_run_time(name, tmp_path):
    case = CASES[name]
    assert case.scenarios, "a generated case needs scenarios for the oracle"
    text = compare(case.config, CONFIG_MODULE, case.scenarios, tmp_path)
    for fragment in case.output_has:
        assert fragment in text, (fragment, name)


@pytest.mark.parametrize("name", REFUSED)
def test_refused_with_one_line_naming_the_problem(name, tmp_path):
    case = CASES[name]
    (result,) = generate([LoadedConfig(CONFIG_MODULE, case.config)], output_dir=tmp_path)
    assert result.error is not None, f"{name}: generated instead of refusing"
    assert result.outputs == []
    assert_clean_one_line(result.error)
    for fragment in case.refused:
        assert fragment in result.error, (fragment, result.error)
    assert result.error.startswith(CONFIG_MODULE), result.error
