"""The built wheel requires a transformers range, not this repository's pin (issue 19).

Installed into a project on another transformers release, a wheel requiring `transformers==X` would
make pip move that project to X. The pin of this repository's own generated files lives in
constraints.txt, which only `make install` applies.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser

from conftest import REPO
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet


def test_wheel_metadata_requires_a_transformers_range_and_the_exact_ruff(tmp_path):
    # Built from a copy of what it packages (the checkout gets no build/ or egg-info) and without build
    # isolation: setuptools is in the project venv, so the build needs no index.
    source = tmp_path / "source"
    source.mkdir()
    for name in ["pyproject.toml", "README.md"]:
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "patchgen", source / "patchgen", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "--no-deps", "--no-build-isolation"]
        + ["-q", "-w", str(wheels), str(source)],
        cwd=tmp_path,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = wheels.glob("patchgen-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (metadata_name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    requires = {Requirement(text).name: Requirement(text) for text in metadata.get_all("Requires-Dist")}

    transformers = requires["transformers"].specifier
    assert transformers == SpecifierSet(">=5.17.0,<5.26")
    assert all(spec.operator in (">=", "<") for spec in transformers)  # a range: no ==, no ~=
    assert "5.17.0" in transformers and "5.25.0" in transformers and "5.26.0" not in transformers
    assert str(requires["ruff"].specifier) == "==0.17.6"  # generated formatting depends on it

    # the repository's own pin is a constraint, outside the distribution, and a release inside the range
    lines = (REPO / "constraints.txt").read_text().splitlines()
    (pin,) = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    ((operator, version),) = [(spec.operator, spec.version) for spec in pin.specifier]
    assert (pin.name, operator) == ("transformers", "==")
    assert version in transformers
