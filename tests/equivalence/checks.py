"""The checks: each one compares a generated model with its stock model and raises on any difference."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from unittest import mock

import torch

from tests.equivalence.cases import BF16_GRAD_ERROR_FACTOR, EquivalenceCase, ModelPair, Tolerance


class Mismatch(AssertionError):
    """A difference between generated and stock; carries the largest absolute difference seen."""

    def __init__(self, message: str, max_abs_diff: float | None = None) -> None:
        super().__init__(message)
        self.max_abs_diff = max_abs_diff


class StockFails(Exception):
    """Stock itself cannot do what the check asks (the installed transformers does not support the architecture
    there) and generated fails the same way: nothing to compare. Not a failure; the table shows "stock fails"."""


@dataclass(frozen=True)
class CheckResult:
    max_abs_diff: float | None = None  # None where nothing numeric was compared
    note: str = ""


class Comparison:
    """assert_close with the case's tolerance, remembering the largest absolute difference across calls."""

    def __init__(self, tolerance: Tolerance) -> None:
        self.tolerance = tolerance
        self.max_abs_diff = 0.0

    def close(
        self,
        what: str,
        generated: torch.Tensor,
        stock: torch.Tensor,
        *,
        atol: float | None = None,
        rtol: float | None = None,
        check_dtype: bool = True,
    ) -> None:
        if generated.shape != stock.shape:
            raise Mismatch(f"{what}: shape {tuple(generated.shape)} (generated) != {tuple(stock.shape)} (stock)")
        if generated.numel():
            self.record((generated.detach().double() - stock.detach().double()).abs().max().item())
        rtol = self.tolerance.rtol if rtol is None else rtol
        atol = self.tolerance.atol if atol is None else atol
        try:
            torch.testing.assert_close(
                generated, stock, rtol=rtol, atol=atol, equal_nan=False, check_dtype=check_dtype
            )
        except AssertionError as error:
            raise Mismatch(
                f"{what} (generated vs stock, rtol={rtol:g}, atol={atol:g}): {error}", self.max_abs_diff
            ) from None

    def record(self, diff: float) -> None:
        self.max_abs_diff = diff if math.isnan(diff) else max(self.max_abs_diff, diff)

    def result(self, note: str = "") -> CheckResult:
        return CheckResult(self.max_abs_diff, note)


# -- structural checks: run on CPU for every module, GPU ones included ----------------------------------------
def check_imports(case: EquivalenceCase) -> CheckResult:
    case.generated_module  # noqa: B018 - importing is the check
    case.stock_module  # noqa: B018
    return CheckResult()


def check_builds(case: EquivalenceCase) -> CheckResult:
    model = case.build_model(case.generated_class, "sdpa")
    parameters = sum(parameter.numel() for parameter in model.parameters())
    return CheckResult(note=f"{parameters} params")


def check_state_dict_keys(case: EquivalenceCase) -> CheckResult:
    stock = case.build_model(case.stock_class, "sdpa").state_dict()
    generated = case.build_model(case.generated_class, "sdpa").state_dict()
    missing, extra = sorted(stock.keys() - generated.keys()), sorted(generated.keys() - stock.keys())
    if missing or extra:
        raise Mismatch(f"state-dict keys differ: missing in generated {missing[:5]}, only in generated {extra[:5]}")
    shapes = [name for name in stock if stock[name].shape != generated[name].shape]
    if shapes:
        raise Mismatch(f"state-dict shapes differ for {shapes[:5]}")
    return CheckResult(note=f"{len(stock)} keys")


# -- numerical checks: CPU modules in fp32 on CPU, GPU modules in bf16 on CUDA -----------------------------------
def check_logits(case: EquivalenceCase) -> CheckResult:
    comparison = Comparison(case.tolerance)
    stock, generated = case.logits
    comparison.close("logits", generated, stock)
    return comparison.result()


def check_loss(case: EquivalenceCase) -> CheckResult:
    comparison = Comparison(case.tolerance)
    (stock_loss, _), (generated_loss, _) = case.loss_and_grads
    # Fused losses may return the loss in another float dtype than HF's fp32 upcast: compare the values.
    comparison.close("loss", generated_loss, stock_loss, check_dtype=False)
    return comparison.result()


