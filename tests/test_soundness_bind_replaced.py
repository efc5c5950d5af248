"""`bind=` a placeholder to an upstream object the same config replaces: the rule for reading a replaced
original holds on this path too (issue 21.2). At run time (`tests/oracle.py`) the bound object is upstream's
original; the output must bind the original kept under `keep_original_as`, or refuse in one line."""

import importlib

from oracle import compare
from test_soundness_dsl_kinds import FORWARDS, SET_MODULE, UPSTREAM, config_for, package, refusal  # noqa: F401


PATCHES = (
    SET_MODULE
    + """

def fact_of_ten(n):
    return 10
"""
)


def setup(package, patches):  # noqa: F811
    """As test_soundness_dsl_kinds.setup, with a non-recursive `fact` (the oracle's bound object is the original
    module's, whose recursion would not see the patch)."""
    upstream = package("up", UPSTREAM.replace("n * fact(n - 1)", "n * 2"))
    return upstream, importlib.import_module(package("patches", patches)), f"{upstream.split('.')[0]}.cfg"


def test_binding_a_replaced_original_is_refused(package, tmp_path):  # noqa: F811
    upstream, sets, cfg = setup(package, PATCHES)
    config = config_for(upstream)
    config.replace_function("fact")(sets.fact_of_ten)
    config.use(sets.FORWARD, "One", bind={"combine": importlib.import_module(upstream).fact})
    error = refusal(config, cfg.split(".")[0], tmp_path)
    assert "bind: combine=fact is upstream's original fact, which this config replaces" in error, error
    assert "keep_original_as='upstream_fact'" in error, error


def test_binding_a_replaced_original_kept_binds_the_kept_name(package, tmp_path):  # noqa: F811
    upstream, sets, cfg = setup(package, PATCHES)
    config = config_for(upstream)
    config.replace_function("fact", keep_original_as="upstream_fact")(sets.fact_of_ten)
    config.use(sets.FORWARD, "One", bind={"combine": importlib.import_module(upstream).fact})
    text = compare(config, cfg, {**FORWARDS, "fact(4)": lambda m: m.fact(4)}, tmp_path)
    assert "return upstream_fact(x)" in text, text


def test_binding_an_upstream_object_not_replaced_is_unchanged(package, tmp_path):  # noqa: F811
    upstream, sets, cfg = setup(package, PATCHES)
    config = config_for(upstream)
    config.use(sets.FORWARD, "One", bind={"combine": importlib.import_module(upstream).fact})
    text = compare(config, cfg, FORWARDS, tmp_path)
    assert "return fact(x)" in text, text
