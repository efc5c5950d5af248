"""The causal-LM loss forwards: fused linear cross-entropy (GPU file) and its pure-torch twin (CPU file).

Both are compared with stock HF in fp32: loss, parameter gradients, `num_items_in_batch`,
`logits_to_keep`, already shifted labels, and the no-labels (generation) path. The GPU file's forward
runs Liger's Triton kernel through the Triton interpreter (`TRITON_INTERPRET=1`, a subprocess because
Triton reads the variable when the kernels are defined).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY_DENSE
from transformers import Qwen3Config
from transformers.models.qwen3 import modeling_qwen3 as stock

import generated.qwen3.patched_modeling_qwen3_cpu as cpu_file


REPO = Path(__file__).resolve().parent.parent
CONFIG = dict(
    TINY_DENSE,
    use_cache=False,
)


def make_pair():
    torch.manual_seed(0)
    reference = stock.Qwen3ForCausalLM(Qwen3Config(**CONFIG))
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


# -- CPU file: pure-torch loss with the fused forward's code path -----------------------------------


def test_loss_and_gradients_equal_stock_and_no_logits_are_returned():
    reference, generated = make_pair()
    input_ids, labels = inputs()
    output = assert_same_loss_and_grads(reference, generated, dict(input_ids=input_ids, labels=labels))
    assert output.logits is None


def test_num_items_in_batch_keeps_its_meaning():
    reference, generated = make_pair()
    input_ids, labels = inputs()
    kwargs = dict(input_ids=input_ids, labels=labels, num_items_in_batch=torch.tensor(7))
    output = assert_same_loss_and_grads(reference, generated, kwargs)
    mean = generated(input_ids=input_ids, labels=labels).loss
    valid = (labels[:, 1:] != -100).sum()
    torch.testing.assert_close(output.loss, mean * valid / 7)  # sum over tokens / 7, not the mean


def test_logits_to_keep_restricts_the_loss_to_the_kept_positions():
    reference, generated = make_pair()
    input_ids, labels = inputs()
    kwargs = dict(input_ids=input_ids, labels=labels[:, -6:], logits_to_keep=6)
    assert_same_loss_and_grads(reference, generated, kwargs)


def test_shift_labels_are_used_as_given():
    reference, generated = make_pair()
    input_ids, labels = inputs()
    shifted = torch.nn.functional.pad(labels, (0, 1), value=-100)[:, 1:]
    assert_same_loss_and_grads(
        reference, generated, dict(input_ids=input_ids, shift_labels=shifted), dict(input_ids=input_ids, labels=labels)
    )


def test_without_labels_the_forward_is_upstream_and_generation_works():
    reference, generated = make_pair()
    reference.eval(), generated.eval()
    input_ids, _ = inputs()
    with torch.no_grad():
        output = generated(input_ids=input_ids)
        assert output.loss is None
        assert torch.equal(output.logits, reference(input_ids=input_ids).logits)
        assert torch.equal(generated(input_ids=input_ids, logits_to_keep=1).logits, output.logits[:, -1:])
    prompt = input_ids[:1, :5]
    kwargs = dict(max_new_tokens=6, do_sample=False, use_cache=True)
    assert torch.equal(generated.generate(prompt, **kwargs), reference.generate(prompt, **kwargs))


def test_lm_head_is_never_called_when_labels_are_given():
    _, generated = make_pair()
    calls = []
    generated.lm_head.register_forward_hook(lambda module, args, output: calls.append(output.shape))
    input_ids, labels = inputs()
    generated(input_ids=input_ids, labels=labels).loss.backward()
    assert calls == []
    generated(input_ids=input_ids)
    assert calls == [torch.Size([2, 16, 99])]


def test_gpu_and_cpu_files_share_one_forward_and_differ_in_the_loss_binding():
    """The CPU proof covers the GPU forward: the same text, `linear_cross_entropy` bound to Liger or its twin."""

    def forward_source(module):
        tree = ast.parse(Path(module.__file__).read_text())
        cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Qwen3ForCausalLM")
        return ast.dump(next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "forward"))

    from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

    import generated.qwen3.patched_modeling_qwen3_gpu as gpu_file
    from patchgen.runtime.losses import torch_linear_cross_entropy

    assert forward_source(cpu_file) == forward_source(gpu_file)
    assert gpu_file.linear_cross_entropy is liger_fused_linear_cross_entropy
    assert cpu_file.linear_cross_entropy is torch_linear_cross_entropy


def test_gradient_checkpointing_with_the_loss_forward():
    reference, generated = make_pair()
    reference.train(), generated.train()
    generated.gradient_checkpointing_enable()
    input_ids, labels = inputs()
    assert_same_loss_and_grads(reference, generated, dict(input_ids=input_ids, labels=labels))


# -- GPU file: Liger's fused kernel, run by the Triton interpreter on CPU --------------------------

LIGER_SCRIPT = """
import sys, time, torch
from transformers import Qwen3Config
from transformers.models.qwen3 import modeling_qwen3 as stock
import generated.qwen3.patched_modeling_qwen3_gpu as gpu_file

