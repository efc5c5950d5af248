"""The causal-LM loss forward: its two paths (fused kernel, upstream's loss), the switch between them, its kernels.

With labels the forward computes `linear_cross_entropy(hidden, lm_head.weight, labels)` for many logits and
upstream's `lm_head` + `loss_function` for few (`patchgen.runtime.losses.use_fused_linear_cross_entropy`).
The tests of the forward run both paths (the `path` fixture sets the threshold so one is taken) on the
Qwen3 CPU file, whose `linear_cross_entropy` is the plain-torch twin of the GPU kernels, against stock HF
in fp32: loss, every gradient, `num_items_in_batch`, `logits_to_keep` (int and 1-D index tensor, with and
without labels), already shifted labels, generation. The kernels themselves are compared with
materialised cross-entropy; the GPU file runs end to end on CPU with Liger's rope (and the Liger loss
binding) under the Triton interpreter (`TRITON_INTERPRET=1`, a subprocess: Triton reads it when the
kernels are defined).

Equality: the CPU file computes upstream's ops on the same shapes, so logits are compared bitwise with
stock called the same way (same `logits_to_keep`: a different matmul shape may round differently, e.g.
on AMD EPYC). Losses and gradients use `assert_close`'s fp32 defaults: the fused path reshapes before
the matmul and the chunked kernel sums per chunk, which moves results by fp32 rounding only.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_DENSE
from transformers import Qwen3Config
from transformers.models.qwen3 import modeling_qwen3 as stock

import generated.qwen3.patched_modeling_qwen3_cpu as cpu_file
from patchgen.runtime import losses


REPO = Path(__file__).resolve().parent.parent
CONFIG = dict(TINY_DENSE, use_cache=False)
PATHS = {"fused": 0, "upstream": 2**62}  # FUSED_LINEAR_CROSS_ENTROPY_MIN_LOGITS that sends every call one way


@pytest.fixture(params=list(PATHS))
def path(request, monkeypatch) -> str:
    monkeypatch.setattr(losses, "FUSED_LINEAR_CROSS_ENTROPY_MIN_LOGITS", PATHS[request.param])
    return request.param


def make_pair():
    torch.manual_seed(0)
    reference = stock.Qwen3ForCausalLM(Qwen3Config(**CONFIG))
    with torch.no_grad():  # norm weights away from 1, so a norm that dropped its weight would show
        for parameter in reference.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    generated = cpu_file.Qwen3ForCausalLM(Qwen3Config(**CONFIG))
    generated.load_state_dict(reference.state_dict())
    return reference, generated


def inputs():
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(0, 99, (2, 16), generator=generator)
    labels = input_ids.clone()
    labels[0, :5] = -100
    return input_ids, labels


def loss_and_grads(model, **kwargs):
    model.zero_grad(set_to_none=True)
    output = model(**kwargs)
    output.loss.backward()
    return output, {name: p.grad.clone() for name, p in model.named_parameters()}


def assert_same_loss_and_grads(reference, generated, generated_kwargs, reference_kwargs=None):
    expected, expected_grads = loss_and_grads(reference, **(reference_kwargs or generated_kwargs))
    output, grads = loss_and_grads(generated, **generated_kwargs)
    torch.testing.assert_close(output.loss, expected.loss)
    for name, grad in expected_grads.items():
        torch.testing.assert_close(grads[name], grad, msg=lambda m, name=name: f"{name}: {m}")
    return output


def lm_head_calls(model) -> list[torch.Size]:
    calls = []
    model.lm_head.register_forward_hook(lambda module, args, output: calls.append(output.shape))
    return calls


# -- the forward, both paths ------------------------------------------------------------------------


def test_loss_and_gradients_equal_stock_and_no_logits_are_returned(path):
    reference, generated = make_pair()
    input_ids, labels = inputs()
    output = assert_same_loss_and_grads(reference, generated, dict(input_ids=input_ids, labels=labels))
    assert output.logits is None


def test_the_threshold_picks_the_path(path):
    """Fused: the logits are never made by lm_head; upstream: lm_head makes them, as stock does."""
    _, generated = make_pair()
    calls = lm_head_calls(generated)
    input_ids, labels = inputs()
    generated(input_ids=input_ids, labels=labels).loss.backward()
    assert calls == ([] if path == "fused" else [torch.Size([2, 16, 99])])


def test_the_switch_counts_logits_and_leaves_a_distributed_weight_to_upstream(monkeypatch):
    hidden, weight = torch.zeros(2, 8, 4), torch.zeros(99, 4)  # 16 tokens x 99 = 1584 logits
    monkeypatch.setattr(losses, "FUSED_LINEAR_CROSS_ENTROPY_MIN_LOGITS", 1584)
    assert losses.use_fused_linear_cross_entropy(hidden, weight)
    monkeypatch.setattr(losses, "FUSED_LINEAR_CROSS_ENTROPY_MIN_LOGITS", 1585)
    assert not losses.use_fused_linear_cross_entropy(hidden, weight)
    # the DTensor case runs for real in tests/test_tensor_parallel.py (2 gloo ranks)


def test_the_threshold_is_read_from_the_environment():
    code = "from patchgen.runtime import losses; print(losses.FUSED_LINEAR_CROSS_ENTROPY_MIN_LOGITS)"
    env = {**os.environ, "PATCHGEN_FUSED_LOSS_MIN_LOGITS": "12345", "PYTHONPATH": str(REPO)}
    completed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert completed.stdout.strip() == "12345", completed.stderr[-2000:]


def test_num_items_in_batch_keeps_its_meaning(path):
    reference, generated = make_pair()
    input_ids, labels = inputs()
    kwargs = dict(input_ids=input_ids, labels=labels, num_items_in_batch=torch.tensor(7))
    output = assert_same_loss_and_grads(reference, generated, kwargs)
    mean = generated(input_ids=input_ids, labels=labels).loss
    valid = (labels[:, 1:] != -100).sum()
    torch.testing.assert_close(output.loss, mean * valid / 7)  # sum over tokens / 7, not the mean


LOGITS_TO_KEEP = {
    "int 0 (all)": 0,
    "int 6": 6,
    "int 1": 1,
    "1-D index tensor": torch.tensor([1, 4, 9, 15]),
}


@pytest.mark.parametrize("keep", [key for key in LOGITS_TO_KEEP if key != "int 1"])  # 1 position: nothing to predict
def test_logits_to_keep_with_labels_covers_the_kept_positions_as_upstream(path, keep):
    """Upstream slices the hidden states, then its loss shifts the labels given for the kept positions."""
    reference, generated = make_pair()
    input_ids, labels = inputs()
    logits_to_keep = LOGITS_TO_KEEP[keep]
    positions = torch.arange(16)[slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep]
    kwargs = dict(input_ids=input_ids, labels=labels[:, positions], logits_to_keep=logits_to_keep)
    assert_same_loss_and_grads(reference, generated, kwargs)


@pytest.mark.parametrize("keep", list(LOGITS_TO_KEEP))
def test_logits_to_keep_without_labels_gives_upstream_logits(keep):
    reference, generated = make_pair()
    reference.eval(), generated.eval()
    input_ids, _ = inputs()
    with torch.no_grad():
        expected = reference(input_ids=input_ids, logits_to_keep=LOGITS_TO_KEEP[keep]).logits
        actual = generated(input_ids=input_ids, logits_to_keep=LOGITS_TO_KEEP[keep]).logits
    assert torch.equal(actual, expected)  # same ops on the same shapes as stock


def test_shift_labels_are_used_as_given(path):
    """With `labels` and `shift_labels` the loss comes from `shift_labels` (as upstream's ForCausalLMLoss): the
    `labels` passed here differ from the ones `shifted` was made from, and the loss is still the latter's."""
    reference, generated = make_pair()
    input_ids, labels = inputs()
    shifted = torch.nn.functional.pad(labels, (0, 1), value=-100)[:, 1:]  # a non-contiguous view
    assert_same_loss_and_grads(
        reference,
        generated,
        dict(input_ids=input_ids, labels=input_ids, shift_labels=shifted),
        dict(input_ids=input_ids, labels=labels),
    )


def test_shift_labels_without_labels_give_no_loss_as_upstream(path):
    reference, generated = make_pair()
    input_ids, labels = inputs()
    shifted = torch.nn.functional.pad(labels, (0, 1), value=-100)[:, 1:].contiguous()
    expected = reference(input_ids=input_ids, shift_labels=shifted)
    output = generated(input_ids=input_ids, shift_labels=shifted)
    assert expected.loss is None and output.loss is None
    assert torch.equal(output.logits, expected.logits)


def test_a_callers_ignore_index_is_honoured_as_upstream(path):
    reference, generated = make_pair()
    input_ids, _ = inputs()
    ignored = int(input_ids[0, 3])  # labels equal to it (and the padded last position) add nothing, as upstream
    kwargs = dict(input_ids=input_ids, labels=input_ids, ignore_index=ignored)
    assert_same_loss_and_grads(reference, generated, kwargs)
    plain, _ = loss_and_grads(generated, input_ids=input_ids, labels=input_ids)
    assert not torch.allclose(plain.loss, generated(**kwargs).loss)  # so the test can fail


@pytest.mark.parametrize("keep", ["int 6", "1-D index tensor"])
def test_labels_that_do_not_match_the_kept_positions_raise_upstreams_error(path, keep):
    reference, generated = make_pair()
    input_ids, labels = inputs()
    kwargs = dict(input_ids=input_ids, labels=labels, logits_to_keep=LOGITS_TO_KEEP[keep])
    with pytest.raises(ValueError) as expected:
        reference(**kwargs)
    with pytest.raises(ValueError) as actual:
        generated(**kwargs)
    assert str(actual.value) == str(expected.value)
    assert str(actual.value).startswith("Expected input batch_size (")


def test_without_labels_the_forward_is_upstream_and_generation_works():
    reference, generated = make_pair()
    reference.eval(), generated.eval()
    input_ids, _ = inputs()
    with torch.no_grad():
        output = generated(input_ids=input_ids)
        assert output.loss is None
        assert torch.equal(output.logits, reference(input_ids=input_ids).logits)
    prompt = input_ids[:1, :5]
    kwargs = dict(max_new_tokens=6, do_sample=False, use_cache=True)
    assert torch.equal(generated.generate(prompt, **kwargs), reference.generate(prompt, **kwargs))


def test_an_evaluation_loss_under_no_grad_equals_stock(path):
    reference, generated = make_pair()
    input_ids, labels = inputs()
    with torch.no_grad():
        expected = reference(input_ids=input_ids, labels=labels).loss
        actual = generated(input_ids=input_ids, labels=labels).loss
    torch.testing.assert_close(actual, expected)


def test_gradient_checkpointing_with_the_loss_forward(path):
    reference, generated = make_pair()
    reference.train(), generated.train()
    generated.gradient_checkpointing_enable()
    input_ids, labels = inputs()
    assert_same_loss_and_grads(reference, generated, dict(input_ids=input_ids, labels=labels))


def forward_source(module) -> str:
    tree = ast.parse(Path(module.__file__).read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name.endswith("ForCausalLM"))
    forward = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "forward")
    return ast.dump(forward)


