"""Ulysses sequence parallelism of the generated Qwen3 files, proved across real processes on CPU.

The CPU file (`generated/qwen3/patched_modeling_qwen3_cpu.py`) runs the same attention forward as
the GPU file (checked below) with pure-torch kernels. Worker processes are forked (no re-import of
transformers) and talk over gloo; each runs forward + backward on its shard of the sequence, and the
parent compares the summed result with stock HF on the full sequence in fp32.
"""

from __future__ import annotations

import dataclasses
import inspect
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import TINY_DENSE
from sequence_parallel_batches import (
    BATCH,
    BATCHES,
    IGNORED_PREFIX,
    SEQ_LEN,
    packed_batch,
    padded_batch,
    plain_batch,
    take_gradients,
    training_step,
)
from transformers import DataCollatorWithFlattening, Qwen3Config, masking_utils
from transformers.models.qwen3 import modeling_qwen3 as stock

import generated.qwen3.patched_modeling_qwen3_cpu as cpu_file
import generated.qwen3.patched_modeling_qwen3_gpu as gpu_file
from patchgen.runtime import sequence_parallel as sp
from patchgen.runtime.sequence_batch import FullSequence, document_ids, shard_batch
from patchgen.runtime.sequence_mask import gathered_sequence_attention_mask


REPO = Path(__file__).resolve().parent.parent
VOCAB = TINY_DENSE["vocab_size"]


def tiny_config(attn_implementation: str = "eager", **overrides) -> Qwen3Config:
    settings = dict(TINY_DENSE, use_cache=False)
    settings.update(overrides)
    config = Qwen3Config(**settings)
    config._attn_implementation = attn_implementation
    return config


def full_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    return plain_batch(VOCAB, seed)


def one_process_reference(config: Qwen3Config, kinds: list[str]):
    """Stock HF on the whole sequence in one process (no group): its weights, and loss + gradients per batch."""
    torch.manual_seed(0)
    model = stock.Qwen3ForCausalLM(config)
    with torch.no_grad():  # norm weights away from 1 so a dropped or misplaced norm shows
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    model.train()
    results = {}
    for kind in kinds:
        loss = training_step(model, BATCHES[kind](VOCAB))
        results[kind] = {"loss": loss, "grads": take_gradients(model)}
    return model.state_dict(), results


# -- workers ----------------------------------------------------------------------------------------


