"""patchgen used by a repository that is not this one: through its pre-commit hooks and as a wheel.

The downstream project (tests/fixtures/downstream_project) keeps its configs in its own package under
src/ and its generated files in its own folder, named by its own `[tool.patchgen]` template. Nothing
here puts this checkout on PYTHONPATH: the hooks run the project venv's `patchgen` command, the wheel
test a `patchgen` installed from a freshly built wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO


pytestmark = pytest.mark.slow

GENERATED = "src/acme_train/modeling/qwen3/acme.py"
GENERATED_FILES = ["acme.py", "acme.diff", "acme.lock.json"]


def downstream_project(tmp_path: Path) -> Path:
    project = tmp_path / "acme"
    shutil.copytree(FIXTURES / "downstream_project", project)
    return project


def clean_env(bin_dir: Path, **extra: str) -> dict[str, str]:
    """The user's shell: `bin_dir` first on PATH (an activated venv), this checkout nowhere on sys.path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    return {**env, **extra}


def run(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def git(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return ok(run("git", "-c", "user.name=acme", "-c", "user.email=acme@example.invalid", *args, cwd=cwd, env=env))


def test_pre_commit_hooks_pass_on_clean_files_and_catch_a_hand_edit(tmp_path):
    project = downstream_project(tmp_path)
    # pre-commit starts from the project's own venv (here the one running this test), so the `system`
    # hooks run its `patchgen` against its transformers and ruff; the hook cache stays in tmp_path.
    env = clean_env(Path(sys.executable).parent, PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"))
    generated = ok(run("patchgen", "generate", "--all", "--diff", cwd=project, env=env))
    assert generated.stdout.splitlines() == [
        f"wrote {GENERATED}",
        f"wrote {GENERATED.replace('.py', '.diff')}",
        f"wrote {GENERATED.replace('.py', '.lock.json')}",
    ]
    git("init", "-q", cwd=project, env=env)
    git("add", "-A", cwd=project, env=env)
    git("commit", "-q", "-m", "acme: generated Qwen3", cwd=project, env=env)

    def hook(hook_id: str) -> subprocess.CompletedProcess:
        # this checkout is the hook repository, at its HEAD (plus uncommitted changes, as try-repo does)
        return run("pre-commit", "try-repo", REPO, hook_id, "--all-files", cwd=project, env=env)

    clean = hook("patchgen-check")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "patchgen drift check" in clean.stdout and "Passed" in clean.stdout

    module = project / GENERATED
    module.write_text(module.read_text().replace("half = x.shape[-1] // 2", "half = x.shape[-1] // 2  # tuned"))
    edited = hook("patchgen-check")
    assert edited.returncode == 1, edited.stdout + edited.stderr
    assert "Failed" in edited.stdout
    assert f"DRIFT   {GENERATED}: committed file differs from a fresh regeneration" in edited.stdout
    assert "-    half = x.shape[-1] // 2  # tuned\n+    half = x.shape[-1] // 2\n" in edited.stdout

    regenerated = hook("patchgen-generate")
    assert regenerated.returncode == 1  # pre-commit fails a hook that changed files: the user stages them
    assert "files were modified by this hook" in regenerated.stdout
    assert f"wrote {GENERATED}" in regenerated.stdout
    git("diff", "--exit-code", cwd=project, env=env)  # the hand edit is gone: back to the committed file


# Runs in the fresh venv: the generated file imports, takes patchgen.runtime from the wheel, and a tiny
# model built from it computes what stock transformers computes with the same weights.
_USE_GENERATED = """
import json, torch, patchgen.runtime.losses
from transformers import Qwen3Config
from transformers.models.qwen3 import modeling_qwen3 as stock
from acme_train.modeling.qwen3 import acme

config = Qwen3Config(vocab_size=99, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=8)
torch.manual_seed(0)
reference = stock.Qwen3ForCausalLM(config).eval()
patched = acme.Qwen3ForCausalLM(config).eval()
patched.load_state_dict(reference.state_dict())
ids = torch.randint(0, 99, (2, 7), generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    same = torch.equal(patched(ids).logits, reference(ids).logits)  # same kernels, same shapes: bitwise
patched.train(), reference.train()
loss, expected = patched(ids, labels=ids).loss, reference(ids, labels=ids).loss  # the shipped fused-loss set
print(json.dumps({"runtime": patchgen.runtime.losses.__file__, "loss": acme.torch_linear_cross_entropy.__module__,
                  "rotate_half": acme.rotate_half is not stock.rotate_half, "logits_equal": same,
                  "loss_close": bool(torch.allclose(loss, expected, rtol=1e-5, atol=1e-6)),
                  "ulysses": hasattr(patched.model.layers[0].self_attn, "sequence_parallel_layout")}))
"""


def test_wheel_in_a_fresh_venv_generates_and_checks_a_downstream_project(tmp_path):
    # The wheel is built from a copy of what it packages, so the checkout gets no build/ or egg-info.
    # No build isolation: setuptools (the build backend) is in the project venv (torch requires it),
    # and the build then needs no index.
    source = tmp_path / "source"
    source.mkdir()
    for name in ["pyproject.toml", "README.md"]:
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "patchgen", source / "patchgen", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    ok(
        run(
            *pip,
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            wheels,
            source,
            cwd=tmp_path,
            env=os.environ,
        )
    )
    (wheel,) = wheels.glob("patchgen-*.whl")

    # A fresh venv whose only package of its own is the wheel; torch, transformers, ruff and click come
    # from the project venv through a .pth line (a folder on sys.path: its own .pth files, among them
    # the editable install of this checkout, are not run).
    venv = tmp_path / "venv"
    ok(run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path, env=os.environ))
    fresh_python = venv / "bin" / "python"
    purelib = ok(
        run(
            fresh_python,
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            cwd=tmp_path,
            env=os.environ,
        )
    )
    (Path(purelib.stdout.strip()) / "project_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --no-index: pip must find every dependency the wheel declares already satisfied, or fail
    ok(run(*pip, "--python", fresh_python, "install", "--no-index", "-q", wheel, cwd=tmp_path, env=os.environ))

    project = downstream_project(tmp_path)
    env = clean_env(venv / "bin")
    version = ok(run("patchgen", "--version", cwd=project, env=env))
    assert version.stdout.strip() == "patchgen 0.1.0"
    where = ok(run("python", "-c", "import patchgen; print(patchgen.__file__)", cwd=project, env=env))
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout

    # from a folder below the project root, as a user in their package would
    generated = ok(run("patchgen", "generate", "--all", "--diff", cwd=project / "src" / "acme_train", env=env))
    assert f"wrote {GENERATED}" in generated.stdout
    output = project / "src" / "acme_train" / "modeling" / "qwen3"
    assert sorted(p.name for p in output.iterdir()) == sorted([*GENERATED_FILES, "__init__.py"])
    assert (project / "src" / "acme_train" / "modeling" / "__init__.py").exists()
    text = (output / "acme.py").read_text()
    assert "# Config: acme_train.patch_configs.qwen3_acme_patch_gen_config\n" in text
    assert "from patchgen.runtime.losses import torch_linear_cross_entropy\n" in text
    # the shipped sets' code is copied in (never imported): Ulysses SP and the fused-loss forward
    assert "# [patchgen] begin: added by modify_init (patchgen/sets/attention/ulysses_attention.py:" in text
    assert "# Patch source: patchgen/sets/losses/fused_loss.py:" in text
    assert "import patchgen.sets" not in text and "from patchgen.sets" not in text
    assert (
        (output / "acme.diff")
        .read_text()
        .startswith("--- a/transformers/models/qwen3/modeling_qwen3.py\n+++ b/src/acme_train/modeling/qwen3/acme.py\n")
    )

    # the whole check, the import of the generated module in a subprocess included
    checked = ok(run("patchgen", "check", cwd=project, env=env))
    assert checked.stdout.strip() == "check-patchgen: OK (1 config(s), 5 file(s) up to date)"

    used = ok(run("python", "-c", textwrap.dedent(_USE_GENERATED), cwd=project / "src", env=env))
    facts = json.loads(used.stdout.strip().splitlines()[-1])
    assert Path(facts["runtime"]).is_relative_to(venv), facts
    assert facts == {
        **facts,
        "loss": "patchgen.runtime.losses",
        "rotate_half": True,
        "logits_equal": True,
        "loss_close": True,
        "ulysses": True,
    }
