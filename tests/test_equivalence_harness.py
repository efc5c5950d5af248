"""The equivalence harness itself: it finds files, fails loudly on unknown ones, and catches broken generated code.

The mutants are copies of the generated Qwen3 CPU file with one bug appended; each must fail the check meant
to catch that bug (and only the checks that can see it), so a harness that always passes would fail here.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.equivalence import runner
from tests.equivalence.architectures import UnknownArchitectureError, architecture_for
from tests.equivalence.arguments import ARGUMENT_CHECKS
from tests.equivalence.behaviours import BEHAVIOUR_CHECKS
from tests.equivalence.cases import BF16, CPU_FP32, CPU_FP32_FUSED_LOSS, FP32, EquivalenceCase
from tests.equivalence.checks import CHECKS_BY_NAME, Mismatch
from tests.equivalence.discovery import (
    GeneratedFileError,
    GeneratedModule,
    discover_generated_modules,
    read_generated_module,
)
from tests.equivalence.runner import PROJECT_ROOT


QWEN3_CPU = Path("generated/qwen3/patched_modeling_qwen3_cpu.py")
HEADER = "# Source: transformers.models.{name}.modeling_{name}\n"


def _write_generated(root: Path, model: str, variant: str, header: str) -> Path:
    path = root / "generated" / model / f"patched_modeling_{model}_{variant}.py"
    path.parent.mkdir(parents=True)
    path.write_text(f"# AUTO-GENERATED FILE\n{header}\nimport torch\n")
    return path


def test_discovery_reads_source_module_and_variant_from_the_header():
    modules = {module.id: module for module in discover_generated_modules(PROJECT_ROOT)}
    qwen3_cpu = modules["qwen3/cpu"]
    assert qwen3_cpu.import_name == "generated.qwen3.patched_modeling_qwen3_cpu"
    assert qwen3_cpu.source_module == "transformers.models.qwen3.modeling_qwen3"
    assert (qwen3_cpu.architecture, qwen3_cpu.variant, qwen3_cpu.needs_cuda) == ("qwen3", "cpu", False)
    assert modules["qwen3/gpu"].needs_cuda


def test_fused_loss_files_also_run_on_cpu_with_every_loss_through_the_fused_kernel():
    """Their fused path never runs at the tiny models' sizes unless forced: a second CPU row forces it."""
    modules = {module.id: module for module in discover_generated_modules(PROJECT_ROOT)}
    assert modules["qwen3/cpu"].fused_loss and modules["llama/gpu"].fused_loss
    assert not modules["gemma3/cpu"].fused_loss and not modules["qwen3_moe/cpu"].fused_loss  # upstream's forward
    assert runner.settings_for(modules["qwen3/cpu"]) == [CPU_FP32, CPU_FP32_FUSED_LOSS]
    assert runner.settings_for(modules["gemma3/cpu"]) == [CPU_FP32]
    from patchgen.runtime import losses

    case = EquivalenceCase(modules["qwen3/cpu"], CPU_FP32_FUSED_LOSS)
    assert case.id == "qwen3/cpu@fp32+fused-loss"
    with case.running():
        assert case.generated_module.linear_cross_entropy is losses.fastest_linear_cross_entropy
        assert losses.use_fused_linear_cross_entropy(torch.zeros(1, 1, 4), torch.zeros(3, 4))
    assert case.generated_module.linear_cross_entropy is losses.torch_linear_cross_entropy  # restored
    assert not losses.use_fused_linear_cross_entropy(torch.zeros(1, 1, 4), torch.zeros(3, 4))


def test_missing_source_line_fails_naming_the_file(tmp_path: Path):
    _write_generated(tmp_path, "qwen3", "cpu", header="# Config: models.x\n")
    with pytest.raises(GeneratedFileError, match=r"generated/qwen3/patched_modeling_qwen3_cpu.py: no '# Source:"):
        discover_generated_modules(tmp_path)
    errors: list[str] = []
    assert discover_generated_modules(tmp_path, errors=errors) == []
    assert len(errors) == 1 and "regenerate" in errors[0]


def test_file_without_variant_suffix_fails(tmp_path: Path):
    path = tmp_path / "generated" / "qwen3" / "patched_modeling_qwen3.py"
    path.parent.mkdir(parents=True)
    path.write_text(HEADER.format(name="qwen3") + "import torch\n")
    with pytest.raises(GeneratedFileError, match="does not end in _cpu or _gpu"):
        discover_generated_modules(tmp_path)


