"""Qwen3.5 and Qwen3.5-MoE specifics: images through the hybrid decoder, the text-only head's fused loss, the
delta-net's projection step, stock checkpoints and the router loss.

The numbers against stock on text tokens (logits, loss, gradients, generate, save/load, eager/sdpa, padded
batches) are the family and behaviour tests' (`tests/families.py` entries `qwen3_5` and `qwen3_5_moe`), and
Ulysses SP across 2 and 4 gloo ranks is `tests/test_models_sequence_parallel.py`'s. Here:

- with images (tests/multimodal_batches.py: the tokens and patch sizes the families' tiny configs share) the CPU
  files' logits, the training loss and every gradient (the vision tower's, whose rope the files patch, included)
  equal stock's; Qwen3.5's conditional-generation forward is the shared multimodal fused-loss forward, Qwen3.5-MoE's
  upstream's (router aux loss);
- the text-only `Qwen3_5ForCausalLM` runs the text families' fused-loss forward: its training loss and gradients
  equal stock's, with `logits=None`;
- both files' delta-net forward calls Qwen3.5's projection step (separate `in_proj_qkv/z/b/a`) and each file's delta
  rule (upstream's pure-torch one on CPU, flash-linear-attention's in the GPU file); the step equals upstream's
  projections and reshapes;
- the composite builds the file's own text model and vision tower (upstream's `AutoModel.from_config` would build
  transformers' classes, and every patch below the head would go unused);
- under Ulysses SP on 2 gloo ranks with images (plain and padded rows: each rank merges the images, then keeps its
  slice), the reduced loss and every summed gradient equal stock's on the whole batch (marked `slow`);
- a stock Qwen3.5-MoE checkpoint (experts saved one by one) loads into both files with no missing keys, and with
  `output_router_logits` the MoE loss includes the router aux loss as stock's does (with images, above).
"""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import transformers
from multimodal_batches import IMAGE_TOKEN_ID, image_batch
from safetensors import safe_open
from sequence_parallel_batches import sequence_parallel_rank, take_gradients
from tiny_families import FAMILIES, generated_module

from patchgen.runtime import sequence_parallel as sp


CONDITIONAL = {"qwen3_5": "Qwen3_5ForConditionalGeneration", "qwen3_5_moe": "Qwen3_5MoeForConditionalGeneration"}
MODELS = sorted(CONDITIONAL)


def tiny_config(model: str):
    return FAMILIES[model].make_config()


def stock_and_generated(model: str, cls: str | None = None, config=None):
    """Stock with every parameter moved off HF's init (norm weights stop being 0), and the CPU file loaded from it."""
    config = config if config is not None else tiny_config(model)
    cls = cls or CONDITIONAL[model]
    torch.manual_seed(0)
    stock = getattr(transformers, cls)(config)
    with torch.no_grad():
        for parameter in stock.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    generated = getattr(generated_module(model, "cpu"), cls)(config)
    result = generated.load_state_dict(stock.state_dict())
    assert not result.missing_keys and not result.unexpected_keys, result
    return stock.eval(), generated.eval()


def assert_gradients_equal(generated, stock) -> None:
    stock_parameters = dict(stock.named_parameters())
    for name, parameter in generated.named_parameters():
        if stock_parameters[name].grad is None:  # a part stock's loss does not reach either (none expected here)
            assert parameter.grad is None, name
            continue
        torch.testing.assert_close(parameter.grad, stock_parameters[name].grad, msg=name)


