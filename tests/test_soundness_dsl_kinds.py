"""The kinds of the expressive DSL (add_method, add_code/add_block, replace_assignment, keep_original_as,
`bind=`) and composition on shapes beyond `tests/fixtures/soundness`: each case is generated and compared
with the patches applied at run time (`tests/oracle.py`), or refused in one line."""

import importlib

import test_soundness_shapes as shapes
from oracle import compare


package = shapes.package  # the fixture writing a fresh importable package
config_for, refusal = shapes.config_for, shapes.refusal


UPSTREAM = """
SCALE = 3


class Block:
    def __init__(self, size):
        self.__size = size
        self.size = size

    def forward(self, x):
        return x * self.size


def fact(n):
    return 1 if n <= 1 else n * fact(n - 1)


class One:
    def forward(self, x):
        return x


class Two:
    def forward(self, x):
        return x
"""

SET_MODULE = """
from patchgen.dsl.patch_sets import PatchSet


def combine(x):
    return x + 1


def triple(x):
    return 3 * helper(x)


def helper(x):
    return x


FORWARD = PatchSet("forward", "a forward with an open step")


@FORWARD.override_method("layer.forward")
def forward(self, x):
    return combine(x)
"""

FORWARDS = {"One().forward(2)": lambda m: m.One().forward(2), "Two().forward(2)": lambda m: m.Two().forward(2)}


def setup(package, patches: str):
    """(upstream module name, patch module, config module name) of a fresh package."""
    upstream = package("up", UPSTREAM)
    patch_module = importlib.import_module(package("patches", patches.replace("{up}", upstream)))
    return upstream, patch_module, f"{upstream.split('.')[0]}.cfg"


# -- keep_original_as ------------------------------------------------------------------------------


def test_kept_recursive_original_calls_the_patch_like_at_run_time(package, tmp_path):
    # upstream's fact(n - 1) inside the kept original means the module's `fact`: the patch, at run time too
    upstream, patches, cfg = setup(
        package, "from {up} import fact as upstream_fact\n\n\ndef fact_plus_one(n):\n    return upstream_fact(n) + 1\n"
    )
    config = config_for(upstream)
    config.replace_function("fact", keep_original_as="upstream_fact")(patches.fact_plus_one)
    text = compare(
        config, cfg, {"fact(4)": lambda m: m.fact(4), "upstream_fact(4)": lambda m: m.upstream_fact(4)}, tmp_path
    )
    assert "def upstream_fact(n):\n    return 1 if n <= 1 else n * fact(n - 1)" in text


def test_kept_class_whose_private_names_the_new_name_would_change_is_refused(package, tmp_path):
    upstream, patches, cfg = setup(
        package,
        "from {up} import Block as UpstreamBlock\n\n\n"
        "class FastBlock(UpstreamBlock):\n    def forward(self, x):\n        return super().forward(x) + 1\n",
    )
    config = config_for(upstream)
    config.replace_class("Block", keep_original_as="UpstreamBlock")(patches.FastBlock)
    error = refusal(config, cfg.split(".")[0], tmp_path)
    assert "'__size'" in error and "'_Block__size'" in error and "'_UpstreamBlock__size'" in error, error
    assert "patches.py:4: class_replacement Block" in error and "override_method" in error, error


def test_private_names_for_added_or_kept_methods_are_refused(package, tmp_path):
    upstream, patches, cfg = setup(
        package, "def __secret(self):\n    return 7\n\n\ndef forward(self, x):\n    return 1\n"
    )
    added = config_for(upstream)
    added.add_method("Block.__secret")(vars(patches)["__secret"])
    error = refusal(added, cfg.split(".")[0], tmp_path)
    assert "method_addition Block.__secret" in error and "'_Block__secret'" in error and "'secret'" in error, error
    kept = config_for(upstream)
    kept.override_method("Block.forward", keep_original_as="__orig")(patches.forward)
    error = refusal(kept, cfg.split(".")[0], tmp_path)
    assert "keep_original_as '__orig'" in error and "'_Block__orig'" in error, error


# -- patch sets: bind= and one set used twice -------------------------------------------------------