def test_gpu_and_cpu_files_share_one_forward_and_differ_in_the_loss_binding():
    """The CPU proof covers the GPU forward: the same text, `linear_cross_entropy` bound to a kernel or its twin."""
    import generated.qwen3.patched_modeling_qwen3_gpu as gpu_file

    assert forward_source(cpu_file) == forward_source(gpu_file)
    assert gpu_file.linear_cross_entropy is losses.fastest_linear_cross_entropy
    assert cpu_file.linear_cross_entropy is losses.torch_linear_cross_entropy
    assert gpu_file.use_fused_linear_cross_entropy is cpu_file.use_fused_linear_cross_entropy


def test_upstream_decorators_are_kept():
    source = (REPO / "generated/qwen3/patched_modeling_qwen3_gpu.py").read_text()
    lines = source[source.index("class Qwen3ForCausalLM(") :].splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("def forward("))
    assert [line.strip() for line in lines[at - 2 : at]] == ["@can_return_tuple", "@auto_docstring"]
    _, generated = make_pair()
    input_ids, labels = inputs()
    loss, *rest = generated(input_ids=input_ids, labels=labels, return_dict=False)  # can_return_tuple at work
    torch.testing.assert_close(loss, generated(input_ids=input_ids, labels=labels).loss)


# -- the kernels ------------------------------------------------------------------------------------