@pytest.mark.parametrize("model", MODELS)
def test_logits_loss_and_every_gradient_with_images_equal_stock(model):
    stock, generated = stock_and_generated(model)
    batch = image_batch()
    expected, actual = stock(**batch), generated(**batch)
    torch.testing.assert_close(actual.logits, expected.logits)
    assert actual.keys() == expected.keys() and type(actual).__name__ == type(expected).__name__
    torch.testing.assert_close(actual.image_outputs.pooler_output, expected.image_outputs.pooler_output)
    labels = batch["input_ids"].masked_fill(batch["input_ids"] == IMAGE_TOKEN_ID, -100)
    if model == "qwen3_5_moe":  # the loss then adds router_aux_loss_coef * the router's load-balancing loss
        batch["output_router_logits"] = True
    for part in (stock, generated):
        part.train()
    expected, actual = stock(**batch, labels=labels), generated(**batch, labels=labels)
    torch.testing.assert_close(actual.loss, expected.loss)
    if model == "qwen3_5":  # the shared fused-loss forward: no logits while training with labels
        assert actual.logits is None
    else:  # upstream's forward, with the router aux loss in the loss
        assert expected.aux_loss > 0
        torch.testing.assert_close(actual.aux_loss, expected.aux_loss)
    expected.loss.backward()
    actual.loss.backward()
    vision = [name for name, parameter in generated.named_parameters() if "visual" in name]
    assert vision and all(generated.get_parameter(name).grad is not None for name in vision)
    assert_gradients_equal(generated, stock)


def test_text_only_causal_lm_runs_the_fused_loss_forward():
    config = tiny_config("qwen3_5").text_config
    stock, generated = stock_and_generated("qwen3_5", "Qwen3_5ForCausalLM", config)
    assert "linear_cross_entropy" in inspect.getsource(type(generated).forward)
    input_ids = torch.randint(3, 90, (2, 13), generator=torch.Generator().manual_seed(1))
    labels = input_ids.clone()
    labels[0, :4] = -100
    torch.testing.assert_close(generated(input_ids).logits, stock(input_ids).logits)
    for part in (stock, generated):
        part.train()
    expected, actual = stock(input_ids, labels=labels), generated(input_ids, labels=labels)
    assert actual.logits is None
    torch.testing.assert_close(actual.loss, expected.loss)
    expected.loss.backward()
    actual.loss.backward()
    assert_gradients_equal(generated, stock)


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
@pytest.mark.parametrize("model", MODELS)
def test_delta_net_forward_calls_the_qwen3_5_projection_and_each_files_delta_rule(model, variant):
    module = generated_module(model, variant)
    delta_net = "Qwen3_5MoeGatedDeltaNet" if model == "qwen3_5_moe" else "Qwen3_5GatedDeltaNet"
    forward = inspect.getsource(getattr(module, delta_net).forward)
    assert "= separate_qkv_z_b_a_projection(self, hidden_states)" in forward
    assert not hasattr(module, "project_linear_inputs") and not hasattr(module, "fused_qkvz_ba_projection")
    kernel, other = ("torch", "fla") if variant == "cpu" else ("fla", "torch")
    assert f"= {kernel}_chunk_gated_delta_rule(" in forward and f"{other}_chunk_gated_delta_rule" not in forward


def test_projection_step_equals_upstreams_projections():
    module = generated_module("qwen3_5", "cpu")
    config = tiny_config("qwen3_5").text_config
    torch.manual_seed(0)
    layer = module.Qwen3_5GatedDeltaNet(config, layer_idx=0)
    hidden_states = torch.randn(2, 5, config.hidden_size)
    query, key, value, z, b, a = module.separate_qkv_z_b_a_projection(layer, hidden_states)
    mixed = layer.in_proj_qkv(hidden_states)
    assert query.shape == (2, 5, config.linear_num_key_heads, config.linear_key_head_dim)
    assert value.shape == z.shape == (2, 5, config.linear_num_value_heads, config.linear_value_head_dim)
    assert b.shape == a.shape == (2, 5, config.linear_num_value_heads)
    # upstream convolves in_proj_qkv's output as it is: the step's heads flatten back to exactly that layout
    torch.testing.assert_close(torch.cat([x.flatten(2) for x in (query, key, value)], dim=-1), mixed, rtol=0, atol=0)
    torch.testing.assert_close(z.flatten(2), layer.in_proj_z(hidden_states), rtol=0, atol=0)