def _break_shard(shard, broken: str | None, world_size: int):
    """What a sequence-parallel implementation that forgot one part would feed the model."""
    if broken == "local_positions":  # rope at shard-local positions
        shard["position_ids"] = torch.arange(SEQ_LEN // world_size).expand(BATCH, -1)
    elif broken == "no_documents":  # attention across the documents of a packed row
        shard["full_sequence"] = dataclasses.replace(shard["full_sequence"], document_ids=None)
    elif broken == "no_padding":  # attention to padding keys
        shard["full_sequence"] = dataclasses.replace(shard["full_sequence"], attention_mask=None)
    return shard


def _worker(rank, world_size, store, config, state_dict, kinds, options, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{store}", rank=rank, world_size=world_size, timeout=timedelta(seconds=60)
    )
    try:
        sp.set_sequence_parallel_group(dist.group.WORLD)
        if options.get("broken") == "identity_all_to_all":
            sp._all_to_all = lambda x, scatter_dim, gather_dim, group: x  # what "an all-to-all removed" computes
        model = cpu_file.Qwen3ForCausalLM(config)
        model.load_state_dict(state_dict)
        model.train()
        if options.get("gradient_checkpointing"):
            model.gradient_checkpointing_enable()
        results = {}
        for kind in kinds:
            shard = _break_shard(shard_batch(BATCHES[kind](VOCAB)), options.get("broken"), world_size)
            loss = model(**shard).loss
            loss.backward()
            for parameter in model.parameters():
                dist.all_reduce(parameter.grad)  # each rank holds part of every parameter's gradient
            results[kind] = {"loss_share": loss.detach(), "loss": sp.reduce_loss(loss), "grads": take_gradients(model)}
        torch.save(results, out_dir / f"rank{rank}.pt")
    finally:
        sp.set_sequence_parallel_group(None)
        dist.destroy_process_group()


def run_workers(tmp_path: Path, world_size: int, fn, *args) -> list[dict]:
    mp.start_processes(
        fn, args=(world_size, tmp_path / "store", *args, tmp_path), nprocs=world_size, start_method="fork"
    )
    return [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(world_size)]


def sequence_parallel_run(tmp_path, world_size, config, kinds=("plain",), **options):
    state_dict, reference = one_process_reference(config, list(kinds))
    results = run_workers(tmp_path, world_size, _worker, config, state_dict, list(kinds), options)
    return reference, results


def assert_equal_to_reference(reference, results):
    for kind, expected in reference.items():
        for rank, result in enumerate(results):
            got = result[kind]
            torch.testing.assert_close(got["loss"], expected["loss"], msg=lambda m, k=kind: f"{k} loss: {m}")
            assert got["grads"].keys() == expected["grads"].keys()
            for name, grad in expected["grads"].items():
                torch.testing.assert_close(
                    got["grads"][name], grad, msg=lambda m, k=kind, n=name, r=rank: f"{k}, rank {r}, {n}: {m}"
                )


# -- across processes: equal to stock on the full sequence -----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("world_size", "attn_implementation", "num_key_value_heads"),
    [
        (2, "eager", 2),  # key/value heads split across the ranks
        (2, "sdpa", 1),  # one key/value head, replicated to both ranks
        (4, "eager", 2),  # 2 key/value heads replicated to 4 ranks, one query head per rank
        (4, "sdpa", 2),  # sdpa takes boolean masks for packed and padded batches
    ],
)
def test_sequence_parallel_matches_stock_full_sequence(tmp_path, world_size, attn_implementation, num_key_value_heads):
    """Plain, packed (position_ids restarting per document) and padded batches: loss and every gradient."""
    config = tiny_config(attn_implementation, num_key_value_heads=num_key_value_heads)
    reference, results = sequence_parallel_run(tmp_path, world_size, config, kinds=tuple(BATCHES))
    shares = torch.stack([r["plain"]["loss_share"] for r in results])
    assert not torch.allclose(shares, shares[0].expand_as(shares))  # every rank computed its own share
    assert_equal_to_reference(reference, results)