def check_grads(case: EquivalenceCase) -> CheckResult:
    tolerance = case.tolerance
    comparison = Comparison(tolerance)
    (_, stock_grads), (_, generated_grads) = case.loss_and_grads
    if stock_grads.keys() != generated_grads.keys():
        raise Mismatch(f"parameter names differ: {sorted(stock_grads.keys() ^ generated_grads.keys())[:5]}")
    for name, stock_grad in stock_grads.items():
        generated_grad = generated_grads[name]
        if (stock_grad is None) != (generated_grad is None):
            raise Mismatch(
                f"grad of {name}: stock {'has none' if stock_grad is None else 'exists'}, "
                f"generated {'has none' if generated_grad is None else 'exists'}"
            )
        if stock_grad is None:
            continue
        # Gradients span orders of magnitude across tensors: atol scales with each tensor's largest entry.
        if case.setting.dtype == torch.bfloat16:
            _close_to_reference(comparison, name, generated_grad, stock_grad, case.reference_grads[name], tolerance)
            continue
        atol = tolerance.grad_atol_relative * stock_grad.abs().max().item()
        comparison.close(f"grad of {name}", generated_grad, stock_grad, rtol=tolerance.grad_rtol, atol=atol)
    return comparison.result(f"{len(stock_grads)} params")


NEW_TOKENS = 6


def _close_to_reference(
    comparison: Comparison,
    name: str,
    generated: torch.Tensor,
    stock: torch.Tensor,
    reference: torch.Tensor,
    tolerance: Tolerance,
) -> None:
    """A bf16 gradient: no farther from stock's fp32 gradient than BF16_GRAD_ERROR_FACTOR x stock's bf16 one."""
    reference = reference.float()
    stock_error = (stock.float() - reference).abs().max().item()
    generated_error = (generated.float() - reference).abs().max().item()
    allowed = BF16_GRAD_ERROR_FACTOR * stock_error + tolerance.grad_atol_relative * reference.abs().max().item()
    comparison.record((generated.float() - stock.float()).abs().max().item())
    if generated_error > allowed:
        raise Mismatch(
            f"grad of {name}: {generated_error:.3g} from stock fp32, allowed {allowed:.3g} "
            f"({BF16_GRAD_ERROR_FACTOR:g} x stock bf16's {stock_error:.3g} + {tolerance.grad_atol_relative:g} x max)",
            comparison.max_abs_diff,
        )


def check_generate(case: EquivalenceCase) -> CheckResult:
    prompt = case.input_ids[:1, :5]
    outputs = []
    for model in (case.pair.stock, case.pair.generated):
        model.eval()
        try:
            outputs.append(
                model.generate(
                    prompt,
                    attention_mask=torch.ones_like(prompt),
                    max_new_tokens=NEW_TOKENS,
                    min_new_tokens=NEW_TOKENS,
                    do_sample=False,
                    output_scores=True,
                    return_dict_in_generate=True,
                )
            )
        finally:
            model.train()
    stock, generated = outputs
    stock_tokens, generated_tokens = stock.sequences[0, 5:].tolist(), generated.sequences[0, 5:].tolist()
    if stock_tokens == generated_tokens:
        return CheckResult(note=f"{NEW_TOKENS} tokens")
    step = next(i for i, (a, b) in enumerate(zip(stock_tokens, generated_tokens, strict=False)) if a != b)
    message = f"greedy tokens differ from step {step}: stock {stock_tokens}, generated {generated_tokens}"
    if case.tolerance.exact_tokens:
        raise Mismatch(message)
    # In bf16 a difference is only allowed where stock's own top-2 logits are closer than the logit tolerance.
    top2 = stock.scores[step][0].float().topk(2).values
    margin = (top2[0] - top2[1]).item()
    allowed = case.tolerance.atol + case.tolerance.rtol * top2[0].abs().item()
    if margin > allowed:
        raise Mismatch(f"{message}; stock's top-2 margin there is {margin:.3g} > tolerance {allowed:.3g}")
    return CheckResult(note=f"near tie at step {step} (margin {margin:.2g})")


def check_save_load(case: EquivalenceCase) -> CheckResult:
    """A checkpoint saved by either class loads into the other with no missing, extra or reshaped keys."""
    comparison = Comparison(case.tolerance)
    stock_logits, _ = case.logits
    directions = [
        ("stock -> generated", case.pair.stock, case.generated_class),
        ("generated -> stock", case.pair.generated, case.stock_class),
    ]
    for direction, saved_model, load_class in directions:
        with tempfile.TemporaryDirectory() as directory:
            saved_model.save_pretrained(directory)
            loaded, info = load_class.from_pretrained(
                directory,
                output_loading_info=True,
                dtype=case.setting.dtype,
                attn_implementation="sdpa" if load_class._supports_sdpa else "eager",  # GPT-OSS: eager only
            )
        problems = {
            key: info[key]
            for key in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")
            if info.get(key)
        }
        if problems:
            raise Mismatch(f"{direction}: loading reported {problems}")
        loaded = case.to_setting(loaded)
        with torch.no_grad():
            logits = loaded(input_ids=case.input_ids).logits
        comparison.close(f"{direction}: logits after loading", logits, stock_logits)
    return comparison.result()


