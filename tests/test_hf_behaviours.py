"""What transformers' own model tests check, for every generated file, against stock HF built from the same weights.

For each family of the one table (tests/families.py) that has generated files:

- the `_cpu` files run on CPU: `output_attentions` / `output_hidden_states`, `resize_token_embeddings`,
  tied input/output embeddings, gradient checkpointing, training mode, sdpa vs eager attention, greedy
  generation with and without the cache, and generation with a compiled forward;
- the `_gpu` files run the same checks on a CUDA GPU (marked `gpu`); on CPU they import and build;
- every file, both variants: the class attributes transformers reads (`_no_split_modules`, `_tp_plan`,
  `_pp_plan`, `_fsdp_plan`, `_supports_*`, `_can_record_outputs`, ...) and the plans a built model
  carries equal stock's, so the `_cpu` and `_gpu` files of a family also equal each other;
- the source markers transformers sniffs (`@use_experts_implementation`, `ALL_ATTENTION_FUNCTIONS.get_interface(`)
  appear only where the capability really is.

One difference is deliberate and asserted elsewhere (tests/test_fused_loss.py): with labels, the fused-loss
forward returns `logits=None`. Here the loss is compared, never the logits of a labelled call.

Tolerances. `_cpu` files run pure-torch twins of the Liger kernels, which compute the same fp32 operations
as stock, some in another order (the MoE experts sum per-expert matmuls; the fused loss takes logsumexp over
the vocabulary in one piece): on the 2-core x86 machine these tests were written on, outputs, losses and
gradients came out bitwise equal, but another CPU may pick other kernels for these shapes, so results are
compared within torch.testing's fp32 defaults (rtol 1.3e-6, atol 1e-5). A model compared with itself on the
same shapes (train vs eval, with vs without checkpointing, resized weights) must be bitwise equal. On a GPU, Liger's kernels differ from eager
PyTorch in reduction order and, for the MoE experts, multiply fp32 as TF32 (the qwen3_moe entry of
tests/families.py measured 9.3e-4): the entry's `gpu_tolerance` there (1e-4; 5e-3 for qwen3_moe).
"""

from __future__ import annotations

import ast
import re

import pytest
import torch
import transformers
from conftest import REPO
from tiny_families import FAMILIES, generated_module
from transformers import CompileConfig

from tests.families import TABLE


BEHAVIOUR_FAMILIES = FAMILIES
MODELS = sorted(BEHAVIOUR_FAMILIES)
ON_GPU = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="the Liger kernels of the _gpu files need a CUDA GPU"),
]
VARIANT_DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("gpu", marks=ON_GPU, id="gpu")]


def tolerance(model: str, variant: str) -> dict[str, float]:
    """See the module docstring: fp32 defaults for the torch twins, Liger's reduction order / TF32 on a GPU."""
    if variant == "cpu":
        return {}
    error = TABLE[model].gpu_tolerance
    return dict(rtol=error, atol=error)


def same_kernels(model: str, variant: str) -> dict[str, float]:
    """One model run twice on the same shapes: bitwise on CPU; on a GPU, Liger's backward kernels may
    accumulate with atomics (run-to-run order), so the cross-implementation tolerance applies."""
    return dict(rtol=0, atol=0) if variant == "cpu" else tolerance(model, variant)


def make_config(model: str, **overrides):
    family = BEHAVIOUR_FAMILIES[model]
    return getattr(transformers, family.config_class)(**{**family.config_kwargs, **overrides})


def stock_and_generated(model: str, variant: str, **overrides):
    """Stock and generated causal LMs with the same random weights (norm weights perturbed), in eval mode.

    Each gets its own config object: a model writes the attention/experts implementation it resolved into
    its config, which a second model built from that config would take as requested.
    """
    family = BEHAVIOUR_FAMILIES[model]
    device = "cuda" if variant == "gpu" else "cpu"
    stock_overrides = dict(overrides)
    if variant == "gpu" and TABLE[model].liger_experts:  # the reference loop, whatever grouped_mm does in fp32 there
        stock_overrides.setdefault("experts_implementation", "eager")
    torch.manual_seed(0)
    stock = getattr(transformers, family.causal_lm)(make_config(model, **stock_overrides))
    with torch.no_grad():
        for name, parameter in stock.named_parameters():
            if "norm" in name:
                parameter.add_(torch.randn_like(parameter) * 0.1)  # so (1 + w) vs w mistakes show
    generated = getattr(generated_module(model, variant), family.causal_lm)(make_config(model, **overrides))
    result = generated.load_state_dict(stock.state_dict())
    assert not result.missing_keys and not result.unexpected_keys, result
    return stock.to(device).eval(), generated.to(device).eval()


