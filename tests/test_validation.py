"""Generation-time validation: every mistake is one error line naming the exact names, nothing written.

Each case is a config in a temporary project over a small pure-Python upstream module (`valup`),
run through `python -m patchgen.run_codegen` as a user would.
"""

import ast
import inspect
import re
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, run_cli

from patchgen.plan.validation import Param, format_params, override_signature_problem, params_of_ast


UPSTREAM = '''
"""Toy upstream for the validation tests: each class is used in exactly one way by the rest."""


class ValConfig:
    def __init__(self, hidden=4):
        self.hidden = hidden


class ValNorm:
    def __init__(self, hidden):
        self.hidden = hidden

    def __call__(self, x):
        return x


def val_act(x):
    return x


def later_helper():
    return 2.0


class ValHead:  # used by name
    pass


class ValOutput:  # used only in a return annotation
    pass


class ValExtra:  # used only through isinstance
    pass


class ValLayer:  # used only as a string in _no_split_modules
    pass


class ValTag:  # used only through an __all__ extension
    pass


class ValSpare:  # used by nothing upstream
    pass


class ValBlock:
    def __init__(self, config):
        self.norm = ValNorm(config.hidden)

    def forward(self, x, mask=None, *, scale=1.0, **kwargs):
        return self.norm(x)


class ValModel:
    _no_split_modules = ["ValLayer"]

    def __init__(self, config):
        self.block = ValBlock(config)
        self.head = ValHead()

    def forward(self, x) -> ValOutput:
        if isinstance(x, ValExtra):
            return None
        return self.block.forward(x)


__all__ = ["ValBlock", "ValConfig", "ValModel", "ValNorm", "ValOutput"]
__all__ += ["ValTag"]
'''


def line_of(text):
    return next(i for i, line in enumerate(UPSTREAM.lstrip().splitlines(), start=1) if text in line)


HEADER = """
from patchgen import PatchConfig, create_patch_from_external
from valup.modeling_val import ValSpare, later_helper

config = PatchConfig(source_module="valup.modeling_val", target_file="patched_modeling_val_x.py", model="val")
"""
CONFIG = "models/val/val_x_patch_gen_config.py"
OUTPUT = "generated/val/patched_modeling_val_x.py"
UPSTREAM_SIGNATURE = "ValBlock.forward(self, x, mask=..., *, scale=..., **kwargs)"