def test_unknown_architecture_fails_loudly_in_pytest_and_in_the_table(tmp_path: Path):
    _write_generated(tmp_path, "falcon", "cpu", header=HEADER.format(name="falcon"))
    [module] = discover_generated_modules(tmp_path)
    assert module.architecture == "falcon"
    with pytest.raises(UnknownArchitectureError, match=r"'falcon'.*add an entry to TABLE in tests/families.py"):
        architecture_for(module)
    row = runner.run_table([module], cuda_available=False)["falcon/cpu"]
    assert {outcome.status for outcome in row.values()} == {"FAIL"}  # every cell fails, none is skipped


# -- mutants ---------------------------------------------------------------------------------------------------
SCALED_NORM = """
_upstream_norm_forward = Qwen3RMSNorm.forward
Qwen3RMSNorm.forward = lambda self, hidden_states: _upstream_norm_forward(self, hidden_states) * 1.001
"""
IGNORES_ATTENTION_MASK = """
_upstream_model_forward = Qwen3Model.forward
def _forward_without_mask(self, *args, attention_mask=None, **kwargs):
    return _upstream_model_forward(self, *args, **kwargs)
Qwen3Model.forward = _forward_without_mask
"""
EXTRA_PARAMETER = """
_upstream_mlp_init = Qwen3MLP.__init__
def _init_with_extra_parameter(self, config):
    _upstream_mlp_init(self, config)
    self.extra_scale = nn.Parameter(torch.ones(1))
Qwen3MLP.__init__ = _init_with_extra_parameter
"""
# A causal-LM forward that still slices like transformers 5.17 where stock moved on: 2-D positions raise.
NO_2D_LOGITS_TO_KEEP = """
_upstream_lm_forward = Qwen3ForCausalLM.forward
def _forward_without_2d_positions(self, *args, logits_to_keep=0, **kwargs):
    if isinstance(logits_to_keep, torch.Tensor) and logits_to_keep.ndim == 2 and logits_to_keep.dtype != torch.bool:
        raise IndexError("too many indices for tensor of dimension 3")
    return _upstream_lm_forward(self, *args, logits_to_keep=logits_to_keep, **kwargs)
Qwen3ForCausalLM.forward = _forward_without_2d_positions
"""
TENSOR_LOGITS_TO_KEEP_IGNORED = """
_upstream_lm_forward = Qwen3ForCausalLM.forward
def _forward_int_keep_only(self, *args, logits_to_keep=0, **kwargs):
    return _upstream_lm_forward(self, *args, logits_to_keep=logits_to_keep if isinstance(logits_to_keep, int) else 0, **kwargs)
Qwen3ForCausalLM.forward = _forward_int_keep_only
"""
NUM_ITEMS_DROPPED = """
_upstream_lm_forward = Qwen3ForCausalLM.forward
def _forward_mean_loss(self, *args, **kwargs):
    kwargs.pop("num_items_in_batch", None)
    return _upstream_lm_forward(self, *args, **kwargs)
Qwen3ForCausalLM.forward = _forward_mean_loss
"""
RE_EXPORTS_STOCK = "\nfrom transformers.models.qwen3.modeling_qwen3 import Qwen3ForCausalLM  # noqa\n"
EAGER_ONLY = """
def _always_default(implementation, default):
    return default
"""


def _mutant_case(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    appended: str = "",
    replace: tuple[str, str] | None = None,
) -> EquivalenceCase:
    text = (PROJECT_ROOT / QWEN3_CPU).read_text()
    if replace:
        assert replace[0] in text, f"mutation target {replace[0]!r} not found in {QWEN3_CPU}"
        text = text.replace(replace[0], replace[1])
    package = tmp_path / f"mutant_{name}"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / QWEN3_CPU.name).write_text(text + appended)
    monkeypatch.syspath_prepend(str(tmp_path))
    import_name = f"mutant_{name}.{QWEN3_CPU.stem}"
    monkeypatch.delitem(sys.modules, import_name, raising=False)
    importlib.invalidate_caches()
    # the file's own facts (its fused-loss forward: logits=None with labels is then the documented difference)
    fused_loss = read_generated_module(QWEN3_CPU, PROJECT_ROOT).fused_loss
    module = GeneratedModule(
        package / QWEN3_CPU.name, import_name, "transformers.models.qwen3.modeling_qwen3", "qwen3", "cpu", fused_loss
    )
    return EquivalenceCase(module, CPU_FP32)