def token_ids(seed: int, device, shape=(2, 11)) -> torch.Tensor:
    return torch.randint(1, 99, shape, generator=torch.Generator().manual_seed(seed)).to(device)


def assert_grads_equal(generated, stock, **tol):
    stock_parameters = dict(stock.named_parameters())
    for name, parameter in generated.named_parameters():
        torch.testing.assert_close(parameter.grad, stock_parameters[name].grad, **tol, msg=name)


# -- outputs ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANT_DEVICES)
@pytest.mark.parametrize("model", MODELS)
def test_output_attentions_and_hidden_states(model, variant):
    stock, generated = stock_and_generated(model, variant, attn_implementation="eager")
    input_ids = token_ids(1, stock.device)
    expected = stock(input_ids, output_attentions=True, output_hidden_states=True)
    actual = generated(input_ids, output_attentions=True, output_hidden_states=True)
    # the decoder's config (a VLM's config nests it); hybrid models (Qwen3-Next) return attention weights of
    # their softmax-attention layers only
    config = make_config(model).get_text_config()
    attention_layers = config.num_hidden_layers - (getattr(config, "layer_types", None) or []).count(
        "linear_attention"
    )
    assert len(actual.attentions) == len(expected.attentions) == attention_layers
    assert len(actual.hidden_states) == len(expected.hidden_states) == config.num_hidden_layers + 1
    for ours, theirs in zip(
        actual.attentions + actual.hidden_states, expected.attentions + expected.hidden_states, strict=True
    ):
        torch.testing.assert_close(ours, theirs, **tolerance(model, variant))
    # and through return_dict=False, as upstream's tuple output orders them
    as_tuple = generated(input_ids, output_hidden_states=True, return_dict=False)
    torch.testing.assert_close(as_tuple[0], expected.logits, **tolerance(model, variant))


@pytest.mark.parametrize("variant", VARIANT_DEVICES)
@pytest.mark.parametrize("model", MODELS)
def test_inputs_embeds_equal_input_ids(model, variant):
    stock, generated = stock_and_generated(model, variant)
    input_ids = token_ids(8, stock.device)
    embeds = generated.get_input_embeddings()(input_ids)
    logits = generated(inputs_embeds=embeds).logits
    torch.testing.assert_close(logits, generated(input_ids).logits, **same_kernels(model, variant))
    torch.testing.assert_close(logits, stock(inputs_embeds=embeds).logits, **tolerance(model, variant))


@pytest.mark.parametrize("variant", VARIANT_DEVICES)
@pytest.mark.parametrize("model", MODELS)
def test_sdpa_and_eager_attention_equal_stock(model, variant):
    """Both implementations, switched at run time, on a left-padded batch (so the masks matter)."""
    stock, generated = stock_and_generated(model, variant)
    input_ids = token_ids(2, stock.device)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, :4] = 0
    assert generated._can_set_attn_implementation() == stock._can_set_attn_implementation() is True
    assert generated._supports_sdpa == stock._supports_sdpa
    if not stock._supports_sdpa:  # GPT-OSS (attention sinks): both refuse sdpa, eager only
        for model_ in (stock, generated):
            with pytest.raises(ValueError, match="does not support an attention implementation"):
                model_.set_attn_implementation("sdpa")
    logits = {}
    for implementation in ["eager", "sdpa"] if stock._supports_sdpa else ["eager"]:
        stock.set_attn_implementation(implementation)
        generated.set_attn_implementation(implementation)
        assert generated.config._attn_implementation == implementation
        expected = stock(input_ids, attention_mask=attention_mask).logits
        logits[implementation] = generated(input_ids, attention_mask=attention_mask).logits
        torch.testing.assert_close(logits[implementation], expected, **tolerance(model, variant))
    keep = attention_mask.bool()  # padded positions attend to nothing; eager and sdpa fill them differently
    if "sdpa" in logits:
        torch.testing.assert_close(logits["eager"][keep], logits["sdpa"][keep], **tolerance(model, variant))


