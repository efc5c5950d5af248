"""Ulysses sequence parallelism in every family whose base config applies it (all but Qwen3, tested elsewhere).

Two forked CPU processes over gloo each run forward + backward of the generated CPU file on half the
sequence; the reduced loss and summed gradients must equal stock HF on the whole sequence in fp32.
Qwen3-MoE and Gemma 3 keep upstream's causal-LM forward (no fused loss), which computes a loss only
when given `labels`; its loss function takes the pre-shifted `shift_labels` of `shard_batch` over them.
"""

from __future__ import annotations

import importlib
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import transformers
from tiny_families import DENSE, FAMILIES

from patchgen.runtime import sequence_parallel as sp


SEQUENCE_PARALLEL_FAMILIES = ["llama", "mistral", "qwen2", "qwen3_moe", "gemma3"]
# families that keep upstream's causal-LM forward (router loss, logit softcapping): no fused loss
UPSTREAM_LOSS_FAMILIES = {"qwen3_moe", "gemma3"}
BATCH, SEQ_LEN, WORLD_SIZE = 2, 16, 2


def make_config(model: str):
    family = FAMILIES[model]
    kwargs = {**family.config_kwargs, "use_cache": False, "attention_dropout": 0.0}
    if model == "qwen3_moe":
        kwargs["mlp_only_layers"] = []
    config = getattr(transformers, family.config_class)(**kwargs)
    config._attn_implementation = "eager"
    return config


def full_batch() -> dict[str, torch.Tensor]:
    input_ids = torch.randint(0, DENSE["vocab_size"], (BATCH, SEQ_LEN), generator=torch.Generator().manual_seed(0))
    labels = input_ids.clone()
    labels[:, :3] = -100  # uneven label counts per rank
    return {"input_ids": input_ids, "labels": labels}


def _worker(rank, model, config, state_dict, batch, out_dir: Path):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{out_dir / 'store'}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=timedelta(seconds=60),
    )
    try:
        sp.set_sequence_parallel_group(dist.group.WORLD)
        module = importlib.import_module(f"generated.{model}.patched_modeling_{model}_cpu")
        patched = getattr(module, FAMILIES[model].causal_lm)(config)
        patched.load_state_dict(state_dict)
        patched.train()
        shard = sp.shard_batch(batch)
        if model in UPSTREAM_LOSS_FAMILIES:  # upstream forward: a loss only with labels; shift_labels take precedence
            shard["labels"] = shard["shift_labels"]
        loss = patched(**shard).loss
        loss.backward()
        grads = {}
        for name, parameter in patched.named_parameters():
            dist.all_reduce(parameter.grad)
            grads[name] = parameter.grad
        torch.save({"loss": sp.reduce_loss(loss), "grads": grads}, out_dir / f"rank{rank}.pt")
    finally:
        sp.set_sequence_parallel_group(None)
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("model", SEQUENCE_PARALLEL_FAMILIES)
def test_two_ranks_equal_stock_on_the_full_sequence(model, tmp_path):
    config = make_config(model)
    torch.manual_seed(0)
    stock = getattr(transformers, FAMILIES[model].causal_lm)(config)
    with torch.no_grad():
        for parameter in stock.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    stock.train()
    batch = full_batch()
    loss = stock(**batch).loss
    loss.backward()
    mp.start_processes(
        _worker, args=(model, config, stock.state_dict(), batch, tmp_path), nprocs=WORLD_SIZE, start_method="fork"
    )
    for rank in range(WORLD_SIZE):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        torch.testing.assert_close(result["loss"], loss.detach())
        for name, parameter in stock.named_parameters():
            torch.testing.assert_close(result["grads"][name], parameter.grad, msg=lambda m, name=name: f"{name}: {m}")