def kernel_inputs(rows=23, hidden=16, vocab=50, bias=False):
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(rows, hidden, generator=generator, requires_grad=True)
    weight = torch.randn(vocab, hidden, generator=generator, requires_grad=True)
    b = torch.randn(vocab, generator=generator, requires_grad=True) if bias else None
    target = torch.randint(0, vocab, (rows,), generator=generator)
    target[[0, 5, 6, 22]] = -100
    return x, weight, b, target


def materialised(x, weight, b, target, reduction):
    logits = torch.nn.functional.linear(x, weight, b).float()
    return torch.nn.functional.cross_entropy(logits, target, ignore_index=-100, reduction=reduction)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("bias", [False, True], ids=["no bias", "bias"])
def test_chunked_kernel_equals_materialised_cross_entropy(monkeypatch, reduction, bias):
    # 7 rows per chunk: 23 rows make 4 chunks, the last one ragged; rows 5 and 6 (ignored) span two chunks
    monkeypatch.setattr(losses, "CHUNKED_LINEAR_CROSS_ENTROPY_CHUNK_LOGITS", 7 * 50)
    x, weight, b, target = kernel_inputs(bias=bias)
    leaves = [t for t in (x, weight, b) if t is not None]
    expected = materialised(x, weight, b, target, reduction)
    expected_grads = torch.autograd.grad(3 * expected, leaves)  # an incoming gradient other than 1 is applied
    loss = losses.chunked_linear_cross_entropy(x, weight, target, b, reduction=reduction)
    grads = torch.autograd.grad(3 * loss, leaves)
    torch.testing.assert_close(loss, expected)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad)