# -- training ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANT_DEVICES)
@pytest.mark.parametrize("model", MODELS)
def test_training_mode_equals_eval_mode_without_dropout(model, variant):
    """Dropout probabilities are 0 in these configs, so train() must change nothing, as in stock."""
    stock, generated = stock_and_generated(model, variant)
    input_ids = token_ids(3, stock.device)
    evaluated = generated(input_ids).logits
    stock.train()
    generated.train()
    torch.testing.assert_close(generated(input_ids).logits, evaluated, **same_kernels(model, variant))
    expected_loss = stock(input_ids, labels=input_ids).loss
    loss = generated(input_ids, labels=input_ids).loss
    torch.testing.assert_close(loss, expected_loss, **tolerance(model, variant))
    expected_loss.backward()
    loss.backward()
    assert_grads_equal(generated, stock, **tolerance(model, variant))


@pytest.mark.parametrize("reentrant", [True, False], ids=["reentrant", "non_reentrant"])
@pytest.mark.parametrize("variant", VARIANT_DEVICES)
@pytest.mark.parametrize("model", MODELS)
def test_gradient_checkpointing_keeps_loss_and_gradients(model, variant, reentrant):
    stock, generated = stock_and_generated(model, variant)
    input_ids = token_ids(4, stock.device)
    generated.train()
    plain_loss = generated(input_ids, labels=input_ids).loss
    plain_loss.backward()
    # a text-only batch leaves a vision tower without gradients, in stock too
    plain_grads = {name: p.grad if p.grad is None else p.grad.clone() for name, p in generated.named_parameters()}
    generated.zero_grad()

    for model_ in (stock, generated):
        model_.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
        model_.train()
    assert generated.is_gradient_checkpointing
    layers = generated.get_decoder().layers
    assert all(layer.gradient_checkpointing for layer in layers)
    expected_loss = stock(input_ids, labels=input_ids).loss
    loss = generated(input_ids, labels=input_ids).loss
    torch.testing.assert_close(loss, plain_loss, **same_kernels(model, variant))  # recomputed by the same kernels
    torch.testing.assert_close(loss, expected_loss, **tolerance(model, variant))
    expected_loss.backward()
    loss.backward()
    for name, parameter in generated.named_parameters():
        torch.testing.assert_close(parameter.grad, plain_grads[name], **same_kernels(model, variant), msg=name)
    assert_grads_equal(generated, stock, **tolerance(model, variant))


# -- embeddings -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANT_DEVICES)
@pytest.mark.parametrize("model", MODELS)
def test_tied_embeddings(model, variant):
    stock, generated = stock_and_generated(model, variant, tie_word_embeddings=True)
    assert stock.lm_head.weight is stock.get_input_embeddings().weight
    assert generated.lm_head.weight is generated.get_input_embeddings().weight
    assert generated.all_tied_weights_keys == stock.all_tied_weights_keys
    assert generated.state_dict().keys() == stock.state_dict().keys()
    input_ids = token_ids(5, stock.device)
    expected = stock(input_ids, labels=input_ids).loss
    loss = generated(input_ids, labels=input_ids).loss
    torch.testing.assert_close(loss, expected, **tolerance(model, variant))
    expected.backward()
    loss.backward()  # the tied weight gets both gradients, input side and output side
    torch.testing.assert_close(generated.lm_head.weight.grad, stock.lm_head.weight.grad, **tolerance(model, variant))


@pytest.mark.parametrize("variant", VARIANT_DEVICES)
@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("model", MODELS)
def test_resize_token_embeddings(model, variant, tied):
    stock, generated = stock_and_generated(model, variant, tie_word_embeddings=tied)
    for new_size in (107, 93):  # grow (new rows initialised from the seed below), then shrink
        for model_ in (stock, generated):
            torch.manual_seed(7)
            model_.resize_token_embeddings(new_size)
        text_config, stock_text_config = generated.config.get_text_config(), stock.config.get_text_config()
        assert text_config.vocab_size == stock_text_config.vocab_size == new_size
        assert generated.get_input_embeddings().weight.shape == stock.get_input_embeddings().weight.shape
        assert generated.get_output_embeddings().weight.shape == (new_size, stock_text_config.hidden_size)
        assert (generated.lm_head.weight is generated.get_input_embeddings().weight) is tied
        for name, value in stock.state_dict().items():
            torch.testing.assert_close(generated.state_dict()[name], value, rtol=0, atol=0, msg=name)
        input_ids = torch.randint(0, new_size, (2, 9), generator=torch.Generator().manual_seed(new_size))
        input_ids = input_ids.to(stock.device)
        logits = generated(input_ids).logits
        assert logits.shape[-1] == new_size
        torch.testing.assert_close(logits, stock(input_ids).logits, **tolerance(model, variant))