ARGUMENT_CHECKS_BY_NAME = {check.name: check for check in ARGUMENT_CHECKS}


def _failing_checks(case: EquivalenceCase, names: list[str]) -> dict[str, str]:
    failed = {}
    for name in names:
        try:
            {**CHECKS_BY_NAME, **ARGUMENT_CHECKS_BY_NAME}[name].run(case)
        except AssertionError as error:
            failed[name] = str(error)
    return failed


def test_a_0_1_percent_error_in_rmsnorm_fails_every_numerical_check(tmp_path, monkeypatch):
    case = _mutant_case(tmp_path, monkeypatch, "norm", appended=SCALED_NORM)
    numerical = ["logits", "loss", "grads", "save_load", "attn_eager", "attn_sdpa", "padded_batch"]
    failed = _failing_checks(case, ["imports", "builds", "state_dict_keys", *numerical])
    assert sorted(failed) == sorted(numerical)
    with pytest.raises(Mismatch) as caught:
        CHECKS_BY_NAME["logits"].run(case)
    assert caught.value.max_abs_diff > 1e-4


def test_ignoring_the_attention_mask_fails_only_the_padded_batch_check(tmp_path, monkeypatch):
    case = _mutant_case(tmp_path, monkeypatch, "mask", appended=IGNORES_ATTENTION_MASK)
    failed = _failing_checks(case, ["logits", "loss", "grads", "generate", "padded_batch"])
    assert list(failed) == ["padded_batch"]
    assert "padded: logits on real tokens" in failed["padded_batch"]


def test_an_extra_parameter_fails_state_dict_keys(tmp_path, monkeypatch):
    case = _mutant_case(tmp_path, monkeypatch, "extra", appended=EXTRA_PARAMETER)
    failed = _failing_checks(case, ["state_dict_keys"])
    assert "only in generated ['model.layers.0.mlp.extra_scale'" in failed["state_dict_keys"]


def test_a_re_exported_stock_class_fails_builds(tmp_path, monkeypatch):
    case = _mutant_case(tmp_path, monkeypatch, "reexport", appended=RE_EXPORTS_STOCK)
    failed = _failing_checks(case, ["builds"])
    assert "not defined in the file" in failed["builds"]


def test_attention_that_bypasses_the_interface_fails_attn_sdpa(tmp_path, monkeypatch):
    # Dropping ALL_ATTENTION_FUNCTIONS.get_interface( makes set_attn_implementation a silent no-op upstream.
    case = _mutant_case(
        tmp_path,
        monkeypatch,
        "eager",
        appended=EAGER_ONLY,
        replace=("ALL_ATTENTION_FUNCTIONS.get_interface(", "_always_default("),
    )
    failed = _failing_checks(case, ["attn_eager", "attn_sdpa"])
    assert list(failed) == ["attn_sdpa"]
    assert "generated model reports attn_implementation='eager', expected 'sdpa'" in failed["attn_sdpa"]


def test_attention_that_looks_up_the_interface_but_calls_eager_fails_attn_sdpa(tmp_path, monkeypatch):
    # The config then says sdpa, but SDPA never runs: only counting the calls catches it.
    case = _mutant_case(
        tmp_path, monkeypatch, "ignored", replace=("= attention_interface(", "= eager_attention_forward(")
    )
    failed = _failing_checks(case, ["attn_eager", "attn_sdpa"])
    assert list(failed) == ["attn_sdpa"]
    assert (
        "generated model called scaled_dot_product_attention 0 times, expected once per layer" in failed["attn_sdpa"]
    )


KEEP_CHECKS = [f"logits_to_keep_{form}{labels}" for form in ("int", "1d", "2d", "mask") for labels in ("", "_labels")]


