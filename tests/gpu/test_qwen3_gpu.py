"""GPU tests of the generated Qwen3 GPU file (skipped without CUDA); tests/gpu/check_qwen3_gpu.py prints the numbers."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (Liger's Triton kernels)"),
]


@pytest.fixture
def check():
    """The check script as a module, its failure list emptied for each test."""
    path = Path(__file__).with_name("check_qwen3_gpu.py")
    spec = importlib.util.spec_from_file_location("check_qwen3_gpu", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    module.failures.clear()
    return module


def test_generated_gpu_file_matches_stock_fp32(check):
    check.check_equivalence_fp32()
    assert check.failures == []


def test_generated_gpu_file_matches_stock_bf16(check):
    check.check_equivalence_bf16()
    assert check.failures == []


def test_fused_loss_lowers_peak_memory(check):
    check.check_memory()
    assert check.failures == []


def test_training_example_runs_on_one_gpu(check):
    check.check_training_example()
    assert check.failures == []
