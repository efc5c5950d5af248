"""Sub-models a generated file would build from transformers instead of from itself.

A composite model (a vision-language model and its text decoder, Qwen3-VL, Gemma 3) may build a part with
`AutoModel.from_config(config.text_config)` (or another auto class: `AutoModelForCausalLM`). The auto mapping resolves the sub-config's class to
*transformers'* model class, so when the generated file defines a class of that name (its own copy, which
its patches change), the model it builds runs transformers' class instead: every patch below that point is
unused, and since the result equals stock, no comparison with stock can tell. The output is refused then,
naming the class and the way out (`OWN_SUBMODELS`, or an `__init__` that builds the file's class). A part
that resolves to a class the file does not define (Llava's CLIP vision tower) is what upstream means, and
passes.

Which class AutoModel picks is asked of transformers for the config the model class declares
(`config_class`), built with its defaults: the same mapping `from_pretrained` uses.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class StockSubmodel:
    """`owner.__init__` calls `AutoModel.from_config(config.<attribute>)`, which builds transformers' `built`."""

    owner: str
    attribute: str
    built: str
    line: int


def stock_submodels(tree: ast.Module, upstream_module: ModuleType) -> list[StockSubmodel]:
    """The `AutoModel...from_config(config.<attr>)` calls in the output's classes that build transformers' own
    class of a name the output defines."""
    defined = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    found = []
    for owner in (node for node in tree.body if isinstance(node, ast.ClassDef)):
        for auto_class, attribute, line in _auto_model_calls(owner):
            for built in sorted(
                _classes_auto_class_builds(auto_class, upstream_module, owner.name, attribute) & defined
            ):
                found.append(StockSubmodel(owner.name, attribute, built, line))
    return found


def _auto_model_calls(owner: ast.ClassDef) -> list[tuple[str, str, int]]:
    """(auto class, config attribute, line) of each `AutoModel<...>.from_config(config.<attr>)` call in the class's
    `__init__` (the config positional or `config=`, read as `config.<attr>` or `self.config.<attr>`)."""
    init = next((n for n in owner.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    if init is None:
        return []
    calls = []
    for node in ast.walk(init):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "from_config"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id.startswith("AutoModel")
        ):
            continue
        argument = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "config"), None)
        if isinstance(argument, ast.Attribute) and _is_config(argument.value):
            calls.append((node.func.value.id, argument.attr, node.lineno))
    return calls


def _is_config(node: ast.expr) -> bool:
    """`config` or `self.config`."""
    if isinstance(node, ast.Name):
        return node.id == "config"
    return isinstance(node, ast.Attribute) and node.attr == "config" and isinstance(node.value, ast.Name)


def _classes_auto_class_builds(auto_class: str, upstream_module: ModuleType, owner: str, attribute: str) -> set[str]:
    """The names of the classes `<auto_class>.from_config` may build for `<owner's config>.<attribute>`; none when
    the owner is not upstream's, declares no config class, or the auto class's mapping has no entry."""
    from transformers.models.auto import modeling_auto

    mapping = getattr(getattr(modeling_auto, auto_class, None), "_model_mapping", None)
    config_class = getattr(getattr(upstream_module, owner, None), "config_class", None)
    if mapping is None or not isinstance(config_class, type):
        return set()
    try:
        sub_config = getattr(config_class(), attribute, None)
    except Exception:  # noqa: BLE001 - a config that cannot be built with its defaults: nothing to ask
        return set()
    if sub_config is None:
        return set()
    try:
        built = mapping[type(sub_config)]
    except (KeyError, ValueError, AttributeError):
        return set()
    return {getattr(cls, "__name__", "") for cls in (built if isinstance(built, tuple) else (built,))}