def check_attn_eager(case: EquivalenceCase) -> CheckResult:
    """Built with eager attention, both models really run eager: they return the same attention weights."""
    comparison = Comparison(case.tolerance)
    pair = case.build_pair("eager")
    _require_attn_implementation(pair, "eager")
    with torch.no_grad():
        stock, generated = (model(input_ids=case.input_ids, output_attentions=True) for model in pair)
    layers = softmax_attention_layers(case.text_config)
    if len(generated.attentions) != layers or any(weights is None for weights in generated.attentions):
        raise Mismatch(f"eager: generated returned {len(generated.attentions)} attention maps, expected {layers}")
    for layer, (stock_weights, generated_weights) in enumerate(
        zip(stock.attentions, generated.attentions, strict=True)
    ):
        comparison.close(f"eager: attention weights of layer {layer}", generated_weights, stock_weights)
    comparison.close("eager: logits", generated.logits, stock.logits)
    return comparison.result()


def check_attn_sdpa(case: EquivalenceCase) -> CheckResult:
    """`set_attn_implementation("sdpa")` on an eager model takes effect: SDPA runs once per layer."""
    comparison = Comparison(case.tolerance)
    pair = case.build_pair("eager")
    for model in pair:
        model.set_attn_implementation("sdpa")
    _require_attn_implementation(pair, "sdpa")
    sdpa = torch.nn.functional.scaled_dot_product_attention
    logits = []
    for label, model in (("stock", pair.stock), ("generated", pair.generated)):
        with (
            torch.no_grad(),
            mock.patch.object(torch.nn.functional, "scaled_dot_product_attention", wraps=sdpa) as counted,
        ):
            logits.append(model(input_ids=case.input_ids).logits)
        if counted.call_count != softmax_attention_layers(case.text_config):
            raise Mismatch(
                f"sdpa: {label} model called scaled_dot_product_attention {counted.call_count} times, "
                f"expected once per layer with softmax attention ({softmax_attention_layers(case.text_config)})"
            )
    comparison.close("sdpa: logits", logits[1], logits[0])
    return comparison.result()


PAD_LEFT = 4


def check_padded_batch(case: EquivalenceCase) -> CheckResult:
    """A left-padded batch with an attention mask: same logits on real tokens, same loss with pads ignored."""
    comparison = Comparison(case.tolerance)
    input_ids = case.input_ids.clone()
    attention_mask = torch.ones_like(input_ids)
    input_ids[1, :PAD_LEFT] = case.text_config.pad_token_id
    attention_mask[1, :PAD_LEFT] = 0
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    real = attention_mask.bool()
    logits, losses = [], []
    for model in (case.pair.stock, case.pair.generated):
        with torch.no_grad():
            logits.append(model(input_ids=input_ids, attention_mask=attention_mask).logits[real])
            losses.append(model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss)
    comparison.close("padded: logits on real tokens", logits[1], logits[0])
    comparison.close("padded: loss", losses[1], losses[0], check_dtype=False)
    return comparison.result()


def softmax_attention_layers(config) -> int:
    """Layers that run softmax attention: all of them, less a hybrid model's linear-attention layers (Qwen3-Next)."""
    return config.num_hidden_layers - (getattr(config, "layer_types", None) or []).count("linear_attention")


def _require_attn_implementation(pair: ModelPair, expected: str) -> None:
    for label, model in (("stock", pair.stock), ("generated", pair.generated)):
        actual = model.config._attn_implementation
        if actual != expected:
            raise Mismatch(f"{label} model reports attn_implementation={actual!r}, expected {expected!r}")


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[EquivalenceCase], CheckResult]
    numerical: bool  # needs the module's kernels to run: GPU modules only on CUDA
    table: str = "model"  # which printed table the check is a column of ("model", "arguments" or "behaviours")
    # None: every case; else only the cases it returns True for (the others show "n/a", e.g. image inputs)
    applies_to: Callable[[EquivalenceCase], bool] | None = None
    # True: seconds per family, so pytest runs it on one family (tests/test_equivalence_harness.py) and the table
    # (`python -m tests.equivalence`) on every family
    table_only: bool = False


CHECKS: tuple[Check, ...] = (
    Check("imports", check_imports, numerical=False),
    Check("builds", check_builds, numerical=False),
    Check("state_dict_keys", check_state_dict_keys, numerical=False),
    Check("logits", check_logits, numerical=True),
    Check("loss", check_loss, numerical=True),
    Check("grads", check_grads, numerical=True),
    Check("generate", check_generate, numerical=True),
    Check("save_load", check_save_load, numerical=True),
    Check("attn_eager", check_attn_eager, numerical=True),
    # n/a where stock refuses sdpa (GPT-OSS's attention sinks: eager only)
    Check("attn_sdpa", check_attn_sdpa, numerical=True, applies_to=lambda case: case.stock_class._supports_sdpa),
    Check("padded_batch", check_padded_batch, numerical=True),
)
CHECKS_BY_NAME = {check.name: check for check in CHECKS}
