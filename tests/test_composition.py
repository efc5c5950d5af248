"""Composition: patch sets mapped onto upstream names, configs extending configs, override rules, statements.

The DSL rules are tested in process; the bad-input cases through `run_codegen` as users meet them
(one `error:` line naming the file and what to do, exit status 2, nothing written).
"""

import textwrap
from pathlib import Path

import pytest
from conftest import FIXTURES, run_cli

from patchgen import PatchConfig, PatchgenError
from patchgen.dsl.patch_sets import PatchSet, combine
from patchgen.dsl.patch_spec import PatchKind, module_path


SOURCE = "toyupstream.models.toy.modeling_toy"
HERE = module_path(__name__, __file__)  # how locations name this file

NORM = PatchSet("toy_norm", "a plain norm")
OTHER_NORM = PatchSet("other_norm", "another norm for the same role")
MLP = PatchSet("toy_mlp", "two patches on one class")
ROPE = PatchSet("toy_rope")


@NORM.replace_class("norm", description="plain norm")
class PlainNorm:
    pass


@OTHER_NORM.replace_class("norm", description="other norm")
class OtherNorm:
    pass


@MLP.override_method("mlp.forward", description="identity forward")
def mlp_forward(self, x):
    return x


@MLP.modify_init("mlp", description="record a flag")
def mlp_init(original_init, self, config):
    original_init(self, config)
    self.flag = True


ROPE.external("rope", "operator", "neg", description="stdlib negation")


def toy_base() -> PatchConfig:
    base = PatchConfig.base(SOURCE, description="toy base")
    base.use(NORM, "ToyRMSNorm")
    base.exclude_from_output("ToyUnusedHead", reason="unused")
    base.add_statement("TOY_FLAG = 1", description="a module-level flag")
    return base


def test_use_binds_each_role_to_an_upstream_name():
    config = PatchConfig(source_module=SOURCE, target_file="patched_modeling_toy_x.py")
    config.use(MLP, mlp="ToyMLP", note="toy-specific")
    config.use(ROPE, "rotate")
    kinds = {(p.kind, p.target) for p in config.patches}
    assert kinds == {
        (PatchKind.METHOD_OVERRIDE, "ToyMLP.forward"),
        (PatchKind.INIT_MODIFICATION, "ToyMLP"),
        (PatchKind.EXTERNAL_REPLACEMENT, "rotate"),
    }
    forward = next(p for p in config.patches if p.target == "ToyMLP.forward")
    assert forward.patch_set == "toy_mlp.mlp"
    assert forward.description == "identity forward [toy-specific]"
    assert forward.defined_at.path == HERE and forward.applied_at.path == HERE
    assert forward.applied_at.line != forward.defined_at.line
    assert f"patch set toy_mlp.mlp, applied at {HERE}:" in forward.label
    assert forward.source_note.startswith(f"{HERE}:{forward.defined_at.line} (patch set toy_mlp.mlp")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.use(MLP, mpl="ToyMLP"), "unknown role 'mpl' (did you mean 'mlp'?)"),
        (lambda c: c.use(MLP, "ToyMLP", mlp="ToyMLP"), "map each by keyword, e.g. mlp='...'"),
        (lambda c: c.use(combine("both", NORM, ROPE), norm="ToyRMSNorm"), "no upstream name for role(s) rope"),
    ],
    ids=["unknown_role", "positional_and_keywords", "missing_role"],
)
def test_use_rejects_a_bad_mapping(call, message):
    config = PatchConfig(source_module=SOURCE, target_file="patched_modeling_toy_x.py")
    with pytest.raises(PatchgenError, match=rf"{HERE}:\d+: use\(") as error:
        call(config)
    assert message in str(error.value)
    assert not config.patches


def test_extend_starts_from_the_base_in_its_order_and_leaves_it_alone():
    base = toy_base()
    derived = PatchConfig.extend(base, target_file="patched_modeling_toy_gpu.py", description="derived")
    derived.use(ROPE, "rotate")
    assert [p.target for p in derived.patches] == ["ToyRMSNorm", "rotate"]
    assert [p.target for p in base.patches] == ["ToyRMSNorm"]
    assert [e.name for e in derived.exclusions] == ["ToyUnusedHead"]
    assert [s.code for s in derived.statements] == ["TOY_FLAG = 1\n"]
    assert derived.source_module == SOURCE and derived.model == "toy" and derived.variant == "gpu"
    assert base.abstract and base.variant == "base" and not derived.abstract
    assert derived.extends == __name__ and derived.declared_in == __name__


