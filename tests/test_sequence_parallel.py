"""Ulysses sequence parallelism of the generated Qwen3 files, proved across real processes on CPU.

The CPU file (`generated/qwen3/patched_modeling_qwen3_cpu.py`) runs the same attention forward as
the GPU file (checked below) with pure-torch kernels. Worker processes are forked (no re-import of
transformers) and talk over gloo; each runs forward + backward on its shard of the sequence, and the
parent compares the summed result with stock HF on the full sequence in fp32.
"""

from __future__ import annotations

import inspect
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import TINY_DENSE
from transformers import Qwen3Config
from transformers.models.qwen3 import modeling_qwen3 as stock

import generated.qwen3.patched_modeling_qwen3_cpu as cpu_file
import generated.qwen3.patched_modeling_qwen3_gpu as gpu_file
from patchgen.runtime import sequence_parallel as sp


REPO = Path(__file__).resolve().parent.parent
BATCH, SEQ_LEN, IGNORED_PREFIX = 2, 16, 3


def tiny_config(attn_implementation: str = "eager", **overrides) -> Qwen3Config:
    settings = dict(TINY_DENSE, use_cache=False)
    settings.update(overrides)
    config = Qwen3Config(**settings)
    config._attn_implementation = attn_implementation
    return config


def full_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, 99, (BATCH, SEQ_LEN), generator=generator)
    labels = input_ids.clone()
    labels[:, :IGNORED_PREFIX] = -100  # uneven label counts per rank: each rank's loss must be its *share*
    return {"input_ids": input_ids, "labels": labels}


def stock_reference(config: Qwen3Config, batch: dict[str, torch.Tensor], state_dict=None):
    """Loss and parameter gradients of stock HF on the full sequence, in one process."""
    torch.manual_seed(0)
    model = stock.Qwen3ForCausalLM(config)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    with torch.no_grad():  # norm weights away from 1 so a dropped or misplaced norm shows
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    model.train()
    loss = model(**batch).loss
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
    return model.state_dict(), loss.detach(), grads


# -- workers ----------------------------------------------------------------------------------------


