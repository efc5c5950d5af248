"""Upstream and patch source shapes the generator must survive: odd bytes, encodings, `__all__` forms,
one-line bodies, non-ASCII names, bad DSL arguments. Each case is written to a fresh package, then
generated and compared with the patches applied at run time (`tests/oracle.py`), or refused in one line."""

import importlib
import itertools
import sys
import textwrap

import pytest
from oracle import compare

from patchgen import PatchConfig, create_patch_from_external
from patchgen.commands.codegen import generate
from patchgen.dsl.errors import PatchgenError
from patchgen.load.discovery import LoadedConfig


_PACKAGES = itertools.count()


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A fresh importable package `shape_pkg_<n>`; `write(name, text)` adds a module and returns its name."""
    name = f"shape_pkg_{next(_PACKAGES)}"
    root = tmp_path / "src" / name
    root.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))

    def write(module: str, text: str | bytes) -> str:
        path = root / f"{module}.py"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text), encoding="utf-8", newline="")
        importlib.invalidate_caches()
        return f"{name}.{module}"

    yield write
    for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[loaded]


def config_for(upstream: str, **kwargs) -> PatchConfig:
    return PatchConfig(source_module=upstream, target_file="patched_shape.py", **kwargs)


def generated_text(config: PatchConfig, package_name: str, tmp_path) -> str:
    (result,) = generate([LoadedConfig(f"{package_name}.cfg", config)], output_dir=tmp_path / "out")
    assert result.error is None, result.error
    return result.module_output.text


def refusal(config: PatchConfig, package_name: str, tmp_path) -> str:
    (result,) = generate([LoadedConfig(f"{package_name}.cfg", config)], output_dir=tmp_path / "out")
    assert result.error is not None and not result.outputs
    assert "\n" not in result.error and str(tmp_path) not in result.error, result.error
    return result.error


# -- upstream source shapes ------------------------------------------------------------------------


def test_upstream_with_a_syntax_error_is_one_line(package, tmp_path):
    upstream = package("up", "def broken(:\n    pass\n")
    error = refusal(config_for(upstream), upstream.split(".")[0], tmp_path)
    assert "cannot be parsed" in error and "line 1" in error and "reinstall" in error


def test_latin1_upstream_generates_a_utf8_file_that_behaves_the_same(package, tmp_path):
    source = "# -*- coding: latin-1 -*-\ndef greet():\n    return 'caf\xe9'\n\n\ndef other():\n    return 1\n"
    upstream = package("up", source.encode("latin-1"))
    patches = package("patches", "def other_patched():\n    return 2\n")
    config = config_for(upstream)
    config.replace_function("other")(importlib.import_module(patches).other_patched)
    text = compare(
        config, f"{upstream.split('.')[0]}.cfg", {"greet": lambda m: m.greet(), "other": lambda m: m.other()}, tmp_path
    )
    assert text.splitlines()[text.splitlines().index("# -*- coding: utf-8 -*-")] == "# -*- coding: utf-8 -*-"
    assert "caf\xe9" in text


def test_form_feed_nel_and_line_separators_in_upstream_keep_line_numbers(package, tmp_path):
    source = (
        '"""Docstring with \u2028 and \x85 inside."""\n'
        "\f\n"
        "# comment with \u2029 and \f inside\n"
        "def first():\n"
        "    return 'x\u2028y'\n"
        "\n"
        "\n"
        "def second():\n"
        "    return 2\n"
    )
    upstream = package("up", source)
    patches = package("patches", "def second_patched():\n    return 20\n")
    config = config_for(upstream)
    config.replace_function("second")(importlib.import_module(patches).second_patched)
    text = compare(
        config,
        f"{upstream.split('.')[0]}.cfg",
        {"first": lambda m: m.first(), "second": lambda m: m.second()},
        tmp_path,
    )
    assert 'return "x\u2028y"' in text and "return 20" in text  # ruff normalises the quotes


def test_added_import_in_upstream_without_imports_goes_below_the_docstring(package, tmp_path):
    upstream = package("up", '"""Module docstring."""\n\n\ndef value():\n    return 1\n')
    config = config_for(upstream)
    config.add_import("math", names=["pi"])
    text = generated_text(config, upstream.split(".")[0], tmp_path)
    body = text[text.index('"""Module docstring."""') :]
    assert body.index('"""Module docstring."""') < body.index("from math import pi")


@pytest.mark.parametrize(
    ("declaration", "kept"),
    [
        (
            '__all__ = [\n    "keep",  # kept\n    "drop",  # dropped with its line\n]\n',
            '__all__ = [\n    "keep",  # kept\n]',
        ),
        ('__all__: list[str] = ["keep", "drop"]\n', '__all__: list[str] = ["keep"]'),
        ('__all__ = ["keep"]\n__all__ += ["drop"]\n', "__all__ += []"),
    ],
    ids=["last-entry-comment", "annotated", "augmented"],
)
def test_exclusion_edits_every_form_of_all(package, tmp_path, declaration, kept):
    upstream = package("up", f"def keep():\n    return 1\n\n\ndef drop():\n    return 2\n\n\n{declaration}")
    config = config_for(upstream)
    config.exclude_from_output("drop")
    text = generated_text(config, upstream.split(".")[0], tmp_path)
    assert kept in text, text
    assert "# dropped with its line" not in text and "def drop" not in text


def test_one_line_init_and_docstring_only_class_get_code_in_the_right_place(package, tmp_path):
    upstream = package(
        "up",
        '''
        class Base:
            def __init__(self, size): self.size = size


        class Documented:
            """Only a docstring."""
        ''',
    )
    patches = package(
        "patches",
        """
        def base_init(original_init, self, size):
            original_init(self, size)
            self.double = size * 2


        def documented_init(original_init, self):
            original_init(self)
            self.flag = True
        """,
    )
    module = importlib.import_module(patches)
    config = config_for(upstream)
    config.modify_init("Base")(module.base_init)
    config.modify_init("Documented")(module.documented_init)
    scenarios = {"Base(3)": lambda m: vars(m.Base(3)), "Documented()": lambda m: vars(m.Documented())}
    text = compare(config, f"{upstream.split('.')[0]}.cfg", scenarios, tmp_path)
    documented = text[text.index("class Documented:") :]
    assert documented.index('"""Only a docstring."""') < documented.index("def __init__")


def test_non_ascii_replacement_class_is_renamed(package, tmp_path):
    upstream = package("up", "class Norm:\n    def value(self):\n        return 1\n")
    patches = package("patches", "class Normé:\n    def value(self):\n        return isinstance(self, Normé)\n")
    config = config_for(upstream)
    config.replace_class("Norm")(importlib.import_module(patches).Normé)
    text = compare(config, f"{upstream.split('.')[0]}.cfg", {"value": lambda m: m.Norm().value()}, tmp_path)
    assert "class Norm:" in text and "isinstance(self, Norm)" in text and "Normé" not in text


def test_guarded_helper_and_recursive_decorated_helper_are_copied_once(package, tmp_path):
    upstream = package("up", "def value(x):\n    return x\n")
    patches = package(
        "patches",
        """
        import functools

        try:
            from math import prod as product
        except ImportError:  # pragma: no cover
            product = None


        @functools.lru_cache
        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)


        def value_patched(x):
            return fib(x) + product([x, 2]) + fib(x - 1)
        """,
    )
    config = config_for(upstream)
    config.replace_function("value")(importlib.import_module(patches).value_patched)
    text = compare(config, f"{upstream.split('.')[0]}.cfg", {"value(7)": lambda m: m.value(7)}, tmp_path)
    assert text.count("def fib(") == 1 and text.count("from math import prod as product") == 1


# -- bad DSL arguments: one line, at the call ----------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.add_import("math", names="sqrt"), "names must be a list of names, e.g. names=['sqrt']"),
        (lambda c: c.add_import("math", names=["sq rt"]), "'sq rt' is not 'name' or 'name as alias'"),
        (lambda c: c.add_import(3), "module must be a dotted name"),
        (lambda c: c.exclude_from_output(["ToyMLP"]), "each name must be a name like 'Qwen3MLP', got a list"),
        (lambda c: c.exclude_from_output(PatchConfig), "got class PatchConfig (pass the upstream name as a string"),
        (lambda c: c.replace_class(PatchConfig), "target must be a name like 'Qwen3MLP', got class PatchConfig"),
        (lambda c: c.replace_function("scale", description=None), "description must be a string, got a NoneType"),
        (lambda c: c.override_method("A.b", override="yes"), "override must be True or False"),
        (lambda c: c.add_statement(None), "code must be a string"),
        (lambda c: create_patch_from_external("scale", "math", 3), "replacement_name must be a name"),
    ],
    ids=[
        "names-as-string",
        "bad-name",
        "module-not-string",
        "exclusion-list",
        "exclusion-class",
        "target-class-object",
        "description-none",
        "override-not-bool",
        "statement-none",
        "external-name-not-string",
    ],
)
def test_bad_dsl_arguments_fail_at_the_call_in_one_line(call, message):
    config = PatchConfig(source_module="toyupstream.models.toy.modeling_toy", target_file="patched_x.py")
    with pytest.raises(PatchgenError) as raised:
        call(config)
    error = str(raised.value)
    assert message in error, error
    assert "test_soundness_shapes.py:" in error and "\n" not in error and "0x" not in error


def test_bad_source_module_is_one_line():
    with pytest.raises(PatchgenError, match="source_module must be a dotted name"):
        PatchConfig(source_module=None, target_file="patched_x.py")


# -- the registered class, when a config registers it by a plain call ----------------------------------


def test_class_defined_twice_registered_from_a_config_is_found_by_its_methods(package, tmp_path):
    """A config's `replace_class("Norm")(patches.FastNorm)` runs in the config file, so the line it runs on
    says nothing about the patch module: the class is found by where its methods are defined. The config
    line here falls inside the first (unregistered) definition, which was once copied instead."""
    upstream = package("up", "class Norm:\n    def forward(self, x):\n        return x\n")
    first = "class FastNorm:\n" + "".join(f"    # line {i}\n" for i in range(2, 9)) + "    def forward(self, x):\n"
    patches = package(
        "patches",
        first + '        return "first"\n\n\nif True:\n\n    class FastNorm:\n'
        '        def forward(self, x):\n            return "second"\n',
    )
    config_module = package(
        "cfg",
        f"import {patches} as patches\nfrom patchgen import PatchConfig\n\n"
        f'config = PatchConfig(source_module="{upstream}", target_file="patched_shape.py")\n'
        'config.replace_class("Norm")(patches.FastNorm)  # line 5: inside the first FastNorm\n',
    )
    config = importlib.import_module(config_module).config
    text = compare(config, config_module, {"forward": lambda m: m.Norm().forward(1)}, tmp_path)
    assert '"second"' in text and '"first"' not in text


def test_upstream_package_init_resolves_its_relative_imports_from_itself(package, tmp_path):
    """`from .helpers import offset` in a package's `__init__.py` is relative to that package, not its parent."""
    patches = package("patches", "def other_patched(x):\n    return -x\n")
    upstream = patches.split(".")[0] + "_upstream"  # a package of its own, beside the patch package
    root = tmp_path / "src" / upstream
    root.mkdir()
    (root / "helpers.py").write_text("def offset(x):\n    return x + 100\n")
    (root / "__init__.py").write_text(
        "from .helpers import offset\n\n\ndef shift(x):\n    return offset(x)\n\n\ndef other(x):\n    return x\n"
    )
    importlib.invalidate_caches()
    config = config_for(upstream)
    config.replace_function("other")(importlib.import_module(patches).other_patched)
    scenarios = {"shift": lambda m: m.shift(1), "other": lambda m: m.other(2)}
    try:
        text = compare(config, f"{patches.split('.')[0]}.cfg", scenarios, tmp_path)
    finally:
        for loaded in [m for m in sys.modules if m == upstream or m.startswith(upstream + ".")]:
            del sys.modules[loaded]
    assert f"from {upstream}.helpers import offset" in text