def test_two_sets_on_one_target_fail_unless_one_overrides():
    derived = PatchConfig.extend(toy_base(), target_file="patched_modeling_toy_gpu.py")
    with pytest.raises(PatchgenError) as error:
        derived.use(OTHER_NORM, "ToyRMSNorm")
    message = str(error.value)
    assert "class_replacement ToyRMSNorm (patch set other_norm.norm" in message
    assert "class_replacement ToyRMSNorm (patch set toy_norm.norm" in message
    assert "already patches this target; keep only one, or pass override=True" in message
    assert [p.patch_set for p in derived.patches] == ["toy_norm.norm"]

    derived.use(OTHER_NORM, "ToyRMSNorm", override=True)
    assert [p.patch_set for p in derived.patches] == ["other_norm.norm"]


def test_override_with_nothing_to_override_is_an_error():
    config = PatchConfig(source_module=SOURCE, target_file="patched_modeling_toy_x.py")
    with pytest.raises(
        PatchgenError, match="override=True but no earlier patch claims ToyRMSNorm; drop override=True"
    ):
        config.use(NORM, "ToyRMSNorm", override=True)


def test_methods_of_one_class_compose_but_a_class_replacement_claims_them_all():
    config = PatchConfig(source_module=SOURCE, target_file="patched_modeling_toy_x.py")
    config.use(MLP, mlp="ToyMLP")  # forward override + __init__ modification on one class: fine
    with pytest.raises(PatchgenError, match="already patches this target"):
        config.use(NORM, "ToyMLP")  # replacing the whole class conflicts with its method patches
    with pytest.raises(PatchgenError, match="method_override ToyMLP.forward .*already patches this target"):
        config.override_method("ToyMLP.forward")(mlp_forward)


def test_a_set_patches_each_part_once():
    broken = PatchSet("broken")
    broken.replace_class("norm")(PlainNorm)
    with pytest.raises(PatchgenError, match="role 'norm' is already patched"):
        broken.replace_class("norm")(OtherNorm)


def test_add_statement_must_be_python():
    config = PatchConfig(source_module=SOURCE, target_file="patched_modeling_toy_x.py")
    with pytest.raises(PatchgenError, match=r"add_statement\('register\('\): not valid Python"):
        config.add_statement("register(")


# -- generated output and bad input through the CLI ----------------------------------------------

SETS = '''
"""Patch sets for the toy upstream, shared by the configs below."""

from torch import nn

from patchgen.dsl.patch_sets import PatchSet


NORM = PatchSet("toy_norm", "a plain norm")
OTHER_NORM = PatchSet("other_norm", "another norm")


@NORM.replace_class("norm", description="plain norm from a set")
class PlainNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(nn.init.ones_(nn.Parameter(__import__("torch").empty(hidden_size))))

    def forward(self, hidden_states):
        return hidden_states * self.weight


@OTHER_NORM.replace_class("norm", description="the other norm")
class OtherNorm(nn.Module):
    def forward(self, hidden_states):
        return hidden_states
'''

BASE = """
from models.common.toy_sets import NORM
from patchgen import PatchConfig

config = PatchConfig.base("toyupstream.models.toy.modeling_toy", description="toy base")
config.use(NORM, "ToyRMSNorm")
config.exclude_from_output("ToyUnusedHead", reason="unused")
config.add_statement("TOY_FLAG = 1", description="a module-level flag")
"""

DERIVED = """
from patchgen import PatchConfig

config = PatchConfig.extend("models.toy.toy_base_patch_gen_config", target_file="patched_modeling_toy_gpu.py")
"""


def line_of(text: str, needle: str) -> int:
    """1-based line of `needle` in a file written from `text` (dedented as make_project writes it)."""
    return next(i for i, line in enumerate(textwrap.dedent(text).splitlines(), 1) if needle in line)


NORM_LINE = line_of(SETS, "class PlainNorm")
USE_LINE = line_of(BASE, "config.use(NORM")