@pytest.fixture(scope="module")
def moe_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    stock = transformers.Qwen3_5MoeForConditionalGeneration(tiny_config("qwen3_5_moe")).eval()
    folder = tmp_path_factory.mktemp("qwen3_5_moe_stock")
    stock.save_pretrained(folder)
    return stock, folder


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_stock_moe_checkpoint_loads_without_missing_keys(moe_checkpoint, variant):
    stock, folder = moe_checkpoint
    with safe_open(folder / "model.safetensors", "pt") as saved:
        assert not any("experts.gate_up_proj" in key for key in saved.keys())  # saved one expert at a time
    module = generated_module("qwen3_5_moe", variant)
    loaded, info = module.Qwen3_5MoeForConditionalGeneration.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    for key, value in stock.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0, msg=key)
    if variant == "cpu":  # the GPU file's kernels need a GPU to run
        input_ids = torch.randint(3, 90, (2, 9), generator=torch.Generator().manual_seed(4))
        torch.testing.assert_close(loaded.eval()(input_ids).logits, stock(input_ids).logits)


# -- Ulysses SP with images: every rank gets the whole batch, merges the images, then keeps its slice -------------------


def padded(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Row 0 left-padded by 2 tokens, row 1 right-padded by 2 (the images, at (2, 4), end by token 13)."""
    attention_mask = torch.ones_like(batch["input_ids"])
    attention_mask[0, :2] = 0
    attention_mask[1, -2:] = 0
    input_ids = batch["input_ids"].masked_fill(attention_mask == 0, 0)
    return {**batch, "input_ids": input_ids, "attention_mask": attention_mask}


def with_labels(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    labels = batch["input_ids"].masked_fill(batch["input_ids"] == IMAGE_TOKEN_ID, -100)
    if "attention_mask" in batch:
        labels = labels.masked_fill(batch["attention_mask"] == 0, -100)
    return {**batch, "labels": labels}


SP_BATCHES = {"plain": lambda: image_batch(), "padded": lambda: padded(image_batch(image_at=(2, 4)))}


def sp_config(model: str):
    config = tiny_config(model)
    config.text_config.use_cache = False  # no recurrent cache under SP
    config._attn_implementation = "eager"
    return config


def _sp_worker(rank, world_size, model, state_dict, out_dir):
    with sequence_parallel_rank(rank, world_size, out_dir):
        module = generated_module(model, "cpu")
        composite = getattr(module, CONDITIONAL[model])(sp_config(model))
        composite.load_state_dict(state_dict)
        composite.train()
        results = {}
        for kind, make_batch in SP_BATCHES.items():
            loss = composite(**module.shard_multimodal_batch(with_labels(make_batch()))).loss
            loss.backward()
            for parameter in composite.parameters():
                if parameter.grad is not None:
                    dist.all_reduce(parameter.grad)
            results[kind] = {"loss": sp.reduce_loss(loss), "grads": take_gradients(composite)}
        torch.save(results, out_dir / f"rank{rank}.pt")


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_two_ranks_with_images_equal_stock_on_the_whole_sequence(model, tmp_path):
    """Both token mixers under Ulysses SP after the images are merged: the loss and every gradient of stock."""
    stock, _ = stock_and_generated(model, config=sp_config(model))
    stock.train()
    module = generated_module(model, "cpu")
    reference = {}
    for kind, make_batch in SP_BATCHES.items():
        batch = module.shard_multimodal_batch(with_labels(make_batch()))  # no group: one shard, the whole batch
        batch["labels"] = batch["shift_labels"]  # stock computes a loss only given labels, then uses shift_labels
        loss = stock(**batch).loss
        loss.backward()
        reference[kind] = {"loss": loss.detach(), "grads": take_gradients(stock)}
    mp.start_processes(_sp_worker, args=(2, model, stock.state_dict(), tmp_path), nprocs=2, start_method="fork")
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        for kind, expected in reference.items():
            torch.testing.assert_close(result[kind]["loss"], expected["loss"], msg=lambda m, k=kind: f"{k}: {m}")
            assert result[kind]["grads"].keys() == expected["grads"].keys()
            for name, grad in expected["grads"].items():
                torch.testing.assert_close(
                    result[kind]["grads"][name], grad, msg=lambda m, k=kind, n=name: f"{k}, {n}: {m}"
                )
