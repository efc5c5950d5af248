"""Every patch kind against a small fixture module: the generated source text and its behaviour."""

import ast
import re

import pytest
import torch

from patchgen.commands.codegen import generate
from patchgen.load.discovery import load_config


def section(text: str, start: str, stop: str) -> str:
    return text[text.index(start) : text.index(stop, text.index(start))]


def test_header_lists_every_patch(toy_generated):
    text, _, _ = toy_generated
    assert text.startswith("# " + "=" * 78 + "\n# AUTO-GENERATED FILE - DO NOT EDIT DIRECTLY\n")
    for line in [
        "# Source: toyupstream.models.toy.modeling_toy",
        "# Config: toypatches.configs",
        "# Regenerate: python -m patchgen.run_codegen toypatches.configs -c all_kinds --diff",
        "# - class_replacement: ToyRMSNorm",
        "# - function_replacement: scale",
        "# - method_override: ToyMLP.describe",
        "# - init_modification: ToyAttention",
        "# - external_replacement: rotate",
        "# - excluded: ToyUnusedHead",
        "# - extra import: from torch.distributed import all_reduce",
    ]:
        assert line + "\n" in text


def test_untouched_upstream_survives_exactly(toy_generated):
    text, _, _ = toy_generated
    upstream = open(__import__("toyupstream.models.toy.modeling_toy").models.toy.modeling_toy.__file__).read()
    for block in [
        '# Copyright: a license header comment that must survive untouched.\n"""Toy modeling file',
        "try:\n    import numpy as np  # optional: must stay inside its try block\nexcept ImportError:",
        'if torch.__version__ >= "0":\n    TORCH_OK = True',
        "DEFAULT_EPS: float = 1e-6\n",
        "class ToyModel(nn.Module):\n    def __init__(self, config: ToyConfig):\n",
        "        from toyupstream.activations import ACT2FN as lazily_imported  # nested import: stays here\n",
    ]:
        assert block in text
    rotate_free_model = section(upstream, "class ToyModel", "class ToyUnusedHead")
    assert rotate_free_model in text


def test_relative_imports_become_absolute(toy_generated):
    text, _, _ = toy_generated
    assert "from toyupstream import activations as activations_module\n" in text
    assert "from toyupstream.activations import ACT2FN\n" in text
    assert "from toyupstream.models.toy.configuration_toy import ToyConfig\n" in text
    tree = ast.parse(text)
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]


def test_class_replacement_renamed_on_syntax_tree(toy_generated):
    text, _, module = toy_generated
    cls = section(text, "# [PATCHED CLASS] ToyRMSNorm", "# [PATCHED FUNCTION]")
    assert "Reason: fused RMSNorm" in cls
    assert "Patch source: toypatches/toy_patches.py:21" in cls
    assert "# Comment above the replacement: kept with it.\nclass ToyRMSNorm(nn.Module):" in cls
    assert "super(ToyRMSNorm, self).__init__()  # self-reference renamed on the syntax tree" in cls
    assert "assert isinstance(self, ToyRMSNorm)" in cls
    # text that merely contains the old name is not code: untouched
    assert '"""A docstring that says class OptimizedRMSNorm: text' in cls
    assert "# a comment that mentions class OptimizedRMSNorm stays as written" in cls
    assert 'self.label = "class OptimizedRMSNorm"' in cls
    # the replaced class loses the upstream hub decorator that would swap the kernel back
    assert "use_kernel_forward_from_hub" not in text
    norm = module.ToyRMSNorm(4)
    assert norm.label == "class OptimizedRMSNorm" and not hasattr(module.ToyRMSNorm, "kernel_name")


def test_helpers_copied_transitively_before_use(toy_generated):
    text, _, _ = toy_generated
    assert text.index("# [ADDED] _square") < text.index("# [ADDED] fused_rms") < text.index("class ToyRMSNorm")
    assert "Needed by: class_replacement ToyRMSNorm (via helper fused_rms)" in text
    assert "Patch source: toypatches/helpers.py:8" in text
    # a multi-line string keeps its bytes, indentation included
    assert 'SQL_TEMPLATE = """\n    SELECT class OptimizedRMSNorm\n      FROM indented_string\n"""' in text
    assert "toypatches" not in "".join(line for line in text.splitlines() if line.startswith(("import", "from")))


def test_function_replacement_and_imports(toy_generated):
    text, _, module = toy_generated
    assert "import math\n" in text
    assert "from torch.distributed import all_reduce\n" in text  # add_import survives unused-import removal
    assert "def scale(x, factor=2.0):\n    # multiplies through math" in text
    assert '@tag("function")' not in text
    assert torch.equal(module.scale(torch.ones(2), 3.0), torch.full((2,), 3.0))