def test_chunked_kernel_in_bf16_is_as_close_to_fp32_as_materialised_bf16():
    """bf16 rounds at other points than stock; its error against fp32 stays within 2x stock bf16's own."""
    x, weight, _, target = kernel_inputs(rows=64, hidden=32, vocab=97)
    reference = [t.detach().clone().requires_grad_() for t in (x, weight)]
    fp32_loss = materialised(*reference, None, target, "mean")
    fp32_grads = torch.autograd.grad(fp32_loss, reference)
    results = {}
    for name, kernel in (("stock", lambda a, w: materialised(a, w, None, target, "mean")), ("chunked", None)):
        a, w = (t.detach().to(torch.bfloat16).requires_grad_() for t in (x, weight))
        loss = kernel(a, w) if kernel else losses.chunked_linear_cross_entropy(a, w, target)
        results[name] = (loss, *torch.autograd.grad(loss, [a, w]))
    for index, fp32 in enumerate((fp32_loss, *fp32_grads)):
        stock_error = (results["stock"][index].float() - fp32).abs().max()
        chunked_error = (results["chunked"][index].float() - fp32).abs().max()
        assert chunked_error <= 2 * stock_error + 1e-3 * fp32.abs().max(), (index, chunked_error, stock_error)


def test_chunked_kernel_under_no_grad_computes_the_loss_only():
    x, weight, _, target = kernel_inputs()
    with torch.no_grad():
        loss = losses.chunked_linear_cross_entropy(x, weight, target)
    assert loss.grad_fn is None
    torch.testing.assert_close(loss, materialised(x, weight, None, target, "mean").detach())


def test_chunked_kernel_refuses_a_second_backward_instead_of_scaling_twice():
    x, weight, _, target = kernel_inputs()
    loss = losses.chunked_linear_cross_entropy(x, weight, target)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_chunked_kernel_refuses_an_unsupported_reduction():
    x, weight, _, target = kernel_inputs()
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum', not 'none'"):
        losses.chunked_linear_cross_entropy(x, weight, target, reduction="none")


# -- the GPU files' kernel: Liger's or the chunked one, by Liger's chunk rows -----------------------------