# The GPU file's forward on a stock model: stock RMSNorm/SwiGLU (Liger's fail in the interpreter) and
# the fused linear cross-entropy of the GPU file.
fused_forward = gpu_file.Qwen3ForCausalLM.forward
torch.manual_seed(0)
model = stock.Qwen3ForCausalLM(Qwen3Config(**{config}))
input_ids = torch.randint(0, 99, (2, 16), generator=torch.Generator().manual_seed(1))
labels = input_ids.clone()
labels[0, :5] = -100
results = {{}}
for name, kwargs in {{
    "mean": dict(labels=labels),
    "num_items": dict(labels=labels, num_items_in_batch=torch.tensor(7)),
    "logits_to_keep": dict(labels=labels[:, -6:], logits_to_keep=6),
}}.items():
    for who, forward in (("stock", type(model).forward), ("fused", fused_forward)):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        output = forward(model, input_ids=input_ids, **kwargs)
        output.loss.backward()
        seconds = time.perf_counter() - start
        grads = {{n: p.grad.clone() for n, p in model.named_parameters()}}
        results[(name, who)] = (output.loss.detach(), output.logits, grads, seconds)
torch.save(results, sys.argv[1])
"""


@pytest.mark.slow
def test_gpu_file_fused_linear_cross_entropy_under_triton_interpreter(tmp_path):
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", LIGER_SCRIPT.format(config=CONFIG), str(tmp_path / "out.pt")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = torch.load(tmp_path / "out.pt")
    for case in ("mean", "num_items", "logits_to_keep"):
        expected_loss, _, expected_grads, _ = results[(case, "stock")]
        loss, logits, grads, seconds = results[(case, "fused")]
        assert logits is None
        torch.testing.assert_close(loss, expected_loss)
        for name, grad in expected_grads.items():
            torch.testing.assert_close(grads[name], grad, msg=lambda m, name=name, case=case: f"{case} {name}: {m}")
        print(f"{case}: Liger FLCE forward+backward under TRITON_INTERPRET took {seconds:.2f}s")
    print(f"subprocess total {time.perf_counter() - started:.1f}s")


def test_upstream_decorators_are_kept():
    source = (REPO / "generated/qwen3/patched_modeling_qwen3_gpu.py").read_text()
    lines = source[source.index("class Qwen3ForCausalLM(") :].splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("def forward("))
    assert [line.strip() for line in lines[at - 2 : at]] == ["@can_return_tuple", "@auto_docstring"]
    _, generated = make_pair()
    input_ids, labels = inputs()
    loss, *rest = generated(input_ids=input_ids, labels=labels, return_dict=False)  # can_return_tuple at work
    torch.testing.assert_close(loss, generated(input_ids=input_ids, labels=labels).loss)
