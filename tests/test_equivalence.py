"""Every generated modeling file computes what its stock transformers module computes.

One test per (generated module, setting, check); the table version is `python -m tests.equivalence`. Checks that
take seconds per family (`Check.table_only`: continuous batching) run in the table only, and under pytest on one
family in tests/test_equivalence_harness.py.
CPU files run in fp32 on CPU (fused-loss files twice: as they are, and with every loss through the fused
path, `+fused-loss`). GPU files run their structural checks (import, build, state-dict keys) on CPU
everywhere, and their numerical checks on CUDA in bf16 and fp32 (marked `gpu`, skipped without CUDA).
"""

from __future__ import annotations

import pytest
import torch

from tests.equivalence.architectures import UnknownArchitectureError
from tests.equivalence.cases import EquivalenceCase, Setting
from tests.equivalence.checks import Check, StockFails
from tests.equivalence.discovery import GeneratedModule, discover_generated_modules
from tests.equivalence.runner import (
    CHECKS,
    PROJECT_ROOT,
    applies,
    cases_for,
    known_difference,
    relevant,
    skip_reason,
)


DISCOVERY_ERRORS: list[str] = []
MODULES = discover_generated_modules(PROJECT_ROOT, errors=DISCOVERY_ERRORS)


def _parameters():
    for module in MODULES:
        try:
            cases = cases_for(module)
        except UnknownArchitectureError:
            continue  # tests/test_families.py fails for it, once, naming the file and the table
        for case in cases:
            for check in CHECKS:
                if not applies(case, check) or not relevant(case, check) or check.table_only:
                    continue
                marks = [pytest.mark.gpu] if check.numerical and case.setting.device == "cuda" else []
                reason = known_difference(case.id, check)
                if reason:
                    marks.append(pytest.mark.xfail(reason=reason, strict=True))
                yield pytest.param(module, case.setting, check, id=f"{case.id}-{check.name}", marks=marks)


@pytest.fixture(scope="module")
def cases():
    """EquivalenceCase per (module, setting), shared by all its checks: models and forward results built once."""
    built: dict[str, EquivalenceCase] = {}
    yield built
    built.clear()


def test_every_generated_file_is_testable():
    """A generated file without a Source line fails here, never silently skipped. One without a tiny config
    fails once, in tests/test_families.py (naming the file and the table), and is left out of the rows."""
    assert not DISCOVERY_ERRORS, "\n".join(DISCOVERY_ERRORS)
    assert MODULES, f"no generated/*/patched_modeling_*.py under {PROJECT_ROOT}"


@pytest.mark.parametrize(("module", "setting", "check"), list(_parameters()))
def test_generated_matches_stock(
    cases: dict[str, EquivalenceCase], module: GeneratedModule, setting: Setting, check: Check
):
    case = EquivalenceCase(module, setting)
    reason = skip_reason(case, check, torch.cuda.is_available())
    if reason:
        pytest.skip(reason)
    case = cases.setdefault(case.id, case)
    with case.running():
        try:
            check.run(case)
        except StockFails as unsupported:
            pytest.skip(f"stock fails too: {unsupported}")