# The four points measured per op on an H200 (patchgen/runtime/losses.py, LIGER_MIN_CHUNK_ROWS): tokens, vocab,
# hidden, Liger's chunk rows, and the kernel that was faster there.
MEASURED_LOSS_POINTS = {
    "qwen3-0.6b 8192": (8192, 151936, 1024, 64, "chunked"),
    "qwen3-0.6b 32768": (32768, 151936, 1024, 256, "liger"),
    "llama-3.2-1b 8192": (8192, 128256, 2048, 256, "liger"),
    "llama-3.2-1b 32768": (32768, 128256, 2048, 1024, "liger"),
}


def liger_kernel_chunk_rows(tokens: int, vocab: int, hidden: int) -> int:
    """Liger's own lines (liger_kernel/ops/fused_linear_cross_entropy.py, 0.8.5), with triton's helpers."""
    import triton

    inc_factor = triton.cdiv(vocab, 1 * hidden)
    chunk_size = triton.next_power_of_2(triton.cdiv(tokens, inc_factor))
    return min(chunk_size, tokens)


@pytest.mark.parametrize("point", list(MEASURED_LOSS_POINTS))
def test_liger_chunk_rows_follow_ligers_formula_at_the_measured_points(point):
    tokens, vocab, hidden, rows, _ = MEASURED_LOSS_POINTS[point]
    assert losses.liger_chunk_rows(tokens, vocab, hidden) == liger_kernel_chunk_rows(tokens, vocab, hidden) == rows


@pytest.mark.parametrize(
    ("tokens", "vocab", "hidden"), [(1, 151936, 1024), (100, 50, 16), (3000, 32000, 4096), (4097, 128256, 3072)]
)
def test_liger_chunk_rows_follow_ligers_formula_off_the_grid(tokens, vocab, hidden):
    assert losses.liger_chunk_rows(tokens, vocab, hidden) == liger_kernel_chunk_rows(tokens, vocab, hidden)


@pytest.mark.parametrize("point", list(MEASURED_LOSS_POINTS))
def test_the_kernel_rule_picks_the_measured_winner(point):
    tokens, vocab, hidden, _, winner = MEASURED_LOSS_POINTS[point]
    expected = {"chunked": losses.chunked_linear_cross_entropy, "liger": losses.liger_linear_cross_entropy}[winner]
    assert losses.linear_cross_entropy_kernel_for(tokens, vocab, hidden) is expected


def test_the_fastest_kernel_is_the_chunked_one_off_cuda():
    """On CPU both branches' shapes run the chunked kernel: the same values, bit for bit (Liger's is Triton)."""
    for rows, vocab, hidden in ((23, 50, 16), (600, 50, 32)):  # Liger's chunks: 8 rows, then 256 rows
        x, weight, _, target = kernel_inputs(rows=rows, hidden=hidden, vocab=vocab)
        fastest = losses.fastest_linear_cross_entropy(x, weight, target, reduction="sum")
        chunked = losses.chunked_linear_cross_entropy(x, weight, target, reduction="sum")
        assert torch.equal(fastest, chunked)
        assert not torch.equal(fastest, losses.chunked_linear_cross_entropy(x, weight, target))  # "mean" differs
    assert losses.liger_chunk_rows(600, 50, 32) >= losses.LIGER_MIN_CHUNK_ROWS  # so the second shape counts


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA for Liger's kernel")
@pytest.mark.parametrize("rows", [23, 600])
def test_the_fastest_kernel_on_cuda_returns_the_selected_kernels_loss(rows):
    x, weight, _, target = (t.cuda() if t is not None else t for t in kernel_inputs(rows=rows, hidden=32, vocab=50))
    selected = losses.linear_cross_entropy_kernel_for(rows, 50, 32)
    assert selected is (losses.liger_linear_cross_entropy if rows == 600 else losses.chunked_linear_cross_entropy)
    torch.testing.assert_close(losses.fastest_linear_cross_entropy(x, weight, target), selected(x, weight, target))


def test_the_liger_kernel_says_what_to_install_when_liger_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "liger_kernel.transformers.functional", None)
    x, weight, _, target = kernel_inputs()
    with pytest.raises(ImportError, match=r"needs liger-kernel==0\.8\.5 \(pip install 'patchgen\[gpu\]'\)"):
        losses.liger_linear_cross_entropy(x, weight, target)


