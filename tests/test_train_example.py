"""examples/train_qwen3.py: FSDP2 + sequence parallelism on 2 CPU processes trains like one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch


REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "examples" / "train_qwen3.py"
STEPS = 3
# plain SGD: unlike Adam, its updates scale with the gradients, so a wrongly scaled reduction shows
OPTIMIZER = ("--optimizer", "sgd", "--lr", "0.5")


def start(command: list[str], losses: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [*command, str(SCRIPT), "--steps", str(STEPS), "--seq-len", "32", *OPTIMIZER, "--losses-out", str(losses)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-3000:]
    return output


@pytest.mark.slow
def test_two_processes_with_sequence_parallelism_match_one_process(tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    # both runs at once: most of their time is importing torch and transformers
    parallel = start(torchrun, tmp_path / "sp.json")
    single = start([sys.executable], tmp_path / "single.json")
    parallel_output, single_output = finish(parallel), finish(single)

    assert "2 processes: data parallel 1 x sequence parallel 2, device cpu" in parallel_output
    assert "1 processes: data parallel 1 x sequence parallel 1, device cpu" in single_output
    assert f"step {STEPS:4d} | loss" in parallel_output and "tokens/s" in parallel_output
    sp_losses = json.loads((tmp_path / "sp.json").read_text())
    single_losses = json.loads((tmp_path / "single.json").read_text())
    assert len(sp_losses) == STEPS
    # step 1 checks the forward; later steps the gradients (FSDP reduction, loss-share scaling) and AdamW
    torch.testing.assert_close(torch.tensor(sp_losses), torch.tensor(single_losses), rtol=1e-5, atol=1e-5)
    assert len(set(sp_losses)) == STEPS