CASES = {
    # -- override_method signatures --
    "override_renames_a_parameter": (
        """
@config.override_method("ValBlock.forward")
def forward(self, y, mask=None, *, scale=1.0, **kwargs):
    return y
""",
        [
            "method_override ValBlock.forward",
            "signature forward(self, y, mask=..., *, scale=..., **kwargs) does not accept what callers of upstream "
            f"{UPSTREAM_SIGNATURE} pass: its positional parameters differ from upstream's",
        ],
    ),
    "override_drops_kwargs": (
        """
@config.override_method("ValBlock.forward")
def forward(self, x, mask=None, *, scale=1.0):
    return x
""",
        ["signature forward(self, x, mask=..., *, scale=...)", "upstream takes **kwargs but the patch does not"],
    ),
    "override_adds_required_keyword": (
        """
@config.override_method("ValBlock.forward")
def forward(self, x, mask=None, *, scale=1.0, chunk, **kwargs):
    return x
""",
        ["the patch requires keyword-only 'chunk', which upstream callers do not always pass; give it a default"],
    ),
    # -- modify_init --
    "modify_init_without_original_init": (
        """
@config.modify_init("ValBlock")
def init(self, config):
    pass
""",
        ["init_modification ValBlock", "must be 'def init(original_init, self, ...)', got (self, config)"],
    ),
    "modify_init_self_first": (
        """
@config.modify_init("ValBlock")
def init(self, original_init, config):
    original_init(self, config)
""",
        ["must be 'def init(original_init, self, ...)', got (self, original_init, config)"],
    ),
    "modify_init_other_parameters": (
        """
@config.modify_init("ValBlock")
def init(original_init, self, cfg):
    original_init(self, cfg)
""",
        [
            "parameters (original_init, self, cfg) do not match upstream ValBlock.__init__(self, config); ",
            "use the same names, kinds and defaults: (original_init, self, config)",
        ],
    ),
    "modify_init_calls_twice": (
        """
@config.modify_init("ValBlock")
def init(original_init, self, config):
    original_init(self, config)
    original_init(self, config)
""",
        ["must call original_init(self, ...) exactly once", "found 2 such call(s)"],
    ),
    # -- targets --
    "two_patches_on_one_class": (
        """
@config.replace_class("ValNorm")
class Norm:
    pass

@config.override_method("ValNorm.__call__")
def call(self, x):
    return x
""",
        ["method_override ValNorm.__call__: class_replacement ValNorm", "already patches this target"],
    ),
    "patch_on_excluded_class": (
        """
@config.override_method("ValBlock.forward")
def forward(self, x, mask=None, *, scale=1.0, **kwargs):
    return x

config.exclude_from_output("ValBlock")
""",
        ["method_override ValBlock.forward: ValBlock is also excluded by exclude_from_output"],
    ),
    # -- exclusions still in use --
    "excluded_class_used_by_name": (
        'config.exclude_from_output("ValHead")\n',
        [
            "would be broken: Undefined name `ValHead` at line ",
            " in ValModel.__init__ (upstream code; exclude_from_output ValHead (models/val/val_x_patch_gen_config.py:",
        ],
    ),
    "excluded_class_used_as_type_hint": (
        'config.exclude_from_output("ValOutput")\n',
        ["Undefined name `ValOutput` at line ", " in ValModel.forward (upstream code; exclude_from_output ValOutput"],
    ),
    "excluded_class_used_through_isinstance": (
        'config.exclude_from_output("ValExtra")\n',
        ["Undefined name `ValExtra` at line ", " in ValModel.forward (upstream code; exclude_from_output ValExtra"],
    ),
    "excluded_class_named_in_a_string": (
        'config.exclude_from_output("ValLayer")\n',
        [
            "exclude_from_output ValLayer: ValModel._no_split_modules still refers to it by the string 'ValLayer' "
            f"(valup.modeling_val line {line_of('_no_split_modules = ')}), which would break at run time; keep ValLayer or "
            "also exclude ValModel"
        ],
    ),
    "patch_uses_excluded_class": (
        """
@config.replace_function("val_act")
def act(x):
    return ValSpare()

config.exclude_from_output("ValSpare")
""",
        [
            "function_replacement val_act: uses ValSpare, which exclude_from_output "
            "(models/val/val_x_patch_gen_config.py:{EXCLUDE_LINE}) removes from the output; keep ValSpare or stop using it"
        ],
    ),
    # -- a replacement that leaves a name undefined --
    "replacement_leaves_name_undefined": (
        """
@config.override_method("ValNorm.__call__")
def call(self, x) -> "ValMissing":
    return x
""",
        [
            "would be broken: Undefined name `ValMissing` at line ",
            " in ValNorm.__call__ (code of method_override ValNorm.__call__, at models/val/val_x_patch_gen_config.py:",
        ],
    ),
}


def make_project(root, config_text, extra_files=None):
    for package in ["valup", "models", "models/val"]:
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").write_text("")
    (root / "valup" / "modeling_val.py").write_text(UPSTREAM.lstrip())
    (root / CONFIG).write_text(textwrap.dedent(HEADER).lstrip() + textwrap.dedent(config_text))
    for name, text in (extra_files or {}).items():
        (root / name).write_text(text)


