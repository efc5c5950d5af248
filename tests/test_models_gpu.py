"""The Liger (GPU) files of every family (tests/families.py) against stock HF, on a CUDA GPU.

    python3 tests/test_models_gpu.py     # from the repo root: prints every difference, exit 1 on failure
    pytest -m gpu tests/test_models_gpu.py

As a script it needs only torch, transformers==5.17.0, triton and liger-kernel (the repo root goes on
sys.path for `generated/` and `patchgen.runtime`). Per family, same random weights, fp32: logits
without labels, the loss with labels and every parameter gradient. The Liger kernels differ from
eager PyTorch only in reduction order, hence the small tolerances (printed with the results).
"""

from __future__ import annotations

import sys
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent
for path in (REPO, REPO / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import torch  # noqa: E402
from tiny_families import FAMILIES, stock_and_patched  # noqa: E402


LOGITS_TOL = LOSS_TOL = dict(rtol=1e-4, atol=1e-4)
GRAD_TOL = dict(rtol=1e-3, atol=1e-4)


def compare_on_gpu(model: str) -> dict[str, float]:
    """Largest absolute differences between the Liger file and stock; raises AssertionError past tolerance."""
    stock, patched = stock_and_patched(model, "gpu")
    stock, patched = stock.cuda(), patched.cuda()
    generator = torch.Generator("cuda").manual_seed(3)
    input_ids = torch.randint(1, 99, (2, 16), device="cuda", generator=generator)
    logits, expected_logits = patched(input_ids).logits, stock(input_ids).logits
    torch.testing.assert_close(logits, expected_logits, **LOGITS_TOL)
    stock_loss = stock(input_ids, labels=input_ids).loss
    patched_loss = patched(input_ids, labels=input_ids).loss
    torch.testing.assert_close(patched_loss, stock_loss, **LOSS_TOL)
    stock_loss.backward()
    patched_loss.backward()
    stock_parameters = dict(stock.named_parameters())
    grad_diff = 0.0
    for name, parameter in patched.named_parameters():
        torch.testing.assert_close(parameter.grad, stock_parameters[name].grad, **GRAD_TOL, msg=name)
        grad_diff = max(grad_diff, (parameter.grad - stock_parameters[name].grad).abs().max().item())
    return {
        "logits": (logits - expected_logits).abs().max().item(),
        "loss": (patched_loss - stock_loss).abs().item(),
        "grads": grad_diff,
    }


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing checked")
        return 1
    print(f"{torch.cuda.get_device_name()}; tolerances logits/loss {LOGITS_TOL}, gradients {GRAD_TOL}")
    failed = 0
    for model in sorted(FAMILIES):
        try:
            diffs = compare_on_gpu(model)
        except Exception as exc:  # noqa: BLE001 - report every family, then fail
            failed += 1
            print(f"FAIL {model}: {type(exc).__name__}: {' '.join(str(exc).split())[:400]}")
            continue
        print(f"ok   {model}: max |diff| " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    return 1 if failed else 0


try:
    import pytest
except ImportError:  # a GPU machine running this file as a script
    pytest = None

if pytest is not None:

    @pytest.mark.gpu
    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU for the Liger kernels")
    @pytest.mark.parametrize("model", sorted(FAMILIES))
    def test_gpu_variant_matches_stock_on_gpu(model):
        compare_on_gpu(model)


if __name__ == "__main__":
    sys.exit(main())