def test_a_forward_that_raises_on_2d_logits_to_keep_fails_only_those_checks(tmp_path, monkeypatch):
    case = _mutant_case(tmp_path, monkeypatch, "keep2d", appended=NO_2D_LOGITS_TO_KEEP)
    failed = _failing_checks(case, [*KEEP_CHECKS, "kv_cache_step"])
    assert sorted(failed) == ["logits_to_keep_2d", "logits_to_keep_2d_labels"]
    assert "logits_to_keep_2d: stock returns, generated raises IndexError" in failed["logits_to_keep_2d"]
    # with labels stock raises too, but another exception: the same type is required
    assert "stock raises ValueError" in failed["logits_to_keep_2d_labels"]
    assert "generated IndexError" in failed["logits_to_keep_2d_labels"]


def test_a_forward_that_ignores_tensor_logits_to_keep_fails_the_tensor_forms(tmp_path, monkeypatch):
    case = _mutant_case(tmp_path, monkeypatch, "keepint", appended=TENSOR_LOGITS_TO_KEEP_IGNORED)
    failed = _failing_checks(case, KEEP_CHECKS)
    assert sorted(failed) == sorted(
        [
            "logits_to_keep_1d",
            "logits_to_keep_2d",
            "logits_to_keep_mask",
            "logits_to_keep_1d_labels",
            "logits_to_keep_2d_labels",
            "logits_to_keep_mask_labels",
        ]
    )
    assert (
        "logits_to_keep_1d.logits: shape (2, 12, 101) (generated) != (2, 3, 101) (stock)"
        in failed["logits_to_keep_1d"]
    )


def test_a_forward_that_drops_num_items_in_batch_fails_that_check_only(tmp_path, monkeypatch):
    case = _mutant_case(tmp_path, monkeypatch, "numitems", appended=NUM_ITEMS_DROPPED)
    failed = _failing_checks(case, ["num_items_in_batch", "shift_labels_with_labels", "inputs_embeds"])
    assert list(failed) == ["num_items_in_batch"] and "num_items_in_batch.loss" in failed["num_items_in_batch"]


def test_table_marks_known_differences_xfail_and_unexpected_passes_xpass(tmp_path, monkeypatch):
    case = _mutant_case(tmp_path, monkeypatch, "table", appended=SCALED_NORM)
    monkeypatch.setitem(runner.KNOWN_DIFFERENCES, (case.id, "logits"), "norm scaled on purpose")
    monkeypatch.setitem(runner.KNOWN_DIFFERENCES, (case.id, "imports"), "wrongly listed")
    assert runner.run_one(case, CHECKS_BY_NAME["logits"]).status == "xfail"
    assert runner.run_one(case, CHECKS_BY_NAME["imports"]).status == "XPASS"
    loss = runner.run_one(case, CHECKS_BY_NAME["loss"])
    assert loss.status == "FAIL" and loss.cell().startswith("FAIL ") and "loss" in loss.message


def test_table_cli_prints_every_check_and_exits_zero_for_the_stock_equivalent_file(capsys):
    assert runner.main(only="qwen3/cpu") == 0
    output = capsys.readouterr().out
    header = output.splitlines()[0]
    assert all(name in header for name in CHECKS_BY_NAME)
    arguments = output.split("\n\n")[1].splitlines()[0]  # the second table: one column per forward argument
    assert all(name in arguments for name in ARGUMENT_CHECKS_BY_NAME)
    assert "| qwen3/cpu@fp32 " in output and "FAIL" not in output
    assert runner.main(only="no-such-model") == 2


class _FakeGenerator:
    """Stands in for a model in check_generate: fixed greedy tokens and per-step scores."""

    def __init__(self, tokens: list[int], top2: tuple[float, float]) -> None:
        self.tokens, self.top2 = tokens, top2

    def eval(self):
        return self

    def train(self):
        return self

    def generate(self, prompt, **kwargs):
        scores = torch.full((1, 10), -5.0)
        scores[0, :2] = torch.tensor(self.top2)
        return SimpleNamespace(sequences=torch.tensor([prompt[0].tolist() + self.tokens]), scores=[scores] * 6)


def _generate_case(tolerance, stock_top2):
    pair = SimpleNamespace(
        stock=_FakeGenerator([1, 2, 3, 4, 5, 6], stock_top2), generated=_FakeGenerator([1, 2, 9, 9, 9, 9], stock_top2)
    )
    setting = SimpleNamespace(tolerance=tolerance)
    return SimpleNamespace(pair=pair, setting=setting, tolerance=tolerance, input_ids=torch.arange(10).reshape(2, 5))


