"""Ulysses sequence parallelism in every family whose base config applies it (Qwen3 in depth: test_sequence_parallel.py).

Two or four forked CPU processes over gloo each run forward + backward of the generated CPU file on
their slice of a plain, a packed (position_ids restarting per document) and a padded batch; the
reduced loss and summed gradients must equal stock HF on the whole sequence in one process, in fp32.
Both sides see the labels of `shard_batch` (shifted, ignored across documents and at padding): the shard
carries `labels` and `shift_labels`, and every causal-LM forward (upstream's, kept by Qwen3-MoE and
Gemma 3, and the fused-loss one) computes its loss from `shift_labels` when given `labels`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import transformers
from sequence_parallel_batches import BATCHES, sequence_parallel_rank, take_gradients, training_step
from tiny_families import DENSE, FAMILIES

from patchgen.runtime import sequence_parallel as sp
from tests.families import TABLE, covered_where


SEQUENCE_PARALLEL_FAMILIES = covered_where("sequence_parallel")


def make_config(model: str):
    family = FAMILIES[model]
    kwargs = {**family.config_kwargs, **TABLE[model].harness_config.get("sequence_parallel", {})}
    kwargs.update(use_cache=False, attention_dropout=0.0)
    config = getattr(transformers, family.config_class)(**kwargs)
    # a VLM nests its decoder's config, whose own use_cache would keep stock from masking packed documents
    config.get_text_config().use_cache = False
    config._attn_implementation = "eager"
    return config


def _worker(rank, world_size, model, config, state_dict, out_dir: Path):
    with sequence_parallel_rank(rank, world_size, out_dir):
        module = importlib.import_module(f"generated.{model}.patched_modeling_{model}_cpu")
        patched = getattr(module, FAMILIES[model].causal_lm)(config)
        patched.load_state_dict(state_dict)
        patched.train()
        results = {}
        for kind, make_batch in BATCHES.items():
            loss = training_step(patched, make_batch(DENSE["vocab_size"]))
            for parameter in patched.parameters():
                if parameter.grad is not None:  # a VLM's vision tower gets none from text batches
                    dist.all_reduce(parameter.grad)
            results[kind] = {"loss": sp.reduce_loss(loss), "grads": take_gradients(patched)}
        torch.save(results, out_dir / f"rank{rank}.pt")


@pytest.mark.slow
@pytest.mark.parametrize("world_size", [2, 4])
@pytest.mark.parametrize("model", SEQUENCE_PARALLEL_FAMILIES)
def test_ranks_equal_stock_on_the_full_sequence(model, world_size, tmp_path):
    """Plain, packed and padded batches: the loss and every gradient of stock HF in one process."""
    config = make_config(model)
    torch.manual_seed(0)
    stock = getattr(transformers, FAMILIES[model].causal_lm)(config)
    with torch.no_grad():
        for parameter in stock.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    stock.train()
    reference = {}
    for kind, make_batch in BATCHES.items():
        loss = training_step(stock, make_batch(DENSE["vocab_size"]))
        reference[kind] = {"loss": loss, "grads": take_gradients(stock)}
    mp.start_processes(
        _worker, args=(world_size, model, config, stock.state_dict(), tmp_path), nprocs=world_size, start_method="fork"
    )
    for rank in range(world_size):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        for kind, expected in reference.items():
            torch.testing.assert_close(result[kind]["loss"], expected["loss"], msg=lambda m, k=kind: f"{k}: {m}")
            for name, grad in expected["grads"].items():
                torch.testing.assert_close(
                    result[kind]["grads"][name], grad, msg=lambda m, k=kind, n=name: f"{k}, {n}: {m}"
                )