def make_project(root: Path, derived_extra: str = "", base: str = BASE) -> None:
    for package in ["models", "models/common", "models/toy"]:
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").write_text("")
    (root / "models" / "common" / "toy_sets.py").write_text(SETS)
    (root / "models" / "toy" / "toy_base_patch_gen_config.py").write_text(textwrap.dedent(base))
    (root / "models" / "toy" / "toy_gpu_patch_gen_config.py").write_text(
        textwrap.dedent(DERIVED) + textwrap.dedent(derived_extra)
    )


def codegen(root: Path, *args: str):
    return run_cli("patchgen.commands.run_codegen", *args, cwd=root, extra_path=(FIXTURES,))


def test_derived_config_writes_base_and_own_patches_and_base_is_not_written(tmp_path):
    make_project(tmp_path)
    result = codegen(tmp_path, "--all", "--diff")
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in (tmp_path / "generated" / "toy").iterdir())
    assert [name for name in written if name.endswith(".py")] == ["__init__.py", "patched_modeling_toy_gpu.py"]
    text = (tmp_path / "generated" / "toy" / "patched_modeling_toy_gpu.py").read_text()
    assert "# - class_replacement: ToyRMSNorm [patch set toy_norm.norm]" in text
    assert (
        f"# Patch source: models/common/toy_sets.py:{NORM_LINE} (patch set toy_norm.norm, applied at "
        f"models/toy/toy_base_patch_gen_config.py:{USE_LINE})"
    ) in text
    assert "class ToyUnusedHead" not in text
    assert text.rstrip().endswith("# " + "=" * 78 + "\nTOY_FLAG = 1")
    assert "# [ADDED STATEMENT]\n# Reason: a module-level flag\n" in text

    alone = codegen(tmp_path, "models.toy.toy_base_patch_gen_config")
    assert alone.returncode == 0 and "skipped models.toy.toy_base_patch_gen_config: a base config" in alone.stdout


BAD_INPUT = {
    "two_sets_one_target": (
        {"derived_extra": 'from models.common.toy_sets import OTHER_NORM\nconfig.use(OTHER_NORM, "ToyRMSNorm")\n'},
        [
            f"models/toy/toy_gpu_patch_gen_config.py:{line_of(DERIVED, 'config =') + 2}: "
            "class_replacement ToyRMSNorm (patch set other_norm.norm",
            f"(patch set toy_norm.norm, applied at models/toy/toy_base_patch_gen_config.py:{USE_LINE})",
            "already patches this target; keep only one, or pass override=True to the one that should win",
        ],
    ),
    "set_mapped_to_missing_name": (
        {"base": BASE.replace('config.use(NORM, "ToyRMSNorm")', 'config.use(NORM, "ToyRmsNorm")')},
        [
            f"models.toy.toy_gpu_patch_gen_config: models/common/toy_sets.py:{NORM_LINE}: class_replacement ToyRmsNorm",
            f"applied at models/toy/toy_base_patch_gen_config.py:{USE_LINE}",
            "no class 'ToyRmsNorm' in toyupstream.models.toy.modeling_toy (did you mean 'ToyRMSNorm'?)",
        ],
    ),
    "extends_missing_config": (
        {"derived_extra": "", "base": BASE},
        [
            f"models/toy/toy_gpu_patch_gen_config.py:{line_of(DERIVED, 'config =')}: "
            "PatchConfig.extend('models.toy.toy_bsae_patch_gen_config'): "
            "no such config module (did you mean 'models.toy.toy_base_patch_gen_config'?)",
            "python -m patchgen.run_codegen --list shows them",
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_composition_is_one_line_exit_2_nothing_written(case, tmp_path):
    options, expected = BAD_INPUT[case]
    make_project(tmp_path, **options)
    if case == "extends_missing_config":
        path = tmp_path / "models" / "toy" / "toy_gpu_patch_gen_config.py"
        path.write_text(path.read_text().replace("toy_base_patch_gen_config", "toy_bsae_patch_gen_config"))
    result = codegen(tmp_path, "models.toy.toy_gpu_patch_gen_config", "--diff")
    assert result.returncode == 2, result.stdout + result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in expected:
        assert fragment in error_lines[0], (fragment, error_lines[0])
    assert not (tmp_path / "generated").exists()
