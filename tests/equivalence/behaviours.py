"""Behaviours a regression hides from logits: continuous batching, and every field of every output (issue 19).

The third table of `python -m tests.equivalence`, one column per check:
- `continuous_batching`: `model.generate_batch(...)`, transformers' continuous-batching manager (paged KV cache,
  requests of different lengths scheduled together), on stock and on generated: every request finishes without
  an error, with tokens, the same tokens as stock's. transformers >= 5.25 passes the paged cache's bookkeeping
  to `cache.update(..., kwargs=kwargs)`; an attention that drops `kwargs=kwargs` makes the manager log a
  TypeError and return empty outputs, which would pass a check that only looks for an exception.
- `fields_*`: one forward each on stock and generated, and every field of the returned `ModelOutput` compared
  (`tests.equivalence.fields`): the base model and the causal LM, without and with labels, with
  `output_router_logits=True` (MoE families: router logits and aux loss), and for vision families a batch with
  images (rope deltas, the vision encoder's outputs).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from tests.equivalence.cases import SEED, EquivalenceCase
from tests.equivalence.checks import NEW_TOKENS, Check, CheckResult, Comparison, Mismatch, StockFails
from tests.equivalence.fields import compare_fields


# -- every field of every output ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldScenario:
    """One forward call whose whole output is compared: `part` is "model" (the base model) or "lm"."""

    name: str
    part: str
    kwargs: Callable[[EquivalenceCase], dict[str, Any]]
    with_labels: bool = False
    vision_only: bool = False  # needs image inputs: runs for families with `vision_inputs`


def _text(case: EquivalenceCase, **extra) -> dict[str, Any]:
    return {"input_ids": case.input_ids, "use_cache": True, "output_hidden_states": True, **extra}


def image_inputs(case: EquivalenceCase) -> dict[str, torch.Tensor]:
    """One image per row (start token, merged-patch placeholders, end token), at a different place in each row.

    Built from the case's own config (its token ids and vision sizes), seeded like every harness input."""
    config, vision = case.config, case.config.vision_config
    grid = (1, 4, 4)  # (temporal, height, width) in patches
    merged = grid[0] * grid[1] * grid[2] // vision.spatial_merge_size**2
    input_ids = case.input_ids.clone()
    for row, start in enumerate((0, 2)):
        input_ids[row, start] = config.vision_start_token_id
        input_ids[row, start + 1 : start + 1 + merged] = config.image_token_id
        input_ids[row, start + 1 + merged] = config.vision_end_token_id
    patches = input_ids.shape[0] * grid[0] * grid[1] * grid[2]
    channels = vision.in_channels * vision.temporal_patch_size * vision.patch_size**2
    generator = torch.Generator().manual_seed(SEED + 3)
    device = case.setting.device
    return {
        "input_ids": input_ids,
        "mm_token_type_ids": (input_ids == config.image_token_id).int(),
        "pixel_values": torch.randn(patches, channels, generator=generator).to(device, case.setting.dtype),
        "image_grid_thw": torch.tensor([grid] * input_ids.shape[0], device=device),
    }


FIELD_SCENARIOS: tuple[FieldScenario, ...] = (
    FieldScenario("fields_model", "model", _text),
    FieldScenario("fields_lm", "lm", _text),
    FieldScenario("fields_lm_labels", "lm", lambda c: _text(c, labels=c.input_ids), with_labels=True),
    FieldScenario(
        "fields_router_logits",
        "lm",
        lambda c: _text(c, labels=c.input_ids, output_router_logits=True),
        with_labels=True,
    ),
    FieldScenario("fields_images_model", "model", lambda c: {**image_inputs(c), "use_cache": True}, vision_only=True),
    FieldScenario(
        "fields_images_lm",
        "lm",
        lambda c: {**image_inputs(c), "use_cache": True, "labels": image_inputs(c)["input_ids"]},
        with_labels=True,
        vision_only=True,
    ),
)


def _part(model, part: str):
    # `base_model` is the decoder model a causal LM wraps (`model.model`), or a VLM's multimodal model
    return model.base_model if part == "model" else model


