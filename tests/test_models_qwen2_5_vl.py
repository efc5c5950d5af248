"""Qwen2.5-VL with images: the generated files against stock HF, in one process and under Ulysses SP.

The family, behaviour and equivalence tables run the files on text tokens; here every input carries
images (tests/multimodal_batches.py: 2 rows of 16 tokens, one 4x8-patch image each, 8 placeholder
tokens after merging), so the vision tower, the merge into the embeddings and the 3-D rope positions
all run. The `_cpu` file computes stock's fp32 operations with pure-torch twins in the same order: on
CPU its logits, loss and gradients came out bitwise equal, compared here within torch.testing's fp32
defaults (another CPU may pick other kernels). The `_gpu` rows run on CUDA (marked `gpu`).

Under sequence parallelism, 2 forked gloo processes each get the whole sequence
(`shard_multimodal_batch`), merge the images, compute the positions and keep their half; the reduced
loss and the summed gradients (the vision tower's included) must equal stock on the whole batch in one
process, for a plain, a left/right-padded and a packed batch (both sides with the labels of the shards:
none across documents or at padding). Giving each rank positions that restart at
its own first token instead changes the loss (so the test sees wrong position handling).
"""

from __future__ import annotations

import importlib
import inspect
import tempfile
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import transformers
from multimodal_batches import IMAGE_TOKEN_ID, QWEN2_5_VL, image_batch, image_tokens
from sequence_parallel_batches import sequence_parallel_rank, take_gradients
from tiny_families import generated_module
from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl

from patchgen.runtime import sequence_parallel as sp


CLASS = "Qwen2_5_VLForConditionalGeneration"
ON_GPU = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="the Liger kernels of the _gpu file need a CUDA GPU"),
]
VARIANTS = [pytest.param("cpu", id="cpu"), pytest.param("gpu", marks=ON_GPU, id="gpu")]


def tolerance(variant: str) -> dict[str, float]:
    """fp32 defaults for the torch twins; Liger's kernels reduce in another order on a GPU (1e-4, as the families)."""
    return {} if variant == "cpu" else dict(rtol=1e-4, atol=1e-4)


def make_config(**overrides) -> transformers.Qwen2_5_VLConfig:
    return transformers.Qwen2_5_VLConfig(**QWEN2_5_VL, **overrides)


def stock_model(config) -> transformers.Qwen2_5_VLForConditionalGeneration:
    """Stock with random weights, every parameter moved off HF's init (norm weights stop being 1)."""
    torch.manual_seed(0)
    stock = transformers.Qwen2_5_VLForConditionalGeneration(config)
    with torch.no_grad():
        for parameter in stock.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return stock


def stock_and_generated(variant: str, **overrides):
    config = make_config(**overrides)
    stock = stock_model(config)
    generated = getattr(generated_module("qwen2_5_vl", variant), CLASS)(make_config(**overrides))
    result = generated.load_state_dict(stock.state_dict())
    assert not result.missing_keys and not result.unexpected_keys, result
    device = "cuda" if variant == "gpu" else "cpu"
    return stock.to(device).eval(), generated.to(device).eval()


