"""examples/train_qwen3.py: FSDP2 + sequence parallelism on 2 CPU processes trains like one process.

Plain and packed batches (`--pack`: variable-length documents, position_ids restarting) alike; bad
arguments are one line and exit status 2 on every process, before any heavy work, and a run leaves
no temporary folder behind.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import import_file


REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "examples" / "train_qwen3.py"
STEPS = 3
# plain SGD: unlike Adam, its updates scale with the gradients, so a wrongly scaled reduction shows
OPTIMIZER = ("--optimizer", "sgd", "--lr", "0.5")


def start(command: list[str], *args: str, tmp: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    # TMPDIR: what the run leaves there is checked; torch's own compile cache goes elsewhere (it persists by design)
    base = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp), "TORCHINDUCTOR_CACHE_DIR": str(tmp.parent)}
    return subprocess.Popen(
        [*command, str(SCRIPT), *args],
        cwd=REPO,
        env={**base, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen, returncode: int = 0) -> tuple[str, str]:
    output, errors = process.communicate(timeout=300)
    assert process.returncode == returncode, (output + errors)[-3000:]
    return output, errors


@pytest.mark.slow
@pytest.mark.parametrize("pack", [False, True], ids=["plain", "packed"])
def test_two_processes_with_sequence_parallelism_match_one_process(tmp_path, pack):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    args = ["--steps", str(STEPS), "--seq-len", "32", *OPTIMIZER, *(["--pack"] if pack else [])]
    temp = {name: tmp_path / f"tmp_{name}" for name in ("sp", "single")}
    for folder in temp.values():
        folder.mkdir()
    # both runs at once: most of their time is importing torch and transformers
    parallel = start(torchrun, *args, "--losses-out", str(tmp_path / "sp.json"), tmp=temp["sp"])
    single = start([sys.executable], *args, "--losses-out", str(tmp_path / "single.json"), tmp=temp["single"])
    parallel_output, single_output = finish(parallel)[0], finish(single)[0]

    data = "packed documents" if pack else "one document per sequence"
    assert f"2 processes: data parallel 1 x sequence parallel 2, device cpu, {data}" in parallel_output
    assert f"1 processes: data parallel 1 x sequence parallel 1, device cpu, {data}" in single_output
    assert f"step {STEPS:4d} | loss" in parallel_output and "tokens/s" in parallel_output
    sp_losses = json.loads((tmp_path / "sp.json").read_text())
    single_losses = json.loads((tmp_path / "single.json").read_text())
    assert len(sp_losses) == STEPS
    # step 1 checks the forward; later steps the gradients (FSDP reduction, loss-share scaling) and SGD
    torch.testing.assert_close(torch.tensor(sp_losses), torch.tensor(single_losses), rtol=1e-5, atol=1e-5)
    assert len(set(sp_losses)) == STEPS
    assert not any(temp["single"].iterdir()), list(temp["single"].iterdir())


# -- the packed data ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example():
    return import_file(SCRIPT, "train_qwen3_example")


def test_packed_batches_hold_several_documents_with_restarting_positions(example):
    args = argparse.Namespace(seed=0, batch_size=2, seq_len=32)
    batch = example.packed_synthetic_batch(1, 0, args, 128, "cpu")
    positions = batch["position_ids"]
    assert batch["input_ids"].shape == positions.shape == (2, 32)
    starts = (positions == 0).sum(dim=1)
    assert (starts >= 2).all(), positions  # every row packs at least two documents
    lengths = torch.cat(
        [torch.diff(torch.nonzero(row == 0).flatten(), append=torch.tensor([32])) for row in positions]
    )
    assert (lengths[:-1] >= 4).all() and (lengths <= 16).all(), lengths  # 1/8 to 1/2 of a row (a last one cut)
    again = example.packed_synthetic_batch(1, 0, args, 128, "cpu")
    assert torch.equal(again["input_ids"], batch["input_ids"])  # a function of (seed, step, replica) only


# -- bad arguments ---------------------------------------------------------------------------------


def _args(example, *argv: str) -> argparse.Namespace:
    saved = sys.argv
    sys.argv = ["train_qwen3.py", *argv]
    try:
        return example.parse_args()
    finally:
        sys.argv = saved


@pytest.mark.parametrize(
    ("argv", "world_size", "message"),
    [
        (["--seq-len", "0"], 1, "--seq-len must be at least 1, got 0"),
        (["--batch-size", "0"], 1, "--batch-size must be at least 1, got 0"),
        (["--steps", "-1"], 1, "--steps must be at least 1, got -1"),
        (["--steps", "0"], 1, "--steps must be at least 1, got 0"),
        (["--lr", "0"], 1, "--lr must be positive, got 0.0"),
        (["--sp-size", "-2"], 2, "--sp-size must be 0 (all processes) or positive, got -2"),
        (["--model-path", "{tmp}/absent"], 1, "absent: no config.json there (a local checkpoint folder; the hub"),
        (["--losses-out", "{tmp}/absent/losses.json"], 1, "absent/losses.json: folder {tmp}/absent does not exist"),
        (["--sp-size", "3"], 4, "--sp-size 3 does not divide the number of processes (4)"),
        ([], 3, "sequence-parallel size 3 does not divide the model's num_attention_heads (4)"),
        (["--sp-size", "2"], 6, None),  # data parallel 3 x sequence parallel 2: fine
        (["--seq-len", "30"], 4, "--seq-len 30 is not divisible by the sequence-parallel size 4"),
        (["--model-path", "{tmp}/model"], 2, "size 2 and the model's num_key_value_heads (3) must divide one another"),
    ],
)
def test_bad_arguments_are_named(example, tmp_path, argv, world_size, message):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"num_attention_heads": 6, "num_key_value_heads": 3}))
    args = _args(example, *(arg.format(tmp=tmp_path) for arg in argv))
    error = example.check_args(args, world_size)
    if message is None:
        assert error is None
    else:
        assert message.format(tmp=tmp_path) in error and "\n" not in error


@pytest.mark.slow
def test_bad_arguments_stop_every_process_with_one_line(tmp_path):
    """As torchrun starts them (RANK/WORLD_SIZE set): each rank says why and exits 2, before any rendezvous."""
    processes = []
    for rank in (0, 1):
        folder = tmp_path / f"tmp{rank}"
        folder.mkdir()
        env = {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "3", "MASTER_ADDR": "127.0.0.1"}
        processes.append((start([sys.executable], tmp=folder, env=env), folder))
    for process, folder in processes:
        output, errors = finish(process, returncode=2)
        assert output == ""
        assert (
            errors
            == "train_qwen3.py: error: sequence-parallel size 3 does not divide the model's num_attention_heads (4)\n"
        )
        assert not any(folder.iterdir())