def test_method_override_keeps_class_and_decorators(toy_generated):
    text, _, module = toy_generated
    mlp = section(text, "class ToyMLP", "# [MODIFIED CLASS] ToyAttention")
    assert "Methods patched: describe, forward" in text
    assert "self.up = nn.Linear(config.hidden_size, config.hidden_size, bias=False)" in mlp
    assert '    @tag("method")\n    @torch.no_grad()\n    def describe(self):\n' in mlp
    assert "        # patched description: upstream decorators stay on top of this method\n" in mlp
    assert '    @tag("patched")\n    def forward(self, x):' in mlp
    assert module.ToyMLP.describe.tags == ("method",)
    assert module.ToyMLP.forward.tags == ("patched",)
    config = module.ToyConfig()
    assert module.ToyMLP(config).describe() == "patched mlp"


def test_modify_init_reads_like_handwritten_code(toy_generated):
    text, _, module = toy_generated
    init = section(text, "    def __init__(self, config: ToyConfig, layer_idx: int):", "    def forward")
    assert "original_init" not in text
    assert "toy_patches" not in init.replace("toypatches/toy_patches.py", "")
    assert init.index('"""Docstring of __init__."""') < init.index("# runs before the upstream body")
    assert init.index("raise ValueError") < init.index("super().__init__()") < init.index("self.num_heads =")
    attention = module.ToyAttention(module.ToyConfig(hidden_size=8, num_heads=2), layer_idx=3)
    assert attention.num_heads == 2 and attention.layer_idx == 3
    with pytest.raises(ValueError, match="not divisible by num_heads 3"):
        module.ToyAttention(module.ToyConfig(hidden_size=8, num_heads=3), layer_idx=0)


def test_empty_bodied_classes(toy_generated):
    text, _, module = toy_generated
    assert "class ToyEmptyPass(nn.Module):\n    # [ADDED METHOD] ToyEmptyPass.__init__" in text
    assert "        super().__init__(*args, **kwargs)\n        self.extra = True\n" in text
    assert module.ToyEmptyPass().extra is True
    assert "SELECT" in repr(module.ToyEmptyPass())
    assert "class ToyEmptyEllipsis(nn.Module):\n    # [ADDED METHOD] ToyEmptyEllipsis.forward" in text
    assert torch.equal(module.ToyEmptyEllipsis()(torch.zeros(1)), torch.ones(1))


def test_external_replacement_binds_imported_object(toy_generated):
    text, _, module = toy_generated
    assert "from operator import neg\n" in text
    assert "Replaced by: operator.neg (imported, not copied)" in text
    assert "\nrotate = neg\n" in text
    assert module.rotate(3) == -3


def test_exclusion_removes_class_and_all_entry(toy_generated):
    text, _, module = toy_generated
    assert "ToyUnusedHead" not in text.split("# ===", 30)[-1].split("Patches applied")[-1].replace(
        "# - excluded: ToyUnusedHead", ""
    )
    assert module.__all__ == ["ToyModel", "ToyRMSNorm", "activations_module"]
    assert not hasattr(module, "ToyUnusedHead")


def test_generated_model_runs(toy_generated):
    _, _, module = toy_generated
    model = module.ToyModel(module.ToyConfig())
    assert model(torch.randn(2, 8)).shape == (2, 8)


def test_output_is_deterministic_and_has_no_absolute_paths(toy_generated, tmp_path):
    text, diff, _ = toy_generated
    (again,) = generate([load_config("toypatches.configs", "all_kinds")], output_dir=tmp_path)
    assert {o.path.suffix: o.text for o in again.outputs} == {".py": text, ".diff": diff}
    assert str(tmp_path) not in text + diff and "/home/" not in text and "site-packages" not in text + diff
    assert not re.search(r"\d{4}-\d{2}-\d{2}", text)


def test_diff_has_stable_labels(toy_generated):
    _, diff, _ = toy_generated
    assert diff.startswith("--- a/toyupstream/models/toy/modeling_toy.py\n+++ b/")


def test_zero_patch_diff_touches_only_header_and_imports(tmp_path):
    (result,) = generate([load_config("toypatches.configs", "zero")], output_dir=tmp_path)
    diff = {o.path.suffix: o.text for o in result.outputs}[".diff"]
    changed = [
        line for line in diff.splitlines()[2:] if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
    ]
    assert changed
    for line in changed:
        assert (
            line.startswith("+#") or re.match(r"^-\s*from \.+", line) or re.match(r"^\+\s*from toyupstream", line)
        ), line


def test_decorating_the_wrong_kind_of_object_is_a_one_line_error():
    from patchgen import PatchConfig, PatchgenError
    from patchgen.dsl.patch_sets import PatchSet

    config = PatchConfig(source_module="toyupstream.models.toy.modeling_toy", target_file="x.py")

    def not_a_class():
        pass

    with pytest.raises(PatchgenError, match=r"class_replacement ToyRMSNorm: the decorated object .* is not a class"):
        config.replace_class("ToyRMSNorm")(not_a_class)
    with pytest.raises(
        PatchgenError, match=r"PatchSet s: method_override mlp: the decorated object .* is not a function"
    ):
        PatchSet("s").override_method("mlp.forward")(object)
