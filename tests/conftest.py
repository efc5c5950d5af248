"""Shared helpers: the toy fixture package on sys.path, generation into temp dirs, module import by path."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))


# The tiny dense decoder every model test builds (hidden 32, 2 layers, GQA 4/2 heads, vocab 99): builds in
# milliseconds; the families add their own keys (MoE experts, windows) on top.
TINY_DENSE = dict(
    vocab_size=99,
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=8,
)


def import_file(path: Path, name: str):
    """Import a generated file under a unique module name (generated files are plain modules)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def run_cli(module: str, *args: str, cwd: Path, extra_path: tuple[Path, ...] = ()) -> subprocess.CompletedProcess:
    """Run `python -m <module> args` the way a user does, in `cwd`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(cwd), *(str(p) for p in extra_path), str(REPO)])
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="session")
def toy_generated(tmp_path_factory):
    """The toy `all_kinds` config generated once: (output text, diff text, imported module)."""
    from patchgen.commands.codegen import generate
    from patchgen.load.discovery import load_config

    out = tmp_path_factory.mktemp("toy_all")
    (result,) = generate([load_config("toypatches.configs", "all_kinds")], output_dir=out)
    assert result.error is None, result.error
    texts = {o.path.suffix: o.text for o in result.outputs}
    path = out / "patched_modeling_toy_all.py"
    path.write_text(texts[".py"])
    return texts[".py"], texts[".diff"], import_file(path, "toy_all_generated")