@pytest.mark.slow
def test_sequence_parallel_with_gradient_checkpointing(tmp_path):
    reference, results = sequence_parallel_run(
        tmp_path, 2, tiny_config("sdpa"), kinds=("packed",), gradient_checkpointing=True
    )
    assert_equal_to_reference(reference, results)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("broken", "kind"),
    [
        ("identity_all_to_all", "plain"),
        ("local_positions", "plain"),
        ("no_documents", "packed"),
        ("no_padding", "padded"),
    ],
)
def test_broken_sequence_parallelism_is_caught(tmp_path, broken, kind):
    """The comparison above must fail when an all-to-all is missing, rope sees shard-local positions, or the
    mask after the all-to-all ignores the packed documents or the padding of the whole sequence."""
    reference, results = sequence_parallel_run(tmp_path, 2, tiny_config("eager"), kinds=(kind,), broken=broken)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(results[0][kind]["loss"], reference[kind]["loss"])
    with pytest.raises(AssertionError):
        torch.testing.assert_close(
            results[0][kind]["grads"]["model.layers.0.self_attn.q_proj.weight"],
            reference[kind]["grads"]["model.layers.0.self_attn.q_proj.weight"],
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
        record("seq_len", lambda: shard_batch({"input_ids": batch["input_ids"][:, :15]}))
        record("twice", lambda: shard_batch(shard_batch(batch)))
        packed_and_padded = {**packed_batch(VOCAB), "attention_mask": padded_batch(VOCAB)["attention_mask"]}
        record("packed_and_padded", lambda: shard_batch(packed_and_padded))
        model = cpu_file.Qwen3ForCausalLM(tiny_config())
        shard = shard_batch(batch)
        record("no_positions", lambda: model(input_ids=shard["input_ids"], shift_labels=shard["shift_labels"]))
        record("no_count", lambda: model(**{k: v for k, v in shard.items() if k != "num_items_in_batch"}))
        record("no_full_sequence", lambda: model(**{k: v for k, v in shard.items() if k != "full_sequence"}))
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
    assert "both padding (attention_mask with zeros) and packed documents" in errors["packed_and_padded"]
    assert "pass the global position_ids" in errors["no_positions"]
    assert "pass num_items_in_batch" in errors["no_count"]
    assert "pass the shard that patchgen.runtime.shard_batch returns" in errors["no_full_sequence"]
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
    shard = shard_batch(batch)
    assert torch.equal(shard["input_ids"], batch["input_ids"])
    assert torch.equal(shard["position_ids"], torch.arange(SEQ_LEN).expand(BATCH, -1))
    assert torch.equal(shard["shift_labels"][:, :-1], batch["labels"][:, 1:])
    assert (shard["shift_labels"][:, -1] == -100).all()
    assert shard["num_items_in_batch"] == BATCH * (SEQ_LEN - IGNORED_PREFIX)
    assert "full_sequence" not in shard and "attention_mask" not in shard


def test_shard_batch_ignores_labels_across_documents_and_padding():
    labels = torch.tensor([[5, 6, 7, 8, 9, 10]])
    packed = shard_batch({"input_ids": labels, "labels": labels, "position_ids": torch.tensor([[0, 1, 2, 0, 1, 0]])})
    assert packed["shift_labels"].tolist() == [[6, 7, -100, 9, -100, -100]]
    assert packed["num_items_in_batch"] == 3
    mask = torch.tensor([[0, 1, 1, 1, 1, 0]])
    padded = shard_batch({"input_ids": labels, "labels": labels, "attention_mask": mask})
    assert padded["shift_labels"].tolist() == [[-100, 7, 8, 9, -100, -100]]
    assert torch.equal(padded["attention_mask"], mask)
    ones = shard_batch({"input_ids": labels, "attention_mask": torch.ones_like(labels)})
    assert "attention_mask" not in ones  # no padding: as if absent, so position_ids decide the documents


def test_packed_labels_are_those_of_transformers_flattening_collator():
    """shard_batch keeps documents apart in the loss exactly as DataCollatorWithFlattening labels them."""
    documents = [{"input_ids": list(range(10, 10 + n))} for n in (3, 5, 2)]
    flat = DataCollatorWithFlattening(return_position_ids=True)(documents, return_tensors="pt")
    shard = shard_batch(
        {"input_ids": flat["input_ids"], "labels": flat["input_ids"], "position_ids": flat["position_ids"]}
    )
    expected = torch.nn.functional.pad(flat["labels"], (0, 1), value=-100)[:, 1:]
    assert torch.equal(shard["shift_labels"], expected)


@pytest.mark.parametrize("kind", ["plain", "packed", "padded"])
@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("sliding_window", [None, 5])
def test_gathered_mask_is_the_mask_transformers_builds_for_the_whole_sequence(
    kind, attn_implementation, sliding_window
):
    """After the all-to-all, every rank masks the gathered sequence as one process masks the whole batch."""
    config = tiny_config(attn_implementation)
    config.sliding_window = sliding_window
    batch = BATCHES[kind](VOCAB)
    full = FullSequence(
        batch.get("position_ids", torch.arange(SEQ_LEN).expand(BATCH, -1)),
        document_ids(batch["position_ids"]) if "position_ids" in batch else None,
        batch.get("attention_mask"),
    )
    embeds = torch.zeros(BATCH, SEQ_LEN, 8)
    mask_args = dict(
        config=config,
        inputs_embeds=embeds,
        attention_mask=batch.get("attention_mask"),
        past_key_values=None,
        position_ids=full.position_ids,
    )
    if sliding_window is None:
        expected = masking_utils.create_causal_mask(**mask_args)
    else:
        expected = masking_utils.create_sliding_window_causal_mask(**mask_args)
    query = torch.zeros(BATCH, 2, SEQ_LEN, 8)
    mask = gathered_sequence_attention_mask(attn_implementation, query, full, sliding_window)
    if expected is None:
        assert mask is None
    else:
        assert torch.equal(mask.expand_as(expected), expected)
