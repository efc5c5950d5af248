"""Run every check on every discovered module and print a (module, setting) x check table."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers.utils import logging as transformers_logging

from tests.equivalence.architectures import ARCHITECTURES
from tests.equivalence.arguments import ARGUMENT_CHECKS
from tests.equivalence.behaviours import BEHAVIOUR_CHECKS
from tests.equivalence.cases import CPU_FP32, CPU_FP32_FUSED_LOSS, CUDA_BF16, CUDA_FP32, EquivalenceCase, Setting
from tests.equivalence.checks import CHECKS as MODEL_CHECKS
from tests.equivalence.checks import Check, CheckResult, StockFails
from tests.equivalence.discovery import GeneratedModule, discover_generated_modules
from tests.equivalence.known_differences import KNOWN_DIFFERENCES


PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Whole-model checks (one table), one check per argument of the overridden forwards (a second table), and
# behaviours a regression hides from logits: continuous batching, every output field (a third table).
CHECKS: tuple[Check, ...] = MODEL_CHECKS + ARGUMENT_CHECKS + BEHAVIOUR_CHECKS


def settings_for(module: GeneratedModule) -> list[Setting]:
    """Pure-torch files: fp32 on CPU, and once more with the fused loss forced where the file has the fused-loss
    forward. Kernel files, on CUDA where their kernels run: bf16 (the training dtype, loose tolerance) and fp32
    (tight tolerance), or fp32 only where the architecture cannot compare bf16."""
    if not module.needs_cuda:
        return [CPU_FP32, CPU_FP32_FUSED_LOSS] if module.fused_loss else [CPU_FP32]
    architecture = ARCHITECTURES.get(module.architecture)
    return [CUDA_FP32] if architecture and architecture.no_bf16_comparison else [CUDA_BF16, CUDA_FP32]


def cases_for(module: GeneratedModule) -> list[EquivalenceCase]:
    """One case per setting; raises UnknownArchitectureError for an architecture without a tiny config."""
    return [EquivalenceCase(module, setting) for setting in settings_for(module)]


def applies(case: EquivalenceCase, check: Check) -> bool:
    """Structural checks (import, build, keys) do not depend on the setting: only the first setting runs them."""
    return check.numerical or case.setting == settings_for(case.module)[0]


def relevant(case: EquivalenceCase, check: Check) -> bool:
    """False where the check has nothing to exercise in this architecture (image inputs of a text-only model)."""
    return check.applies_to is None or check.applies_to(case)


def skip_reason(case: EquivalenceCase, check: Check, cuda_available: bool) -> str | None:
    if check.numerical and case.setting.device == "cuda" and not cuda_available:
        return "needs CUDA (Liger/flash-attn kernels)"
    return None


def known_difference(case_id: str, check: Check) -> str | None:
    return KNOWN_DIFFERENCES.get((case_id, check.name))


@dataclass(frozen=True)
class Outcome:
    # pass, FAIL, xfail, XPASS, skip, "-" (structural check, run in the module's first row), "n/a" (nothing to
    # exercise in this architecture), "stock fails" (stock cannot either, and generated fails the same way)
    status: str
    result: CheckResult | None = None
    message: str = ""

    def cell(self) -> str:
        diff = self.result.max_abs_diff if self.result else None
        return self.status if diff is None else f"{self.status} {_format_diff(diff)}"


def _format_diff(diff: float) -> str:
    return "nan" if math.isnan(diff) else f"{diff:.1e}"


def run_one(case: EquivalenceCase, check: Check) -> Outcome:
    expected_failure = known_difference(case.id, check)
    try:
        with case.running():
            result = check.run(case)
    except StockFails as unsupported:
        return Outcome("stock fails", message=str(unsupported))
    except Exception as error:  # noqa: BLE001 - every failure becomes a table cell, with its message
        diff = getattr(error, "max_abs_diff", None)
        message = f"{type(error).__name__}: {error}".splitlines()[0]
        status = "xfail" if expected_failure else "FAIL"
        return Outcome(status, CheckResult(diff), message)
    if expected_failure:
        return Outcome("XPASS", result, f"listed in KNOWN_DIFFERENCES but passed: {expected_failure}")
    return Outcome("pass", result)


def run_table(modules: list[GeneratedModule], cuda_available: bool) -> dict[str, dict[str, Outcome]]:
    table: dict[str, dict[str, Outcome]] = {}
    for module in modules:
        try:
            cases = cases_for(module)
        except Exception as error:  # noqa: BLE001 - an unknown architecture fails every cell of its row
            table[module.id] = {check.name: Outcome("FAIL", message=str(error)) for check in CHECKS}
            continue
        import_failure = None
        for case in cases:
            row: dict[str, Outcome] = {}
            for check in CHECKS:
                reason = skip_reason(case, check, cuda_available)
                if import_failure and check.name != "imports":
                    row[check.name] = Outcome("skip", message=f"does not import: {import_failure}")
                elif not applies(case, check):
                    row[check.name] = Outcome("-")
                elif not relevant(case, check):
                    row[check.name] = Outcome("n/a")
                elif reason:
                    row[check.name] = Outcome("skip", message=reason)
                else:
                    row[check.name] = run_one(case, check)
                if check.name == "imports" and row[check.name].status == "FAIL":
                    # A file that does not import under the installed transformers is one failing row: every
                    # other check of the module is skipped with the reason, instead of importing it again.
                    import_failure = row[check.name].message
            table[case.id] = row
    return table


def format_table(table: dict[str, dict[str, Outcome]], checks: tuple[Check, ...] = MODEL_CHECKS) -> str:
    headers = ["module@dtype", *(check.name for check in checks)]
    rows = [[case_id, *(row[check.name].cell() for check in checks)] for case_id, row in table.items()]
    widths = [max(len(line[i]) for line in [headers, *rows]) for i in range(len(headers))]

    def render(line: list[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) + " |"

    return "\n".join(
        [render(headers), "|" + "|".join("-" * (width + 2) for width in widths) + "|", *map(render, rows)]
    )


def failures(table: dict[str, dict[str, Outcome]]) -> list[str]:
    return [
        f"{case_id} / {name}: {outcome.status}: {outcome.message}"
        for case_id, row in table.items()
        for name, outcome in row.items()
        if outcome.status in ("FAIL", "XPASS")
    ]


def expected_failures(table: dict[str, dict[str, Outcome]]) -> list[str]:
    """xfail cells and cells where stock fails too, each with its reason."""
    return [
        f"{case_id} / {name}: {outcome.status}: {outcome.message}"
        for case_id, row in table.items()
        for name, outcome in row.items()
        if outcome.status in ("xfail", "stock fails")
    ]


def main(only: str | None = None) -> int:
    started = time.perf_counter()
    transformers_logging.disable_progress_bar()  # save/load bars would interleave with the table
    modules = [m for m in discover_generated_modules(PROJECT_ROOT) if only is None or only in m.id]
    if not modules:
        print(f"no generated modules match {only!r} under {PROJECT_ROOT}/generated")
        return 2
    cuda_available = torch.cuda.is_available()
    table = run_table(modules, cuda_available)
    print(format_table(table, MODEL_CHECKS))
    print()
    print(format_table(table, ARGUMENT_CHECKS))
    print()
    print(format_table(table, BEHAVIOUR_CHECKS))
    print(
        "cells: status and max |generated - stock| over everything the check compared ('-': structural check, "
        f"done in the module's first row); cpu files: {CPU_FP32.name} (fused-loss files also {CPU_FP32_FUSED_LOSS.name}: "
        f"every loss through the fused path); gpu files: {CUDA_BF16.name} and "
        f"{CUDA_FP32.name}{'' if cuda_available else ' (no CUDA here: their numerical checks are skipped)'}"
    )
    for name, architecture in ARCHITECTURES.items():
        if architecture.no_bf16_comparison and any(m.architecture == name and m.needs_cuda for m in modules):
            print(f"{name}: gpu file compared in fp32 only: {architecture.no_bf16_comparison}")
    problems = failures(table)
    for line in expected_failures(table) + problems:
        print(line)
    print(f"{len(table)} rows, {len(problems)} failures, {time.perf_counter() - started:.1f}s")
    return 1 if problems else 0