def compare_scenario(case: EquivalenceCase, scenario: FieldScenario) -> CheckResult:
    comparison = Comparison(case.tolerance)
    outputs = []
    for model in case.pair:
        with torch.no_grad():
            outputs.append(_part(model, scenario.part)(**scenario.kwargs(case)))
    stock, generated = outputs
    compare_fields(
        comparison,
        scenario.part,
        stock,
        generated,
        allow_missing_logits=scenario.with_labels and case.module.fused_loss,
    )
    given = [field.name for field in dataclasses.fields(stock) if getattr(stock, field.name) is not None]
    return comparison.result(f"{len(given)} fields: {', '.join(given)}")


def _field_check(scenario: FieldScenario) -> Check:
    applies = (lambda case: case.architecture.vision_inputs) if scenario.vision_only else None
    return Check(
        scenario.name,
        lambda case: compare_scenario(case, scenario),
        numerical=True,
        table="behaviours",
        applies_to=applies,
    )


# -- continuous batching -----------------------------------------------------------------------------------------
# Requests of different lengths, so the manager schedules prefill and decode of different requests together.
BATCH_PROMPT_LENGTHS = (5, 3, 8)


def batch_prompts(case: EquivalenceCase) -> list[list[int]]:
    generator = torch.Generator().manual_seed(SEED + 4)
    vocab = case.text_config.vocab_size
    return [torch.randint(3, vocab, (length,), generator=generator).tolist() for length in BATCH_PROMPT_LENGTHS]


def continuous_batching_config():
    """A cache sized for the tiny requests (the default sizes it from free memory: slow on CPU and needs psutil),
    no warm-up graphs. transformers 5.25 renamed `block_size` to `page_size` and switches sdpa to flash
    attention unless told not to: each field is set where the installed version has it."""
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    names = {field.name for field in dataclasses.fields(ContinuousBatchingConfig)}
    sizes = {"page_size" if "page_size" in names else "block_size": 16}
    if "auto_switch_to_flash" in names:
        sizes["auto_switch_to_flash"] = False
    return ContinuousBatchingConfig(num_blocks=16, max_batch_tokens=64, max_requests_per_batch=4, **sizes)