def test_one_set_bound_differently_for_two_targets(package, tmp_path):
    upstream, sets, cfg = setup(package, SET_MODULE)
    config = config_for(upstream)
    config.use(sets.FORWARD, "One", bind={"combine": sets.triple})
    config.use(sets.FORWARD, "Two")
    text = compare(config, cfg, FORWARDS, tmp_path)
    assert "return triple(x)" in text and "return combine(x)" in text


def test_a_later_use_with_override_rebinds_the_step(package, tmp_path):
    upstream, sets, cfg = setup(package, SET_MODULE)
    config = config_for(upstream)
    config.use(sets.FORWARD, "One", bind={"combine": sets.triple})
    config.use(sets.FORWARD, "One", bind={"combine": sets.helper}, override=True)
    text = compare(config, cfg, FORWARDS, tmp_path)
    assert "def triple" not in text and "return helper(x)" in text


# -- add_code / add_block ---------------------------------------------------------------------------


def test_added_code_reading_an_upstream_name_bound_below_names_the_patch_and_the_anchor(package, tmp_path):
    # at run time the block runs after the whole module; placed after the imports it would run before `fact`
    upstream, patches, cfg = setup(package, "from {up} import fact\n\n\ndef table():\n    SIX = fact(3)\n")
    config = config_for(upstream)
    config.add_block(after="imports")(patches.table)
    error = refusal(config, cfg.split(".")[0], tmp_path)
    assert "Undefined name `fact`" in error and "code of module_code table, at" in error, error
    assert "patches.py:4" in error and "place it with after='fact'" in error, error
    assigned = config_for(upstream)
    assigned.replace_assignment("SCALE")(_scale_block(package, upstream))
    error = refusal(assigned, cfg.split(".")[0], tmp_path)
    assert "code of assignment_replacement SCALE" in error and "only below it" in error and "after=" not in error, (
        error
    )


def _scale_block(package, upstream):
    text = f"from {upstream} import fact\n\n\ndef scale():\n    SCALE = fact(3)\n"
    module = importlib.import_module(package("scale_block", text))
    return module.scale


def test_a_block_reads_a_function_another_patch_adds(package, tmp_path):
    upstream, patches, cfg = setup(package, "def make_six():\n    return 6\n\n\ndef table():\n    SIX = make_six()\n")
    config = config_for(upstream)
    config.add_code(after="imports")(patches.make_six)
    config.add_block(after="fact")(patches.table)
    text = compare(config, cfg, {"SIX": lambda m: m.SIX, "make_six()": lambda m: m.make_six()}, tmp_path)
    assert text.count("def make_six") == 1 and "SIX = make_six()" in text


def test_a_patch_reading_its_upstream_class_by_import_sees_the_kept_method(package, tmp_path):
    # `Block` in the patch module is upstream's class, which at run time is the patched one
    upstream, patches, cfg = setup(
        package, "from {up} import Block\n\n\ndef forward(self, x):\n    return Block.upstream_forward(self, x) + 1\n"
    )
    config = config_for(upstream)
    config.override_method("Block.forward", keep_original_as="upstream_forward")(patches.forward)
    text = compare(config, cfg, {"Block(2).forward(3)": lambda m: m.Block(2).forward(3)}, tmp_path)
    assert "return Block.upstream_forward(self, x) + 1" in text


# -- replace_assignment and names changed at import -------------------------------------------------

REGISTRY_UPSTREAM = """
TABLE = {}
TABLE["a"] = 1
ITEMS = [1]


def register(f):
    ITEMS.append(f.__name__)
    return f


def scale(x):
    return x * 2


register(scale)
"""


def test_replacing_an_assignment_upstream_changes_later_at_import_is_refused(package, tmp_path):
    # at run time the new value replaces the result of TABLE["a"] = 1 / register(scale); in the output they run on it
    upstream = package("registry", REGISTRY_UPSTREAM)
    for name, value, line in [("TABLE", {"b": 2}, "line 3 "), ("ITEMS", [9], "line 16 ")]:
        config = config_for(upstream)
        config.replace_assignment(name, value)
        error = refusal(config, upstream.split(".")[0], tmp_path)
        assert f"assignment_replacement {name}: upstream changes {name!r} after assigning it" in error, error
        assert line in error and f"patch the code that reads {name!r}" in error, error
