"""Qwen3-VL and Qwen3-VL-MoE with images: the generated files build their own towers, equal stock with DeepStack,
and under Ulysses SP.

The family, behaviour and equivalence tables run the files on text tokens, where DeepStack never runs;
here every input carries images (tests/multimodal_batches.py: 2 rows of 16 tokens, one 4x8-patch image
each, 8 placeholder tokens after merging) on the family's tiny config (tests/families.py: vision blocks 0
and 1 add DeepStack features after text layers 0 and 1), so the vision tower, the merge, the 3-D rope
positions and DeepStack all run.

Upstream's `Qwen3VLModel.__init__` builds its towers with `AutoModel.from_config`, i.e. transformers' own
classes: the first test checks the generated model runs the generated (patched) classes, which no equality
with stock could show. Under sequence parallelism 2 forked gloo processes each get the whole sequence
(`shard_multimodal_batch`) and keep their half of the merged embeddings, positions and DeepStack features;
the reduced loss and summed gradients (the vision tower's and the DeepStack mergers' included) must equal
stock on the whole batch in one process, for a plain, a padded and a packed batch.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import transformers
from multimodal_batches import IMAGE_TOKEN_ID, image_batch
from sequence_parallel_batches import sequence_parallel_rank, take_gradients
from tiny_families import FAMILIES, generated_module

from patchgen.runtime import sequence_parallel as sp
from tests.families import covered


# family -> (its model class, the attention class the text decoder must build)
MODELS = {
    "qwen3_vl": ("Qwen3VLModel", "Qwen3VLTextAttention"),
    "qwen3_vl_moe": ("Qwen3VLMoeModel", "Qwen3VLMoeTextAttention"),
}
QWEN3_VL_FAMILIES = [model for model in MODELS if model in covered()]


def make_config(model: str):
    config = FAMILIES[model].make_config()
    # the decoder's own switch: with a cache (its default, even in training) stock builds no packed-document mask
    config.text_config.use_cache = False
    return config


def stock_model(model: str, config):
    """Stock with random weights, every parameter moved off HF's init (norm weights stop being 1)."""
    torch.manual_seed(0)
    stock = getattr(transformers, FAMILIES[model].causal_lm)(config)
    with torch.no_grad():
        for parameter in stock.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return stock


def generated_model(model: str, config, variant: str = "cpu"):
    return getattr(generated_module(model, variant), FAMILIES[model].causal_lm)(config)