class _ErrorLog(logging.Filter):
    """The manager reports a failed forward only in its log (and in each result's `error`): keep its errors."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            self.messages.append(record.getMessage().splitlines()[0])
        return False  # emitted by no handler: its tracebacks would bury the table; the check reports them


@contextmanager
def _errors_logged() -> Iterator[_ErrorLog]:
    # A filter on the logger itself: `generate_batch` swaps the logger's handlers for tqdm's while it runs.
    log = _ErrorLog()
    logger = logging.getLogger("ContinuousBatchingLogger")
    logger.addFilter(log)
    try:
        yield log
    finally:
        logger.removeFilter(log)


@dataclass(frozen=True)
class BatchRun:
    tokens: list[list[int]]  # per request, in prompt order
    problem: str | None = None  # None: every request finished with tokens; else missing, failed or empty ones
    errors: tuple[str, ...] = ()  # each failed request's error, once each
    logged: tuple[str, ...] = ()  # every error the manager logged (the first line of each)


def run_generate_batch(model, prompts: list[list[int]]) -> BatchRun:
    """Greedy tokens per request from `generate_batch`, and what went wrong: requests missing, failed (with the
    manager's own error and what it logged) or empty."""
    from transformers import GenerationConfig

    generation_config = GenerationConfig(
        # eos -1: no stop token (the manager's own value for "disabled"), so every request makes NEW_TOKENS tokens
        max_new_tokens=NEW_TOKENS,
        do_sample=False,
        eos_token_id=-1,
        pad_token_id=0,
        bos_token_id=1,
    )
    model.eval()
    try:
        with _errors_logged() as log, torch.no_grad():
            results = model.generate_batch(
                prompts,
                generation_config=generation_config,
                continuous_batching_config=continuous_batching_config(),
                progress_bar=False,
                warmup=False,
            )
    except Exception as error:  # noqa: BLE001 - e.g. 5.25 refuses an unsupported layer type before starting
        cause = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        return BatchRun([], f"generate_batch raised {cause}", (cause,))
    finally:
        model.train()
    failed: dict[str, list[str]] = {}  # message -> request ids, so one error is named once
    for request_id, result in results.items():
        if result.error is not None:
            failed.setdefault(f"failed: {str(result.error).splitlines()[0]}", []).append(request_id)
        elif not result.generated_tokens:
            failed.setdefault("returned no tokens", []).append(request_id)
    problems = [f"{', '.join(ids)} {message}" for message, ids in failed.items()]
    if len(results) != len(prompts):
        problems.insert(0, f"{len(results)} results for {len(prompts)} requests")
    if not problems:
        return BatchRun([list(result.generated_tokens) for result in results.values()])
    logged = f" (logged: {' | '.join(dict.fromkeys(log.messages))})" if log.messages else ""
    errors = [str(result.error).splitlines()[0] for result in results.values() if result.error is not None]
    return BatchRun([], "; ".join(problems) + logged, tuple(dict.fromkeys(errors)), tuple(log.messages))


def same_failure(stock: BatchRun, generated: BatchRun) -> bool:
    """Both failed, for the same cause: each error stock's requests report (or, with no request to carry it, each
    error its loop logged) is among generated's, in a request or in the log. The manager's thread fails before
    or after taking the requests depending on timing, so which requests carry the error can differ."""
    if stock.problem is None or generated.problem is None:
        return False
    causes = stock.errors or tuple(line for line in stock.logged if line.startswith("Error in generation loop"))
    return bool(causes) and all(any(cause in line for line in generated.errors + generated.logged) for cause in causes)


def check_continuous_batching(case: EquivalenceCase) -> CheckResult:
    """`generate_batch` on stock and generated (fresh models: the manager switches their attention to a paged
    one): every request finishes with tokens, the same as stock's (exactly in fp32 on CPU: same kernel, same
    shapes). Where stock itself fails (an architecture the installed manager does not support), generated must
    fail the same way, and the cell says so ("stock fails")."""
    prompts = batch_prompts(case)
    pair = case.build_pair("sdpa")
    stock_run, generated_run = (run_generate_batch(model, prompts) for model in pair)
    if stock_run.problem is not None:
        if same_failure(stock_run, generated_run):
            raise StockFails(f"continuous batching: {stock_run.problem}")
        raise Mismatch(
            f"continuous batching: stock: {stock_run.problem}; "
            f"generated: {generated_run.problem or 'finishes every request'}"
        )
    if generated_run.problem is not None:
        raise Mismatch(f"continuous batching: generated model: {generated_run.problem}")
    stock, generated = stock_run.tokens, generated_run.tokens
    differing = [index for index, (a, b) in enumerate(zip(stock, generated, strict=True)) if a != b]
    if differing and (case.tolerance.exact_tokens or _beyond_near_tie(case, pair, prompts, stock, generated)):
        index = differing[0]
        raise Mismatch(
            f"continuous batching: request {index} (prompt of {len(prompts[index])} tokens): "
            f"stock {stock[index]}, generated {generated[index]}"
        )
    tokens = sum(len(request) for request in generated)
    note = f"{len(prompts)} requests, {tokens} tokens" + (" (near ties)" if differing else "")
    return CheckResult(note=note)


def _beyond_near_tie(case, pair, prompts, stock, generated) -> bool:
    """Off fp32 CPU (bf16 kernels): a token may differ only where stock's own top-2 logits are within tolerance."""
    for prompt, a, b in zip(prompts, stock, generated, strict=True):
        if a == b:
            continue
        step = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
        ids = torch.tensor([prompt + a[:step]], device=case.setting.device)
        with torch.no_grad():
            top2 = pair.stock.eval()(input_ids=ids).logits[0, -1].float().topk(2).values
        pair.stock.train()
        allowed = case.tolerance.atol + case.tolerance.rtol * top2[0].abs().item()
        if (top2[0] - top2[1]).item() > allowed:
            return True
    return False


BEHAVIOUR_CHECKS: tuple[Check, ...] = (
    # generation computes no loss: the fused-loss row would repeat the plain row's run
    Check(
        "continuous_batching",
        check_continuous_batching,
        numerical=True,
        table="behaviours",
        applies_to=lambda case: not case.setting.fused_loss,
        table_only=True,
    ),
    *(_field_check(scenario) for scenario in FIELD_SCENARIOS),
)