# -- generation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "no_cache"])
@pytest.mark.parametrize("variant", VARIANT_DEVICES)
@pytest.mark.parametrize("model", MODELS)
def test_greedy_generation_equals_stock(model, variant, use_cache):
    """Prompt 7 + 6 new tokens crosses the sliding window (5) of mistral and gemma3."""
    stock, generated = stock_and_generated(model, variant)
    input_ids = token_ids(6, stock.device, shape=(2, 7))
    expected = stock.generate(input_ids, max_new_tokens=6, do_sample=False, use_cache=use_cache)
    actual = generated.generate(input_ids, max_new_tokens=6, do_sample=False, use_cache=use_cache)
    assert torch.equal(actual, expected)


@pytest.mark.parametrize("variant", VARIANT_DEVICES)
@pytest.mark.parametrize("model", MODELS)
def test_generation_with_compiled_forward_equals_stock(model, variant):
    """A static cache and a fullgraph-compiled decoding forward, as transformers' compile tests run it.

    backend="eager": dynamo's fullgraph tracing is where graph breaks and data-dependent guards fail; inductor's
    C++ build would add minutes on 2 CPU cores (tests/test_models_qwen3_moe.py also runs AOT autograd on the MoE).
    The Qwen3-MoE GPU file gives this up with Liger's experts kernel (it refuses tracing, see
    patchgen/sets/experts/liger_moe_experts.py) and compiles once switched to transformers' grouped_mm.
    """
    stock, generated = stock_and_generated(model, variant)
    input_ids = token_ids(7, stock.device, shape=(2, 7))
    expected = stock.generate(input_ids, max_new_tokens=4, do_sample=False)
    compile_config = CompileConfig(fullgraph=True, backend="eager", mode=None)
    compile_config._compile_all_devices = True  # transformers compiles generation on accelerators only otherwise
    options = dict(max_new_tokens=4, do_sample=False, cache_implementation="static", compile_config=compile_config)
    torch._dynamo.reset()
    if variant == "gpu" and TABLE[model].liger_experts:
        with pytest.raises(Exception, match=r"set_experts_implementation\('grouped_mm'\)"):
            generated.generate(input_ids, **options)
        generated.set_experts_implementation("grouped_mm")
        torch._dynamo.reset()
    actual = generated.generate(input_ids, **options)
    assert generated._compiled_call is not None  # the decoding steps ran the compiled forward
    assert torch.equal(actual, expected)


# -- what transformers reads from the classes -------------------------------------------------------------


def comparable(value):
    """Class attributes with classes named instead of compared by identity (each file defines its own)."""
    if isinstance(value, type):
        return f"<class {value.__name__}>"
    if isinstance(value, dict):
        return {key: comparable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value)(comparable(item) for item in value)
    if hasattr(value, "__dict__") and not callable(value):  # e.g. OutputRecorder(Qwen3MoeTopKRouter, index=0)
        return (type(value).__name__, comparable(vars(value)))
    return value


def class_attributes(cls) -> dict:
    """The non-callable attributes (own and inherited) transformers reads from a model class."""
    attributes = {}
    for name in dir(cls):
        if name.startswith("__") or name.endswith("_cached_value"):
            continue
        value = getattr(cls, name)
        if isinstance(value, property) or (callable(value) and not isinstance(value, type)):
            continue
        attributes[name] = comparable(value)
    return attributes


def stock_module(model: str):
    return __import__(f"transformers.models.{model}.modeling_{model}", fromlist=["__all__"])