def test_bf16_generate_allows_a_token_difference_only_at_a_near_tie():
    near_tie = CHECKS_BY_NAME["generate"].run(_generate_case(BF16, (1.00, 0.99)))
    assert near_tie.note.startswith("near tie at step 2")
    with pytest.raises(Mismatch, match="greedy tokens differ from step 2.*margin there is 0.5"):
        CHECKS_BY_NAME["generate"].run(_generate_case(BF16, (1.0, 0.5)))
    with pytest.raises(Mismatch, match="greedy tokens differ from step 2"):
        CHECKS_BY_NAME["generate"].run(_generate_case(FP32, (1.00, 0.99)))  # fp32 on CPU: exact tokens


def test_bf16_gradient_is_measured_against_stock_fp32_error():
    from tests.equivalence.checks import Comparison, _close_to_reference

    reference = torch.tensor([1.0, -2.0, 0.5])
    stock_bf16 = reference + torch.tensor([0.01, 0.0, 0.0])  # stock's own bf16 error: 0.01
    within = reference + torch.tensor([0.0, 0.015, 0.0])  # 1.5x stock's error: a different rounding, accepted
    _close_to_reference(Comparison(BF16), "w", within, stock_bf16, reference, BF16)
    wrong = reference + torch.tensor([0.0, 0.0, 0.1])  # 10x stock's error (+ 2e-2 x 2.0 = 0.04 slack): a wrong op
    with pytest.raises(Mismatch, match=r"grad of w: 0.1 from stock fp32, allowed 0.06"):
        _close_to_reference(Comparison(BF16), "w", wrong, stock_bf16, reference, BF16)


def test_tf32_kernels_get_the_tf32_tolerance_on_cuda_fp32_only():
    from tests.equivalence.architectures import ARCHITECTURES
    from tests.equivalence.cases import CPU_FP32, CUDA_FP32, TF32_KERNELS, EquivalenceCase

    case = EquivalenceCase.__new__(EquivalenceCase)
    case.architecture, case.setting = ARCHITECTURES["qwen3_moe"], CUDA_FP32
    assert case.tolerance is TF32_KERNELS
    case.setting = CPU_FP32
    assert case.tolerance is CPU_FP32.tolerance
    case.architecture, case.setting = ARCHITECTURES["qwen3"], CUDA_FP32
    assert case.tolerance is CUDA_FP32.tolerance


# -- behaviours: every output field, continuous batching (issue 19) ------------------------------------------------
BEHAVIOUR_CHECKS_BY_NAME = {check.name: check for check in BEHAVIOUR_CHECKS}
FIELD_CHECKS = [name for name in BEHAVIOUR_CHECKS_BY_NAME if name.startswith("fields_") and "images" not in name]

# The decoder returns no hidden states even when asked: a field None where stock returns a tuple.
HIDDEN_STATES_DROPPED = """
_upstream_model_forward = Qwen3Model.forward
def _forward_without_hidden_states(self, *args, **kwargs):
    output = _upstream_model_forward(self, *args, **kwargs)
    output.hidden_states = None
    return output
Qwen3Model.forward = _forward_without_hidden_states
"""
# The causal LM's output class gains a field stock's does not declare (same class name, so only the fields differ).
EXTRA_OUTPUT_FIELD = """
from dataclasses import dataclass as _dataclass

_StockCausalLMOutputWithPast = CausalLMOutputWithPast


@_dataclass
class CausalLMOutputWithPast(_StockCausalLMOutputWithPast):
    z_loss: torch.FloatTensor | None = None


_upstream_lm_forward = Qwen3ForCausalLM.forward
def _forward_with_extra_field(self, *args, **kwargs):
    return CausalLMOutputWithPast(**_upstream_lm_forward(self, *args, **kwargs))
Qwen3ForCausalLM.forward = _forward_with_extra_field
"""
# Fails only under transformers' paged cache (continuous batching), as a cache update without the paged cache's
# kwargs does under transformers >= 5.25: the manager logs the TypeError and returns requests without tokens.
FAILS_UNDER_THE_PAGED_CACHE = """
from transformers.generation.continuous_batching.cache import PagedAttentionCache as _PagedAttentionCache

_upstream_attention_forward = Qwen3Attention.forward
def _forward_failing_when_paged(self, hidden_states, position_embeddings, attention_mask, *args, **kwargs):
    cache = kwargs.get("cache", kwargs.get("past_key_values", args[0] if args else None))
    if isinstance(cache, _PagedAttentionCache):
        raise TypeError("PagedAttentionCache.update() missing 1 required positional argument: 'kwargs'")
    return _upstream_attention_forward(self, hidden_states, position_embeddings, attention_mask, *args, **kwargs)
Qwen3Attention.forward = _forward_failing_when_paged
"""