def single_error(result):
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_validation_error_names_everything_and_writes_nothing(case, tmp_path):
    config_text, fragments = CASES[case]
    make_project(tmp_path, config_text)
    result = run_cli("patchgen.commands.run_codegen", "--all", "--diff", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    error = single_error(result)
    assert error.startswith(("error: models.val.val_x_patch_gen_config: ", f"error: {CONFIG}:")), error
    config_lines = (tmp_path / CONFIG).read_text().splitlines()
    exclude_line = next((i for i, line in enumerate(config_lines, 1) if "exclude_from_output" in line), 0)
    for fragment in fragments:
        fragment = fragment.replace("{EXCLUDE_LINE}", str(exclude_line))
        assert fragment in error, (fragment, error)
    assert not (tmp_path / "generated").exists()


def test_compatible_override_and_used_exclusion_free_config_generate(tmp_path):
    make_project(
        tmp_path,
        """
@config.override_method("ValBlock.forward")
def forward(self, x, mask=None, *, scale=1.0, chunk=4, **kwargs):
    return x

config.exclude_from_output("ValSpare")
""",
    )
    result = run_cli("patchgen.commands.run_codegen", "--all", "--diff", "--verify-import", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / OUTPUT).read_text()
    assert "def forward(self, x, mask=None, *, scale=1.0, chunk=4, **kwargs):" in text
    assert "class ValSpare" not in text


# -- the real import of the output -----------------------------------------------------------------

USES_LATER_HELPER = """
class FactorSource:
    def compute(self):
        return 2 * later_helper()


@config.replace_class("ValNorm")
class Norm:
    # runs when the class is created: in the output that is before later_helper is defined, which
    # no static check sees because the name is read inside a method reached through an instance
    factor = FactorSource().compute()

    def __init__(self, hidden):
        self.hidden = hidden
"""


def test_import_check_catches_what_static_checks_cannot(tmp_path):
    make_project(tmp_path, USES_LATER_HELPER)
    refused = run_cli("patchgen.commands.run_codegen", "--all", "--diff", "--verify-import", cwd=tmp_path)
    assert refused.returncode == 2
    error = single_error(refused)
    assert re.fullmatch(
        rf"error: {OUTPUT} does not import: NameError: name 'later_helper' is not defined \(line \d+\)", error
    ), error
    assert not (tmp_path / "generated").exists()

    written = run_cli(
        "patchgen.commands.run_codegen", "--all", "--diff", cwd=tmp_path
    )  # without the flag: static only
    assert written.returncode == 0, written.stderr
    check = run_cli("patchgen.commands.check_patchgen", cwd=tmp_path)
    assert check.returncode == 1
    assert f"ERROR   {OUTPUT} does not import: NameError: name 'later_helper' is not defined" in check.stdout
    assert run_cli("patchgen.commands.check_patchgen", "--no-import", cwd=tmp_path).returncode == 0


def test_a_module_function_run_at_import_reading_a_later_name_is_refused_statically(tmp_path):
    """The plain-function form of the case above needs no import: the rendered file is read for it."""
    make_project(
        tmp_path,
        """
def compute_factor():
    return 2 * later_helper()


@config.replace_class("ValNorm")
class Norm:
    factor = compute_factor()

    def __init__(self, hidden):
        self.hidden = hidden
""",
    )
    refused = run_cli("patchgen.commands.run_codegen", "--all", "--diff", cwd=tmp_path)
    assert refused.returncode == 2
    error = single_error(refused)
    assert "would fail on import" in error and "runs compute_factor()" in error and "'later_helper'" in error, error
    assert not (tmp_path / "generated").exists()


def test_import_check_blocks_the_patch_package_reached_indirectly(tmp_path):
    make_project(
        tmp_path,
        """
config.patches.append(
    create_patch_from_external(target="val_act", replacement_module="extkernels", replacement_name="fast_act")
)
""",
        extra_files={
            "extkernels.py": "from models.val.kernels import fast_act\n",
            "models/val/kernels.py": "def fast_act(x):\n    return x\n",
        },
    )
    result = run_cli("patchgen.commands.run_codegen", "--all", "--diff", "--verify-import", cwd=tmp_path)
    assert result.returncode == 2
    error = single_error(result)
    assert re.fullmatch(
        rf"error: {OUTPUT} does not import: ImportError: generated code imported models from the patch package "
        r"\(line \d+, via extkernels.py:1\)",
        error,
    ), error
    assert not (tmp_path / "generated").exists()


# -- the signature rule itself ----------------------------------------------------------------------


def params(signature):
    return params_of_ast(ast.parse(f"def f{signature}: pass").body[0].args)


UPSTREAM_PARAMS = "(self, x, mask=None, *, scale=1.0, **kwargs)"


@pytest.mark.parametrize(
    "patch_signature",
    [
        "(self, x, mask=None, *, scale=1.0, **kwargs)",
        "(self, x, mask=None, *, scale=2.0, extra=True, **kwargs)",
        "(self, x, mask=None, **kwargs)",  # scale arrives through **kwargs
        "(self, x, mask=None, *args, scale=1.0, **kwargs)",
        "(self, /, x, mask=None, *, scale=1.0, **kwargs)",
        "(self, x, mask, *, scale=1.0, **kwargs)",  # positional defaults are not compared
    ],
)
def test_signatures_that_accept_every_upstream_call(patch_signature):
    assert override_signature_problem(params(patch_signature), params(UPSTREAM_PARAMS)) is None


@pytest.mark.parametrize(
    ("patch_signature", "problem"),
    [
        ("(self, x)", "its positional parameters differ"),
        ("(self, x, mask=None, *, scale=1.0)", "upstream takes **kwargs but the patch does not"),
        ("(self, mask=None, x=None, **kwargs)", "its positional parameters differ"),
        ("(self, x, mask=None, y=None, *, scale=1.0, **kwargs)", "its positional parameters differ"),
        ("(self, x, mask=None, *, scale, **kwargs)", "requires keyword-only 'scale'"),
    ],
)
def test_signatures_that_break_an_upstream_call(patch_signature, problem):
    assert problem in override_signature_problem(params(patch_signature), params(UPSTREAM_PARAMS))


def test_upstream_keyword_only_needs_the_patch_to_take_it():
    upstream = params("(self, x, *, scale=1.0)")
    assert "keyword-only scale" in override_signature_problem(params("(self, x)"), upstream)
    assert override_signature_problem(params("(self, x, *, scale=1.0)"), upstream) is None


def test_format_params_reads_like_python():
    assert (
        format_params(params("(self, /, x, y=1, *args, k, m=2, **kw)")) == "(self, /, x, y=..., *args, k, m=..., **kw)"
    )
    assert format_params([Param("a", inspect.Parameter.KEYWORD_ONLY, False)]) == "(*, a)"


EVERY_STATEMENT_FORM = """
import a
def f():
    import b
    class C:
        from c import d
    try:
        import e
    except ImportError:
        import f2
    else:
        import g
    finally:
        import h
    with x:
        import i
    for _ in y:
        import j
    else:
        import k
    while z:
        import l
    if q:
        import m
    elif r:
        import n
    match v:
        case 1:
            import o
async def af():
    async with x:
        import p
    async for _ in y:
        import q2
try:
    pass
except* ValueError:
    import r2
"""


def test_the_self_containment_check_sees_imports_at_any_depth():
    """It looks at statements only (an import is one); every import `ast.walk` finds, it finds too."""
    from patchgen.plan.validation import _statements

    def imports(nodes):
        return sorted(ast.dump(n) for n in nodes if isinstance(n, (ast.Import, ast.ImportFrom)))

    sources = [EVERY_STATEMENT_FORM] + [p.read_text() for p in sorted((REPO / "generated").rglob("*.py"))]
    for source in sources:
        tree = ast.parse(source)
        assert imports(_statements(tree)) == imports(ast.walk(tree))
    assert len(imports(_statements(ast.parse(EVERY_STATEMENT_FORM)))) == 17


def test_sub_models_auto_model_would_build_from_transformers_are_found():
    """`AutoModel.from_config(config.text_config)` builds transformers' class: a problem only when the file defines
    its own class of that name (Qwen3-VL's towers), not for a part from another model (Llava's CLIP tower)."""
    import importlib

    from patchgen.plan.submodels import stock_submodels

    def found(module_name: str, text: str | None = None):
        module = importlib.import_module(module_name)
        tree = ast.parse(text if text is not None else Path(module.__file__).read_text())
        return [(s.owner, s.attribute, s.built) for s in stock_submodels(tree, module)]

    assert found("transformers.models.qwen3_vl.modeling_qwen3_vl") == [
        ("Qwen3VLModel", "vision_config", "Qwen3VLVisionModel"),
        ("Qwen3VLModel", "text_config", "Qwen3VLTextModel"),
    ]
    assert found("transformers.models.gemma3.modeling_gemma3") == [("Gemma3Model", "text_config", "Gemma3TextModel")]
    assert found("transformers.models.llava.modeling_llava") == []
    # the same call spelled with `config=` and `self.config`: found alike
    qwen3_vl = importlib.import_module("transformers.models.qwen3_vl.modeling_qwen3_vl")
    spelled = (
        Path(qwen3_vl.__file__)
        .read_text()
        .replace("AutoModel.from_config(config.text_config)", "AutoModel.from_config(config=self.config.text_config)")
    )
    assert "AutoModel.from_config(config=self.config.text_config)" in spelled
    assert ("Qwen3VLModel", "text_config", "Qwen3VLTextModel") in found(qwen3_vl.__name__, spelled)
    # another auto class asks its own mapping: AutoModelForCausalLM builds Qwen3.5's Qwen3_5ForCausalLM from its text
    # config (a class the file defines), and nothing from Qwen3-VL's (no causal-LM entry)
    qwen3_5 = importlib.import_module("transformers.models.qwen3_5.modeling_qwen3_5")
    causal = (
        Path(qwen3_5.__file__)
        .read_text()
        .replace("AutoModel.from_config(config.text_config)", "AutoModelForCausalLM.from_config(config.text_config)")
    )
    assert ("Qwen3_5Model", "text_config", "Qwen3_5ForCausalLM") in found(qwen3_5.__name__, causal)
    causal_vl = spelled.replace(
        "AutoModel.from_config(config=self.config.text_config)", "AutoModelForCausalLM.from_config(config.text_config)"
    )
    assert [f for f in found(qwen3_vl.__name__, causal_vl) if f[1] == "text_config"] == []
    for family in ("qwen3_vl", "qwen3_vl_moe", "qwen3_5", "qwen3_5_moe"):
        generated = (REPO / "generated" / family / f"patched_modeling_{family}_cpu.py").read_text()
        assert found(f"transformers.models.{family}.modeling_{family}", generated) == []