def test_upstream_reading_a_replaced_name_at_import_time_gets_the_replacement(package, tmp_path):
    """The documented difference from a monkey patch applied after import: the output is upstream with the
    patch written in, so a subclass, a default value and a module-level alias see the replacement."""
    upstream = package(
        "up",
        """
        class Block:
            def value(self):
                return "upstream"


        class Child(Block):
            pass


        def value_of(block=Block):
            return block().value()


        BlockAlias = Block
        """,
    )
    patches = package("patches", 'class FastBlock:\n    def value(self):\n        return "patched"\n')
    config = config_for(upstream)
    config.replace_class("Block")(importlib.import_module(patches).FastBlock)
    text = generated_text(config, upstream.split(".")[0], tmp_path)
    path = tmp_path / "gen.py"
    path.write_text(text)
    namespace = {"__name__": "gen"}
    exec(compile(text, str(path), "exec"), namespace)  # noqa: S102 - the file just generated
    assert namespace["Child"]().value() == "patched"
    assert namespace["value_of"]() == "patched"
    assert namespace["BlockAlias"] is namespace["Block"]


def test_a_lambda_or_a_property_patch_is_refused_at_its_own_line(package, tmp_path):
    patches = importlib.import_module(
        package(
            "patches", "shift_lambda = (\n    lambda x: x * 9\n)\n\n\n@property\ndef doubled(self):\n    return 2\n"
        )
    )
    upstream = package("up", "def shift(x):\n    return x\n\n\nclass Block:\n    pass\n")
    config = config_for(upstream)
    config.replace_function("shift")(patches.shift_lambda)
    error = refusal(config, upstream.split(".")[0], tmp_path)
    assert "patches.py:2:" in error and "a lambda cannot be copied" in error, error
    with pytest.raises(PatchgenError, match=r"patches\.py:7: method_addition Block\.doubled: .*a property"):
        config_for(upstream).add_method("Block.doubled")(patches.doubled)