def _failing(case: EquivalenceCase, names: list[str]) -> dict[str, str]:
    failed = {}
    for name in names:
        try:
            {**CHECKS_BY_NAME, **ARGUMENT_CHECKS_BY_NAME, **BEHAVIOUR_CHECKS_BY_NAME}[name].run(case)
        except AssertionError as error:
            failed[name] = str(error)
    return failed


def test_a_field_set_to_none_where_stock_returns_a_tuple_fails_the_field_checks(tmp_path, monkeypatch):
    case = _mutant_case(tmp_path, monkeypatch, "nohidden", appended=HIDDEN_STATES_DROPPED)
    failed = _failing(case, [*FIELD_CHECKS, "output_hidden_states", "logits", "generate"])
    # transformers 5.25 captures hidden states with hooks at the outermost decorated call, so the causal LM's
    # output gets them back from its own capture: only the base model's output shows the dropped field
    assert sorted(failed) == ["fields_model"]
    assert failed["fields_model"] == "model.hidden_states: stock gives tuple, generated None"


def test_an_extra_output_field_fails_the_causal_lm_field_checks(tmp_path, monkeypatch):
    case = _mutant_case(tmp_path, monkeypatch, "extrafield", appended=EXTRA_OUTPUT_FIELD)
    failed = _failing(case, [*FIELD_CHECKS, "logits", "loss"])
    assert sorted(failed) == ["fields_lm", "fields_lm_labels", "fields_router_logits"]  # the base model is stock's
    assert failed["fields_lm"] == "lm: fields differ: missing in generated [], only in generated ['z_loss']"


def test_field_comparison_walks_caches_and_reports_the_path():
    from transformers import DynamicCache

    from tests.equivalence.checks import Comparison
    from tests.equivalence.fields import compare_fields

    def cache(scale: float) -> DynamicCache:
        filled = DynamicCache()
        generator = torch.Generator().manual_seed(0)
        for layer in range(2):
            keys = torch.randn(1, 2, 3, 4, generator=generator)
            filled.update(keys, keys * scale if layer else keys, layer)
        return filled

    compare_fields(Comparison(FP32), "out", {"c": cache(1.0), "n": None}, {"c": cache(1.0), "n": None})
    with pytest.raises(Mismatch, match=r"out\['c'\]\.layers\[1\]\.values \(generated vs stock"):
        compare_fields(Comparison(FP32), "out", {"c": cache(1.0)}, {"c": cache(1.001)})
    with pytest.raises(Mismatch, match=r"out: keys differ: missing in generated \['aux'\], only in generated \[\]"):
        compare_fields(Comparison(FP32), "out", {"aux": 1}, {})
    with pytest.raises(Mismatch, match=r"out\[1\]: stock gives 3, generated 4"):
        compare_fields(Comparison(FP32), "out", (1, 3), (1, 4))


def test_an_attention_failing_under_the_paged_cache_fails_continuous_batching_loudly(tmp_path, monkeypatch):
    case = _mutant_case(tmp_path, monkeypatch, "paged", appended=FAILS_UNDER_THE_PAGED_CACHE)
    failed = _failing(case, ["generate", "continuous_batching"])
    assert list(failed) == ["continuous_batching"]
    assert failed["continuous_batching"].startswith(
        "continuous batching: generated model: req_0, req_1, req_2 failed: "
        "PagedAttentionCache.update() missing 1 required positional argument: 'kwargs'"
    )
    outcome = runner.run_one(case, BEHAVIOUR_CHECKS_BY_NAME["continuous_batching"])
    assert outcome.status == "FAIL" and "missing 1 required positional argument: 'kwargs'" in outcome.message