def test_cce_kernel_refuses_fp32_training_in_one_line():
    x, weight, _, target = kernel_inputs()
    with pytest.raises(TypeError, match=r"backward supports bf16/fp16 only, not torch.float32"):
        losses.cce_linear_cross_entropy(x, weight, target)


def test_cce_kernel_says_what_to_install_when_cut_cross_entropy_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "cut_cross_entropy", None)  # what `import` sees when it is not installed
    x, weight, _, target = kernel_inputs()
    with pytest.raises(ImportError, match=r"needs cut-cross-entropy==25\.1\.1 \(pip install 'patchgen\[gpu\]'\)"):
        losses.cce_linear_cross_entropy(x.detach().bfloat16(), weight.detach().bfloat16(), target)


# -- the GPU file on CPU: Liger's kernels under the Triton interpreter ---------------------------------

GPU_FILE_SCRIPT = """
import sys, torch
from transformers import Qwen3Config
from transformers.models.qwen3 import modeling_qwen3 as stock
import generated.qwen3.patched_modeling_qwen3_gpu as gpu_file
from patchgen.runtime import losses

torch.manual_seed(0)
reference = stock.Qwen3ForCausalLM(Qwen3Config(**{config}))
with torch.no_grad():
    for parameter in reference.parameters():
        parameter.add_(0.05 * torch.randn_like(parameter))
# Liger's RMSNorm and SwiGLU fail under the Triton interpreter (/work/shared/NOTES-upstream.md; their equivalence
# is a GPU test): the model is built with upstream's classes for those two, the rest is the GPU file's code
gpu_file.Qwen3RMSNorm, gpu_file.Qwen3MLP = stock.Qwen3RMSNorm, stock.Qwen3MLP
model = gpu_file.Qwen3ForCausalLM(Qwen3Config(**{config}))  # Liger rope interpreted
model.load_state_dict(reference.state_dict())
input_ids = torch.randint(0, 99, (2, 16), generator=torch.Generator().manual_seed(1))
labels = input_ids.clone()
labels[0, :5] = -100
results = {{}}
def run(key, model, **kwargs):
    model.zero_grad(set_to_none=True)
    output = model(input_ids=input_ids, **kwargs)
    output.loss.backward()
    results[key] = (output.loss.detach(), output.logits, {{n: p.grad.clone() for n, p in model.named_parameters()}})
cases = {{
    "mean": dict(labels=labels),
    "num_items": dict(labels=labels, num_items_in_batch=torch.tensor(7)),
    "logits_to_keep": dict(labels=labels[:, -6:], logits_to_keep=6),
}}
for case, kwargs in cases.items():
    run((case, "stock"), reference, **kwargs)
    for path, threshold in (("upstream", 2**62), ("fastest", 0)):  # fastest: the chunked kernel off CUDA
        losses.FUSED_LINEAR_CROSS_ENTROPY_MIN_LOGITS = threshold
        run((case, path), model, **kwargs)
    gpu_file.linear_cross_entropy = losses.liger_linear_cross_entropy  # fastest's other branch, on its own
    run((case, "liger"), model, **kwargs)
    gpu_file.linear_cross_entropy = losses.fastest_linear_cross_entropy
torch.save(results, sys.argv[1])
"""


@pytest.mark.slow
def test_gpu_file_runs_on_cpu_with_liger_rope_and_each_loss_binding_equal_stock(tmp_path):
    """The Qwen3 GPU file itself (upstream's norm and MLP classes: see the script), Liger's rope, every loss path
    and kernel (Liger's loss through `liger_linear_cross_entropy`, interpreted)."""
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(REPO)}
    completed = subprocess.run(
        [sys.executable, "-c", GPU_FILE_SCRIPT.format(config=CONFIG), str(tmp_path / "out.pt")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = torch.load(tmp_path / "out.pt")
    for case in ("mean", "num_items", "logits_to_keep"):
        expected_loss, _, expected_grads = results[(case, "stock")]
        for path in ("upstream", "fastest", "liger"):
            loss, logits, grads = results[(case, path)]
            assert logits is None
            torch.testing.assert_close(loss, expected_loss)
            for name, grad in expected_grads.items():
                torch.testing.assert_close(
                    grads[name], grad, msg=lambda m, n=name, c=case, p=path: f"{c} {p} {n}: {m}"
                )