def labels_of(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The next-token labels a VLM trains on: not at image placeholders, not at padding."""
    labels = batch["input_ids"].masked_fill(batch["input_ids"] == IMAGE_TOKEN_ID, -100)
    if "attention_mask" in batch:
        labels = labels.masked_fill(batch["attention_mask"] == 0, -100)
    return labels


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


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
@pytest.mark.parametrize("model", QWEN3_VL_FAMILIES)
def test_model_builds_this_files_towers(model, variant):
    """Upstream's AutoModel.from_config would build transformers' stock towers, leaving every patch unused."""
    module = generated_module(model, variant)
    model_class, attention_class = MODELS[model]
    built = getattr(module, model_class)(make_config(model))
    assert type(built.visual).__module__ == module.__name__
    assert type(built.language_model).__module__ == module.__name__
    assert type(built.language_model.layers[0].self_attn) is getattr(module, attention_class)


@pytest.mark.parametrize("model", QWEN3_VL_FAMILIES)
def test_logits_loss_and_every_gradient_with_images_equal_stock(model):
    config = make_config(model)
    stock = stock_model(model, config).eval()
    generated = generated_model(model, make_config(model)).eval()
    result = generated.load_state_dict(stock.state_dict())
    assert not result.missing_keys and not result.unexpected_keys, result
    # MoE: the loss upstream's forward keeps adds the router aux loss
    router = {"output_router_logits": True} if "moe" in model else {}
    for batch in (image_batch(), padded(image_batch(image_at=(2, 4)))):
        batch = {**batch, **router}
        keep = batch.get("attention_mask", torch.ones_like(batch["input_ids"])).bool()
        expected, actual = stock(**batch), generated(**batch)
        torch.testing.assert_close(actual.logits[keep], expected.logits[keep])
        assert actual.keys() == expected.keys()
        for module in (stock, generated):
            module.train()
        expected_loss = stock(**batch, labels=labels_of(batch)).loss
        loss = generated(**batch, labels=labels_of(batch)).loss
        torch.testing.assert_close(loss, expected_loss)
        expected_loss.backward()
        loss.backward()
        stock_parameters = dict(stock.named_parameters())
        for name, parameter in generated.named_parameters():
            assert parameter.grad is not None, name  # the vision tower and the DeepStack mergers learn too
            torch.testing.assert_close(parameter.grad, stock_parameters[name].grad, msg=name)
        for module in (stock, generated):
            module.zero_grad(set_to_none=True)
            module.eval()


# -- sequence parallelism ------------------------------------------------------------------------------------


def packed(model: str, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each row two documents (10 + 6 tokens; the image in the first), upstream's packed positions: the text
    positions restarting per document, then the 3 rope rows of each document computed on its own."""
    rope_model = getattr(transformers, MODELS[model][0])(make_config(model))
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
                rope, _ = rope_model.get_rope_index(ids, types, image_grid_thw=grids)
            text = torch.arange(end - start).view(1, 1, -1)
            documents.append(torch.cat([text, rope], dim=0))
        rows.append(torch.cat(documents, dim=-1))
    return {**batch, "position_ids": torch.cat(rows, dim=1)}


def sp_batches(model: str) -> dict[str, dict[str, torch.Tensor]]:
    return {
        "plain": image_batch(),
        "padded": padded(image_batch(image_at=(2, 4))),
        # the image inside the first document: one rank holds all of it, the other none of its DeepStack rows
        "packed": packed(model, image_batch(image_at=(0, 1))),
    }


def _with_labels(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {**batch, "labels": labels_of(batch)}


def _sp_worker(rank, world_size, model, config, state_dict, out_dir: Path):
    with sequence_parallel_rank(rank, world_size, out_dir):
        module = generated_module(model, "cpu")
        generated = generated_model(model, config)
        generated.load_state_dict(state_dict)
        generated.train()
        results = {}
        for kind, batch in sp_batches(model).items():
            loss = generated(**module.shard_multimodal_batch(_with_labels(batch))).loss
            loss.backward()
            for parameter in generated.parameters():
                dist.all_reduce(parameter.grad)
            results[kind] = {"loss": sp.reduce_loss(loss), "grads": take_gradients(generated)}
        torch.save(results, out_dir / f"rank{rank}.pt")


@pytest.mark.slow
@pytest.mark.parametrize("model", QWEN3_VL_FAMILIES)
def test_two_ranks_with_images_equal_stock_on_the_whole_sequence(model, tmp_path):
    config = make_config(model)
    config._attn_implementation = "eager"
    stock = stock_model(model, config).train()
    module = generated_module(model, "cpu")
    reference = {}
    for kind, batch in sp_batches(model).items():
        # the labels of the shards, whole (no group: one shard): ignored across documents and at padding
        whole = module.shard_multimodal_batch(_with_labels(batch))
        whole["labels"] = whole["shift_labels"]  # stock computes a loss only given labels, then uses shift_labels
        loss = stock(**whole).loss
        loss.backward()
        reference[kind] = {"loss": loss.detach(), "grads": take_gradients(stock)}
    world_size = 2
    mp.start_processes(
        _sp_worker,
        args=(world_size, model, config, stock.state_dict(), tmp_path),
        nprocs=world_size,
        start_method="fork",
    )
    for rank in range(world_size):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        for kind, expected in reference.items():
            torch.testing.assert_close(result[kind]["loss"], expected["loss"], msg=lambda m, k=kind: f"{k}: {m}")
            for name, grad in expected["grads"].items():
                torch.testing.assert_close(
                    result[kind]["grads"][name], grad, msg=lambda m, k=kind, n=name: f"{k}, {n}: {m}"
                )