def on(batch: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
    return {key: value.to(device) for key, value in batch.items()}


def padded(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Row 0 left-padded by 2 tokens, row 1 right-padded by 2 (images at (2, 4) end by token 13)."""
    attention_mask = torch.ones_like(batch["input_ids"])
    attention_mask[0, :2] = 0
    attention_mask[1, -2:] = 0
    return {
        **batch,
        "input_ids": batch["input_ids"].masked_fill(attention_mask == 0, 0),
        "attention_mask": attention_mask,
    }


def labels_of(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The next-token labels a VLM trains on: not at image placeholders, not at padding."""
    labels = batch["input_ids"].masked_fill(batch["input_ids"] == IMAGE_TOKEN_ID, -100)
    if "attention_mask" in batch:
        labels = labels.masked_fill(batch["attention_mask"] == 0, -100)
    return labels


# -- one process ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_logits_loss_and_every_gradient_with_images_equal_stock(variant):
    stock, generated = stock_and_generated(variant)
    batch = on(image_batch(), stock.device)
    expected, actual = stock(**batch), generated(**batch)
    torch.testing.assert_close(actual.logits, expected.logits, **tolerance(variant))
    # upstream's output class and fields kept (5.25: the vision encoders' outputs, no rope_deltas)
    assert actual.keys() == expected.keys()
    torch.testing.assert_close(
        actual.image_outputs.last_hidden_state, expected.image_outputs.last_hidden_state, **tolerance(variant)
    )
    assert type(actual).__name__ == "MultimodalCausalLMOutputWithPast"
    for model in (stock, generated):
        model.train()
    expected_loss = stock(**batch, labels=labels_of(batch)).loss
    loss = generated(**batch, labels=labels_of(batch)).loss
    torch.testing.assert_close(loss, expected_loss, **tolerance(variant))
    expected_loss.backward()
    loss.backward()
    stock_parameters = dict(stock.named_parameters())
    for name, parameter in generated.named_parameters():
        assert parameter.grad is not None, name  # the vision tower and the merger learn from the images too
        torch.testing.assert_close(parameter.grad, stock_parameters[name].grad, **tolerance(variant), msg=name)


@pytest.mark.parametrize("variant", VARIANTS)
def test_eager_and_sdpa_on_a_padded_batch_with_images_equal_stock(variant):
    stock, generated = stock_and_generated(variant)
    batch = on(padded(image_batch(image_at=(2, 4))), stock.device)
    keep = batch["attention_mask"].bool()
    for implementation in ("eager", "sdpa"):
        for model in (stock, generated):
            model.set_attn_implementation(implementation)
        assert generated.config.vision_config._attn_implementation == implementation
        expected, actual = stock(**batch), generated(**batch)
        torch.testing.assert_close(actual.logits[keep], expected.logits[keep], **tolerance(variant))
        expected_loss = stock(**batch, labels=labels_of(batch)).loss
        torch.testing.assert_close(
            generated(**batch, labels=labels_of(batch)).loss, expected_loss, **tolerance(variant)
        )


@pytest.mark.parametrize("variant", VARIANTS)
def test_greedy_generation_with_an_image_equals_stock(variant):
    stock, generated = stock_and_generated(variant)
    batch = on(image_batch(), stock.device)
    outputs = [
        model.generate(**batch, attention_mask=torch.ones_like(batch["input_ids"]), max_new_tokens=5, do_sample=False)
        for model in (stock, generated)
    ]
    assert torch.equal(outputs[1], outputs[0])


def test_checkpoints_load_both_ways_in_the_released_layout():
    """Stock saves the released layout (`model.layers.*`, `visual.*`); the generated classes get the same renaming."""
    stock, generated = stock_and_generated("cpu")
    batch = image_batch()
    expected = stock(**batch).logits
    for saved, load_class in (
        (stock, getattr(generated_module("qwen2_5_vl", "cpu"), CLASS)),
        (generated, type(stock)),
    ):
        with tempfile.TemporaryDirectory() as directory:
            saved.save_pretrained(directory)
            loaded, info = load_class.from_pretrained(directory, output_loading_info=True)
        assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
        torch.testing.assert_close(loaded.eval()(**batch).logits, expected, rtol=0, atol=0)


def test_vision_mlp_keeps_its_biases_and_binds_the_kernel():
    """The vision MLP keeps upstream's biased projections; the GPU file calls Liger's silu*up kernel there."""
    from liger_kernel.transformers.functional import liger_swiglu

    for variant in ("cpu", "gpu"):
        module = generated_module("qwen2_5_vl", variant)
        mlp = module.Qwen2_5_VLMLP(make_config().vision_config, bias=True)
        assert all(getattr(mlp, name).bias is not None for name in ("gate_proj", "up_proj", "down_proj"))
    assert generated_module("qwen2_5_vl", "gpu").liger_swiglu is liger_swiglu
    assert not hasattr(generated_module("qwen2_5_vl", "cpu"), "liger_swiglu")


# -- sequence parallelism ------------------------------------------------------------------------------------


def packed(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each row two documents (10 + 6 tokens; the image in the first), upstream's packed positions: the text
    positions restarting per document, then the 3 rope rows of each document computed on its own."""
    config = make_config()
    model = transformers.Qwen2_5_VLModel(config)
    rows = []
    for row in range(batch["input_ids"].shape[0]):
        documents = []
        for start, end in ((0, 10), (10, 16)):
            ids = batch["input_ids"][row : row + 1, start:end]
            types = batch["mm_token_type_ids"][row : row + 1, start:end]
            grids = batch["image_grid_thw"][row : row + 1] if bool((types == 1).any()) else None
            if grids is None:
                rope = torch.arange(end - start).view(1, 1, -1).expand(3, 1, -1)
            else:
                rope, _ = model.get_rope_index(ids, types, image_grid_thw=grids)
            text = torch.arange(end - start).view(1, 1, -1)
            documents.append(torch.cat([text, rope], dim=0))
        rows.append(torch.cat(documents, dim=-1))
    return {**batch, "position_ids": torch.cat(rows, dim=1)}


SP_BATCHES = {
    "plain": lambda: image_batch(),
    "padded": lambda: padded(image_batch(image_at=(2, 4))),
    "packed": lambda: packed(image_batch(image_at=(0, 1))),  # the image inside the first document
}


def _with_labels(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {**batch, "labels": labels_of(batch)}


def _sp_worker(rank, world_size, config, state_dict, out_dir: Path):
    with sequence_parallel_rank(rank, world_size, out_dir):
        module = generated_module("qwen2_5_vl", "cpu")
        model = getattr(module, CLASS)(config)
        model.load_state_dict(state_dict)
        model.train()
        results = {}
        for kind, make_batch in SP_BATCHES.items():
            shard = module.shard_multimodal_batch(_with_labels(make_batch()))
            loss = model(**shard).loss
            loss.backward()
            for parameter in model.parameters():
                dist.all_reduce(parameter.grad)
            results[kind] = {"loss": sp.reduce_loss(loss), "grads": take_gradients(model)}
        # the control: positions restarting at each rank's first token (what sharding before the model would give)
        text_model = model.model.language_model
        upstream_forward = text_model.upstream_forward

        def shard_local_positions(**kwargs):
            kwargs["position_ids"] = kwargs["position_ids"] - kwargs["position_ids"][..., :1]
            return upstream_forward(**kwargs)

        text_model.upstream_forward = shard_local_positions
        with torch.no_grad():
            results["control"] = sp.reduce_loss(
                model(**module.shard_multimodal_batch(_with_labels(image_batch()))).loss
            )
        del text_model.upstream_forward
        # a sequence that is neither whole nor one rank's share is refused in one line
        shard = module.shard_multimodal_batch(_with_labels(image_batch()))
        shard["input_ids"] = shard["input_ids"][:, :-2]
        shard["mm_token_type_ids"] = shard["mm_token_type_ids"][:, :-2]
        try:
            model(**shard)
        except ValueError as error:
            results["odd_length"] = str(error)
        torch.save(results, out_dir / f"rank{rank}.pt")


@pytest.mark.slow
def test_two_ranks_with_images_equal_stock_on_the_whole_sequence(tmp_path):
    config = make_config()
    # the decoder's own switch: with a cache (its default, even in training) stock builds no packed-document mask
    config.text_config.use_cache = False
    config._attn_implementation = "eager"
    stock = stock_model(config).train()
    reference = {}
    module = generated_module("qwen2_5_vl", "cpu")
    for kind, make_batch in SP_BATCHES.items():
        # the labels of the shards, whole (no group: one shard): ignored across documents and at padding
        batch = module.shard_multimodal_batch(_with_labels(make_batch()))
        batch["labels"] = batch["shift_labels"]  # stock computes a loss only given labels, then uses shift_labels
        loss = stock(**batch).loss
        loss.backward()
        reference[kind] = {"loss": loss.detach(), "grads": take_gradients(stock)}
    world_size = 2
    mp.start_processes(
        _sp_worker, args=(world_size, config, stock.state_dict(), tmp_path), nprocs=world_size, start_method="fork"
    )
    for rank in range(world_size):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        for kind, expected in reference.items():
            torch.testing.assert_close(result[kind]["loss"], expected["loss"], msg=lambda m, k=kind: f"{k}: {m}")
            for name, grad in expected["grads"].items():
                torch.testing.assert_close(
                    result[kind]["grads"][name], grad, msg=lambda m, k=kind, n=name: f"{k}, {n}: {m}"
                )
        # the equality above would fail for it (assert_close's fp32 defaults: rtol 1.3e-6, atol 1e-5)
        assert not torch.isclose(result["control"], reference["plain"]["loss"], rtol=1.3e-6, atol=1e-5)
        assert "neither the whole sequence (16) nor one of 2 shards" in result["odd_length"]


def test_tiny_image_fills_its_placeholders():
    assert image_tokens() == 8
    assert int((image_batch()["input_ids"] == IMAGE_TOKEN_ID).sum()) == 16


def test_generated_module_imports_its_helpers_from_runtime_only():
    text = Path(generated_module("qwen2_5_vl", "cpu").__file__).read_text()
    assert "def shard_multimodal_batch(" in text
    assert (
        importlib.import_module("patchgen.runtime.sequence_batch").shard_batch
        is generated_module("qwen2_5_vl", "cpu").shard_batch
    )


def test_text_attention_runs_the_shared_ulysses_forward_with_qwen2_steps():
    """Upstream's parameter order is kept by `forward`, which hands them to the shared forward (`ulysses_forward`)."""
    for variant in ("cpu", "gpu"):
        attention = generated_module("qwen2_5_vl", variant).Qwen2_5_VLAttention
        shared = inspect.getsource(attention.ulysses_forward)
        for step in ("separate_qkv_projection(self, hidden_states)", "no_qk_norm(self,", "full_rotary(query_states"):
            assert step in shared
        assert (
            list(inspect.signature(attention.forward).parameters)[:6]
            == list(inspect.signature(modeling_qwen2_5_vl.Qwen2_5_VLAttention.forward).parameters)[:6]
        )
