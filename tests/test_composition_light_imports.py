"""The light-import path of the CLIs: configs load against stubbed torch/transformers, or the real path runs.

The pytest process has torch imported already, so the light path itself is exercised in fresh
interpreters, as the CLIs run it.
"""

import ast
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO

from patchgen.light_imports import (
    FORCE_REAL_ENV,
    NeedsRealImport,
    StubModule,
    StubObject,
    guard_upstream_module,
    is_stub,
)
from patchgen.patch_source import binding_origin


def test_placeholders_support_definitions_but_refuse_values():
    nn = StubObject("torch.nn")

    class Norm(nn.Module):  # a placeholder base gives a real class
        pass

    assert isinstance(Norm, type) and Norm.__mro__[1].__patchgen_stub__ == "torch.nn.Module"
    assert nn.Module is nn.Module and is_stub(nn.Module)

    def forward(x):
        return x

    assert nn.no_grad()(forward) is forward  # decorators pass what they decorate through
    assert is_stub(nn.Tensor | None) and is_stub(nn.Tensor[0]) and is_stub(nn.functional.silu(1))
    for use in (bool, str, len, iter, int, lambda v: v < 1, lambda v: f"{v}"):
        with pytest.raises(NeedsRealImport, match="torch.nn.float32"):
            use(nn.float32)


def test_a_stubbed_upstream_module_refuses_every_question():
    guard = guard_upstream_module(StubModule("transformers.models.toy.modeling_toy"))
    namespace = vars(guard)  # reading the namespace object is fine, reading from it is not
    with pytest.raises(NeedsRealImport, match="the namespace of transformers.models.toy.modeling_toy"):
        namespace.get("ToyMLP")
    with pytest.raises(NeedsRealImport, match="transformers.models.toy.modeling_toy.ToyMLP"):
        getattr(guard, "ToyMLP", None)
    real = sys.modules[__name__]
    assert guard_upstream_module(real) is real


@pytest.mark.parametrize(
    ("source", "name", "origin"),
    [
        ("import torch", "torch", "torch"),
        ("import torch.nn.functional", "torch", "torch"),
        ("import torch.nn.functional as F", "F", "torch.nn.functional"),
        ("from torch import nn", "nn", "torch.nn"),
        ("from ...modeling_utils import PreTrainedModel as P", "P", "transformers.modeling_utils.PreTrainedModel"),
        ("def rotate_half(x): ...", "rotate_half", "transformers.models.llama.modeling_llama.rotate_half"),
        ("logger = get_logger()", "logger", None),
    ],
)
def test_binding_origin_reads_where_a_name_comes_from(source, name, origin):
    node = ast.parse(source).body[0]
    package = "transformers.models.llama"
    assert binding_origin(node, name, f"{package}.modeling_llama", package) == origin


LIGHT_RUN = """
import json, sys
from pathlib import Path
from patchgen.codegen import generate
from patchgen.discovery import discover_configs, load_config
from patchgen.light_imports import run_light, StubModule

def work():
    loaded = [load_config(spec, "config", Path.cwd()) for spec in discover_configs(Path.cwd())]
    {extra}
    return {{str(o.path): o.text for r in generate(loaded) for o in r.outputs}}

outputs, mode = run_light(work, succeeded=lambda out: True)
torch = sys.modules.get("torch")
print(json.dumps({{"mode": mode, "torch_is_stub": isinstance(torch, StubModule), "outputs": outputs}}))
"""


def light_run(extra: str = "pass") -> dict:
    script = textwrap.dedent(LIGHT_RUN).format(extra=extra)
    env = {k: v for k, v in os.environ.items() if k != FORCE_REAL_ENV}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_light_path_generates_every_committed_file_without_importing_torch():
    run = light_run()
    assert run["mode"] == "light" and run["torch_is_stub"]
    assert len(run["outputs"]) >= 24
    for path, text in run["outputs"].items():
        assert (REPO / path).read_text(encoding="utf-8") == text, path


def test_a_value_needed_on_the_light_path_reruns_everything_for_real():
    run = light_run(extra="import torch; bool(torch.cuda.is_available())")
    assert run["mode"] == "real" and not run["torch_is_stub"]
    for path, text in run["outputs"].items():
        assert (REPO / path).read_text(encoding="utf-8") == text, path


def test_bench_codegen_reports_check_floor_and_ratio():
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_codegen.py", "--repeat", "1", "--skip-reference"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("patchgen benchmark: ") and "configs" in lines[0]
    measured = dict(re.match(r"^  (.+?)\s{2,}([\d.]+) (?:s|x) wall", line).groups() for line in lines[1:])
    assert set(measured) == {
        "check_patchgen -q --no-import",
        "run_codegen --all --diff --dry-run",
        "ruff format alone (the floor)",
        "ratio check / floor",
    }
    check, floor = float(measured["check_patchgen -q --no-import"]), float(measured["ruff format alone (the floor)"])
    assert 0 < floor < check < 30
    assert float(measured["ratio check / floor"]) == pytest.approx(check / floor, rel=0.1)