def _stock_cache_update_passes_kwargs() -> bool:
    """transformers >= 5.25: attentions call `cache.update(..., kwargs=kwargs)` (the paged cache reads them)."""
    import inspect

    from transformers.models.qwen3 import modeling_qwen3

    return "kwargs=kwargs)" in inspect.getsource(modeling_qwen3.Qwen3Attention.forward)


def _stock_qwen3_without_cache_kwargs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EquivalenceCase:
    """Stock's own modeling_qwen3.py, imports made absolute, `kwargs=kwargs` dropped from its cache update."""
    import re

    from transformers.models.qwen3 import modeling_qwen3

    text = Path(modeling_qwen3.__file__).read_text()
    assert text.count(", kwargs=kwargs)") == 1, "expected one cache.update(..., kwargs=kwargs) in stock Qwen3"
    text = text.replace(", kwargs=kwargs)", ")")
    text = re.sub(r"^from \.\.\.(\w)", r"from transformers.\1", text, flags=re.MULTILINE)
    text = re.sub(r"^from \.\.\. import", "from transformers import", text, flags=re.MULTILINE)
    text = re.sub(r"^from \.(\w)", r"from transformers.models.qwen3.\1", text, flags=re.MULTILINE)
    package = tmp_path / "dropped_cache_kwargs"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "modeling_qwen3.py").write_text(HEADER.format(name="qwen3") + text)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "dropped_cache_kwargs.modeling_qwen3", raising=False)
    importlib.invalidate_caches()
    module = GeneratedModule(
        package / "modeling_qwen3.py",
        "dropped_cache_kwargs.modeling_qwen3",
        "transformers.models.qwen3.modeling_qwen3",
        "qwen3",
        "cpu",
    )
    return EquivalenceCase(module, CPU_FP32)


@pytest.mark.skipif(not _stock_cache_update_passes_kwargs(), reason="needs transformers>=5.25")
def test_a_cache_update_without_kwargs_fails_continuous_batching(tmp_path, monkeypatch):
    """The regression of issue 19: upstream's manager only logs the TypeError and returns empty outputs."""
    case = _stock_qwen3_without_cache_kwargs(tmp_path, monkeypatch)
    failed = _failing(case, ["logits", "generate", "continuous_batching"])
    assert list(failed) == ["continuous_batching"]  # plain forwards and generate() do not pass the paged cache
    message = failed["continuous_batching"]
    assert message.startswith("continuous batching: generated model: req_0, req_1, req_2 failed: ")
    assert "update() missing 1 required positional argument: 'kwargs'" in message
    assert runner.run_one(case, BEHAVIOUR_CHECKS_BY_NAME["continuous_batching"]).status == "FAIL"


def test_a_file_that_does_not_import_is_one_failing_row_not_a_crash():
    # e.g. a file generated for transformers 5.17 under 5.25: its imports name what 5.25 no longer has
    module = GeneratedModule(
        QWEN3_CPU, "generated.qwen3.no_such_file", "transformers.models.qwen3.modeling_qwen3", "qwen3", "cpu"
    )
    row = runner.run_table([module], cuda_available=False)["qwen3/cpu@fp32"]
    assert (
        row["imports"].status == "FAIL" and "No module named 'generated.qwen3.no_such_file'" in row["imports"].message
    )
    assert {outcome.status for name, outcome in row.items() if name != "imports"} == {"skip"}
    assert row["continuous_batching"].message.startswith("does not import: ModuleNotFoundError")


def test_stock_and_generated_failing_for_the_same_cause_is_stock_fails_whichever_requests_carry_it():
    from tests.equivalence.behaviours import BatchRun, same_failure

    loop = "Error in generation loop: Invalid group type: linear_attention"
    per_request = BatchRun([], "req_0 failed", ("Invalid group type: linear_attention",), (loop,))
    before_requests = BatchRun([], "0 results for 3 requests", (), (loop,))
    other_cause = BatchRun([], "req_0 failed", ("shape mismatch",), ("Error in generation loop: shape mismatch",))
    assert same_failure(per_request, before_requests) and same_failure(before_requests, per_request)
    assert not same_failure(per_request, other_cause)
    assert not same_failure(per_request, BatchRun([[5, 6]]))  # generated finishes where stock fails: a difference