def test_a_function_whose_code_comes_from_elsewhere_is_refused(package, tmp_path):
    """Found by its code's first line, a function compiled from a string would match whatever definition
    of its name sits at that line of its module: here the source version, not the registered one."""
    patches = importlib.import_module(
        package(
            "patches",
            """
            def shift_p(x):
                return "source version"


            _namespace = {}
            exec(compile("\\ndef shift_p(x):\\n    return 'exec version'\\n", "<generated>", "exec"), _namespace)
            shift_made = _namespace["shift_p"]
            shift_made.__module__ = __name__
            """,
        )
    )
    upstream = package("up", "def shift(x):\n    return x\n")
    config = config_for(upstream)
    config.replace_function("shift")(patches.shift_made)
    error = refusal(config, upstream.split(".")[0], tmp_path)
    assert "its code comes from <generated>" in error, error


def test_definitions_a_plain_decorator_registers_are_copied_with_the_registry(package, tmp_path):
    """`@register` whose body appends to the module's `REG` changes `REG` when the definition runs: a patch that
    reads `REG` needs every such definition in the output (they were left out, so `REG` came out empty)."""
    upstream = package("up", "def count(x):\n    return x\n")
    patches = package(
        "patches",
        """\
        REG = []


        def register(fn):
            REG.append(fn.__name__)
            return fn


        @register
        def first(x):
            return x


        @register
        def second(x):
            return 2 * x


        def counted(x):
            return x + len(REG)
        """,
    )
    config = config_for(upstream)
    config.replace_function("count")(importlib.import_module(patches).counted)
    text = compare(config, f"{patches.split('.')[0]}.cfg", {"count": lambda m: m.count(1)}, tmp_path)
    assert "@register\ndef first(" in text and "@register\ndef second(" in text