def compared_classes(model: str, variant: str):
    """Every model class of the generated file that stock also exports (excluded heads are gone on purpose).

    Model classes only: `__all__` also lists kernels (e.g. Qwen2RMSNorm), which the files replace on purpose.
    """
    module, stock = generated_module(model, variant), stock_module(model)
    names = [
        name
        for name in stock.__all__
        if name in module.__all__ and issubclass(getattr(stock, name), transformers.PreTrainedModel)
    ]
    assert BEHAVIOUR_FAMILIES[model].causal_lm in names
    return [(getattr(stock, name), getattr(module, name)) for name in names]


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
@pytest.mark.parametrize("model", MODELS)
def test_class_attributes_equal_stock(model, variant):
    for stock_class, generated_class in compared_classes(model, variant):
        assert class_attributes(generated_class) == class_attributes(stock_class), stock_class.__name__
        assert generated_class._can_set_attn_implementation() == stock_class._can_set_attn_implementation()
        assert generated_class._can_set_experts_implementation() == stock_class._can_set_experts_implementation()


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
@pytest.mark.parametrize("model", MODELS)
def test_models_are_transformers_code_as_stock(model, variant):
    """Outside the transformers package a model class counts as custom code, which changes weight initialisation,
    checkpoint conversion and layer-type reading (patchgen/load/native_code.py): generated ones answer as stock."""
    for stock_class, generated_class in compared_classes(model, variant):
        assert not stock_class.is_custom_code()
        assert generated_class.is_custom_code() is False, generated_class.__name__


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
@pytest.mark.parametrize("model", MODELS)
def test_random_initialisation_equals_stock_under_one_seed(model, variant):
    """Training from scratch: the same seed gives the same weights (every tensor, bitwise: the same init calls in
    the same order). Qwen3-Next's router stayed all zeros while its file counted as custom code."""
    family = BEHAVIOUR_FAMILIES[model]
    torch.manual_seed(0)
    stock = getattr(transformers, family.causal_lm)(make_config(model)).state_dict()
    torch.manual_seed(0)
    generated = getattr(generated_module(model, variant), family.causal_lm)(make_config(model)).state_dict()
    assert generated.keys() == stock.keys()
    different = [name for name, tensor in stock.items() if not torch.equal(generated[name], tensor)]
    assert not different, f"{len(different)} tensors differ from stock's init, first: {different[0]}"


@pytest.mark.parametrize("model", MODELS)
def test_cpu_and_gpu_files_expose_the_same_class_attributes(model):
    for (_, cpu_class), (_, gpu_class) in zip(
        compared_classes(model, "cpu"), compared_classes(model, "gpu"), strict=True
    ):
        assert class_attributes(cpu_class) == class_attributes(gpu_class), cpu_class.__name__


PLANS = [
    "_tp_plan",
    "_pp_plan",
    "_ep_plan",
    "_fsdp_plan",
    "_no_split_modules",
    "_keep_in_fp32_modules",
    "_skip_keys_device_placement",
    "all_tied_weights_keys",
]


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
@pytest.mark.parametrize("model", MODELS)
def test_built_model_plans_equal_stock(model, variant):
    """What a built model carries for TP, PP, EP, FSDP and device maps (merged from config and children)."""
    family = BEHAVIOUR_FAMILIES[model]
    stock = getattr(transformers, family.causal_lm)(make_config(model))
    generated = getattr(generated_module(model, variant), family.causal_lm)(make_config(model))
    for name in PLANS:
        assert comparable(getattr(generated, name)) == comparable(getattr(stock, name)), name
    assert generated.supports_gradient_checkpointing == stock.supports_gradient_checkpointing is True
    assert generated.config._attn_implementation == stock.config._attn_implementation


# -- the source transformers reads ------------------------------------------------------------------------

GENERATED_FILES = sorted((REPO / "generated").glob("*/patched_modeling_*.py"))


@pytest.mark.parametrize("path", GENERATED_FILES, ids=lambda path: path.stem)
def test_sniffed_markers_only_where_the_capability_is(path):
    """transformers enables set_attn/experts_implementation when these strings occur in the module source.

    Each occurrence must be real code: a decorator named use_experts_implementation, a call of
    ALL_ATTENTION_FUNCTIONS.get_interface. A banner or comment quoting either would claim a capability.
    """
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    decorators = [
        d
        for node in ast.walk(tree)
        if isinstance(node, (ast.ClassDef, ast.FunctionDef))
        for d in node.decorator_list
        # bare (`@use_experts_implementation`) or called with options (GPT-OSS: `(..., has_bias=True)`)
        for name in [d.func if isinstance(d, ast.Call) else d]
        if isinstance(name, ast.Name) and name.id == "use_experts_implementation"
    ]
    interface_calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get_interface"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "ALL_ATTENTION_FUNCTIONS"
    ]
    assert text.count("@use_experts_implementation") == len(decorators)
    assert len(re.findall(r"ALL_ATTENTION_FUNCTIONS\.get_interface\(", text)) == len(interface_calls) >= 1