def _worker(rank, world_size, store, config, state_dict, batch, options, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{store}", rank=rank, world_size=world_size, timeout=timedelta(seconds=60)
    )
    try:
        sp.set_sequence_parallel_group(dist.group.WORLD)
        if options.get("identity_all_to_all"):
            sp._all_to_all = lambda x, scatter_dim, gather_dim, group: x  # what "an all-to-all removed" computes
        model = cpu_file.Qwen3ForCausalLM(config)
        model.load_state_dict(state_dict)
        model.train()
        if options.get("gradient_checkpointing"):
            model.gradient_checkpointing_enable()
        shard = sp.shard_batch(batch)
        if options.get("local_positions"):
            shard["position_ids"] = torch.arange(SEQ_LEN // world_size).expand(BATCH, -1)
        loss = model(**shard).loss
        loss.backward()
        grads = {}
        for name, parameter in model.named_parameters():
            dist.all_reduce(parameter.grad)  # each rank holds part of every parameter's gradient
            grads[name] = parameter.grad
        result = {"loss_share": loss.detach(), "loss": sp.reduce_loss(loss), "grads": grads}
        torch.save(result, out_dir / f"rank{rank}.pt")
    finally:
        sp.set_sequence_parallel_group(None)
        dist.destroy_process_group()


def run_workers(tmp_path: Path, world_size: int, fn, *args) -> list[dict]:
    mp.start_processes(
        fn, args=(world_size, tmp_path / "store", *args, tmp_path), nprocs=world_size, start_method="fork"
    )
    return [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(world_size)]


def sequence_parallel_run(tmp_path, world_size, config, **options):
    state_dict, loss, grads = stock_reference(config, full_batch())
    results = run_workers(tmp_path, world_size, _worker, config, state_dict, full_batch(), options)
    return (loss, grads), results


# -- across processes: equal to stock on the full sequence -----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("world_size", "attn_implementation", "num_key_value_heads"),
    [
        (2, "eager", 2),  # key/value heads split across the ranks
        (2, "sdpa", 1),  # one key/value head, replicated to both ranks
        (4, "eager", 2),  # 2 key/value heads replicated to 4 ranks, one query head per rank
    ],
)
def test_sequence_parallel_matches_stock_full_sequence(tmp_path, world_size, attn_implementation, num_key_value_heads):
    config = tiny_config(attn_implementation, num_key_value_heads=num_key_value_heads)
    (loss, grads), results = sequence_parallel_run(tmp_path, world_size, config)
    shares = torch.stack([r["loss_share"] for r in results])
    assert not torch.allclose(shares, shares[0].expand_as(shares))  # every rank computed its own share
    for result in results:
        torch.testing.assert_close(result["loss"], loss)
        assert result["grads"].keys() == grads.keys()
        for name, grad in grads.items():
            torch.testing.assert_close(result["grads"][name], grad, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.slow
def test_sequence_parallel_with_gradient_checkpointing(tmp_path):
    (loss, grads), results = sequence_parallel_run(tmp_path, 2, tiny_config("sdpa"), gradient_checkpointing=True)
    torch.testing.assert_close(results[0]["loss"], loss)
    for name, grad in grads.items():
        torch.testing.assert_close(results[1]["grads"][name], grad)


@pytest.mark.slow
@pytest.mark.parametrize("broken", ["identity_all_to_all", "local_positions"])
def test_broken_sequence_parallelism_is_caught(tmp_path, broken):
    """The comparison above must fail when an all-to-all is missing or rope sees shard-local positions."""
    (loss, grads), results = sequence_parallel_run(tmp_path, 2, tiny_config("eager"), **{broken: True})
    with pytest.raises(AssertionError):
        torch.testing.assert_close(results[0]["loss"], loss)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(
            results[0]["grads"]["model.layers.0.self_attn.q_proj.weight"],
            grads["model.layers.0.self_attn.q_proj.weight"],
        )


# -- bad input: clear errors, raised before any collective (so nothing hangs) -------------------------


def _bad_input_worker(rank, world_size, store, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{store}", rank=rank, world_size=world_size, timeout=timedelta(seconds=60)
    )
    errors = {}

    def record(name, action):
        try:
            action()
        except (ValueError, RuntimeError) as error:
            errors[name] = str(error)

    try:
        sp.set_sequence_parallel_group(dist.group.WORLD)
        record("heads", lambda: cpu_file.Qwen3ForCausalLM(tiny_config(num_attention_heads=3, num_key_value_heads=3)))
        record(
            "kv_heads", lambda: cpu_file.Qwen3ForCausalLM(tiny_config(num_attention_heads=6, num_key_value_heads=3))
        )
        batch = full_batch()
        record("seq_len", lambda: sp.shard_batch({"input_ids": batch["input_ids"][:, :15]}))
        record("twice", lambda: sp.shard_batch(sp.shard_batch(batch)))
        padded = {
            **batch,
            "attention_mask": torch.ones(BATCH, SEQ_LEN, dtype=torch.long).index_fill(1, torch.tensor([0]), 0),
        }
        record("padding", lambda: sp.shard_batch(padded))
        model = cpu_file.Qwen3ForCausalLM(tiny_config())
        shard = sp.shard_batch(batch)
        record("no_positions", lambda: model(input_ids=shard["input_ids"], shift_labels=shard["shift_labels"]))
        record("no_count", lambda: model(**{k: v for k, v in shard.items() if k != "num_items_in_batch"}))
        sp.set_sequence_parallel_group(None)
        record("degree_changed", lambda: model(input_ids=batch["input_ids"]))
        torch.save(errors, out_dir / f"rank{rank}.pt")
    finally:
        sp.set_sequence_parallel_group(None)
        dist.destroy_process_group()


@pytest.mark.slow
def test_bad_input_gives_clear_errors(tmp_path):
    errors = run_workers(tmp_path, 2, _bad_input_worker)[1]
    assert "num_attention_heads (3) is not divisible by the sequence-parallel degree (2)" in errors["heads"]
    assert "num_key_value_heads (3) and the sequence-parallel degree (2)" in errors["kv_heads"]
    assert "sequence length 15 is not divisible by the sequence-parallel degree 2" in errors["seq_len"]
    assert "already sharded for sequence parallelism (rank 1 of 2)" in errors["twice"]
    assert "padded batches" in errors["padding"]
    assert "pass the global position_ids" in errors["no_positions"]
    assert "pass num_items_in_batch" in errors["no_count"]
    assert "built for a sequence-parallel degree of 2 but the current group has 1" in errors["degree_changed"]
    assert all("\n" not in message for message in errors.values())


# -- one process: the same file serves single-GPU training -----------------------------------------


def _pair(attn_implementation="eager"):
    config = tiny_config(attn_implementation)
    torch.manual_seed(0)
    reference = stock.Qwen3ForCausalLM(config).eval()
    generated = cpu_file.Qwen3ForCausalLM(config).eval()
    generated.load_state_dict(reference.state_dict())
    return reference, generated


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_without_a_group_the_forward_is_upstream(attn_implementation):
    reference, generated = _pair(attn_implementation)
    input_ids = full_batch()["input_ids"]
    with torch.no_grad():
        assert torch.equal(generated(input_ids).logits, reference(input_ids).logits)
    layer = generated.model.layers[0].self_attn
    assert layer.num_key_value_groups == reference.model.layers[0].self_attn.num_key_value_groups == 2


def test_gpu_and_cpu_files_share_the_attention_code():
    """The CPU proof covers the GPU file: same attention forward and init, only the kernels differ."""
    for name in ("forward", "__init__"):
        source = inspect.getsource(getattr(gpu_file.Qwen3Attention, name))
        assert source == inspect.getsource(getattr(cpu_file.Qwen3Attention, name))


def test_generated_source_keeps_dispatch_and_marks_the_sequence_parallel_part():
    text = (REPO / "generated/qwen3/patched_modeling_qwen3_gpu.py").read_text()
    forward = inspect.getsource(gpu_file.Qwen3Attention.forward)
    assert "ALL_ATTENTION_FUNCTIONS.get_interface(" in forward
    assert forward.count("# ---- sequence parallelism (Ulysses): begin ----") == 2
    assert forward.count("# ---- sequence parallelism (Ulysses): end ----") == 2
    assert "from patchgen.runtime.sequence_parallel import (" in text
    assert "from models" not in text and "import models" not in text


def test_set_attn_implementation_switches_the_generated_model():
    reference, generated = _pair("sdpa")
    assert type(generated)._can_set_attn_implementation()
    input_ids = full_batch()["input_ids"]
    with torch.no_grad():
        sdpa = generated(input_ids, output_attentions=True)
        assert all(weights is None for weights in sdpa.attentions)  # sdpa returns no attention weights
        generated.set_attn_implementation("eager")
        assert generated.model.layers[1].self_attn.config._attn_implementation == "eager"
        eager = generated(input_ids, output_attentions=True)
        assert eager.attentions[0].shape == (BATCH, 4, SEQ_LEN, SEQ_LEN)
        torch.testing.assert_close(eager.logits, reference(input_ids).logits)


def test_gradient_checkpointing_single_process():
    _, generated = _pair()
    batch = full_batch()
    generated.train()
    expected_loss = generated(**batch).loss
    expected_loss.backward()
    expected = {n: p.grad.clone() for n, p in generated.named_parameters()}
    generated.zero_grad(set_to_none=True)
    generated.gradient_checkpointing_enable()
    assert generated.model.gradient_checkpointing and generated.model.layers[0].gradient_checkpointing
    loss = generated(**batch).loss
    loss.backward()
    torch.testing.assert_close(loss, expected_loss)
    for name, parameter in generated.named_parameters():
        torch.testing.assert_close(parameter.grad, expected[name])


@pytest.mark.parametrize(
    ("heads", "kv_heads", "world_size", "replication", "local_heads", "groups"),
    [(4, 2, 1, 1, 4, 2), (4, 2, 2, 1, 2, 2), (4, 2, 4, 2, 1, 1), (8, 2, 4, 2, 2, 2), (8, 1, 2, 2, 4, 4)],
)
def test_head_layout(heads, kv_heads, world_size, replication, local_heads, groups):
    layout = sp.UlyssesHeadLayout(world_size, heads, kv_heads)
    assert (layout.kv_replication, layout.local_heads, layout.local_key_value_groups) == (
        replication,
        local_heads,
        groups,
    )


def test_shard_batch_without_a_group_shifts_labels_and_counts_them():
    batch = full_batch()
    shard = sp.shard_batch(batch)
    assert torch.equal(shard["input_ids"], batch["input_ids"])
    assert torch.equal(shard["position_ids"], torch.arange(SEQ_LEN).expand(BATCH, -1))
    assert torch.equal(shard["shift_labels"][:, :-1], batch["labels"][:, 1:])
    assert (shard["shift_labels"][:, -1] == -100).all()
    assert shard["num_items_in_batch"] == BATCH * (SEQ_LEN - IGNORED_PREFIX)
