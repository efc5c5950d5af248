"""Generated models answer every capability question transformers asks exactly as the stock models do.

transformers decides what a model supports from class attributes (`_supports_sdpa`, `_no_split_modules`,
...), from the class's module name (`is_custom_code()`: outside `transformers.` a model is custom code)
and from the module's source text (`_can_set_attn_implementation()`, `_can_set_experts_implementation()`).
A generated file moves the classes and rewrites the text, so each of these can change silently. Here:
- every PreTrainedModel class of every committed generated file against the stock class of its name;
- toy upstreams (`tests/fixtures/capup`) and configs (`tests/fixtures/capabilities`): added code that
  would change a source-read capability is refused in one line (exit 2, nothing written); code that
  does not is generated and keeps the answers; a root deriving from PreTrainedModel through a base in
  another module gets the native-code override; a replaced root must define `is_custom_code` itself.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re

import pytest
from capabilities import configs, patches
from conftest import FIXTURES, REPO, import_file, run_cli
from transformers import PreTrainedModel

from patchgen.commands.codegen import generate
from patchgen.load.discovery import LoadedConfig


# Class attributes and properties `PreTrainedModel` (5.17) reads to decide what a model supports or how it
# is loaded, saved, split or compiled.
ATTRIBUTES = (
    "_supports_sdpa",
    "_supports_flash_attn",
    "_supports_flex_attn",
    "_supports_attention_backend",
    "_compatible_flash_implementations",
    "_supports_context_parallel",
    "supports_gradient_checkpointing",
    "_can_compile_fullgraph",
    "_can_record_outputs",
    "_no_split_modules",
    "_skip_keys_device_placement",
    "_keep_in_fp32_modules",
    "_keep_in_fp32_modules_strict",
    "_tied_weights_keys",
    "_keys_to_ignore_on_load_missing",
    "_keys_to_ignore_on_load_unexpected",
    "_keys_to_ignore_on_save",
    "_checkpoint_conversion_mapping",
    "_is_stateful",
    "_auto_class",
    "_input_embed_layer",
    "_tp_plan",
    "_pp_plan",
    "_ep_plan",
    "base_model_prefix",
    "main_input_name",
    "input_modalities",
    "config_class",
)
# Classmethods that answer from the module name or the module text.
QUESTIONS = ("is_custom_code", "is_remote_code", "_can_set_attn_implementation", "_can_set_experts_implementation")


def normal(value):
    """`value` as plain data: classes by name (a generated file has its own class objects), sets sorted."""
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, dict):
        return {str(k): normal(v) for k, v in sorted(value.items(), key=lambda item: str(item[0]))}
    if isinstance(value, (list, tuple)):
        return [normal(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(normal(v) for v in value)
    if hasattr(value, "__dict__") and not callable(value):
        return [type(value).__name__, normal(vars(value))]
    return value


def capabilities(cls: type) -> dict:
    answers = {name: normal(getattr(cls, name, None)) for name in ATTRIBUTES}
    answers |= {name: getattr(cls, name)() for name in QUESTIONS}
    return answers


def model_classes(module) -> dict[str, type]:
    return {
        name: obj
        for name, obj in vars(module).items()
        if isinstance(obj, type) and obj.__module__ == module.__name__ and issubclass(obj, PreTrainedModel)
    }


GENERATED = sorted(p.relative_to(REPO) for p in (REPO / "generated").glob("*/patched_modeling_*.py"))


@pytest.mark.parametrize("path", GENERATED, ids=[p.stem.removeprefix("patched_modeling_") for p in GENERATED])
def test_every_model_class_of_a_generated_file_answers_as_the_stock_class(path):
    lock = json.loads((REPO / path).with_suffix(".lock.json").read_text())
    stock = importlib.import_module(lock["source_module"])
    generated = import_file(REPO / path, f"capabilities_{path.stem}")
    compared = 0
    for name, cls in model_classes(generated).items():
        if not isinstance(getattr(stock, name, None), type):
            continue  # a class the config adds: no stock class to answer like
        assert capabilities(cls) == capabilities(getattr(stock, name)), name
        compared += 1
    assert compared, f"{path}: no model class compared"


# -- toy upstreams ----------------------------------------------------------------------------------


REFUSED = {
    "added_attention": (
        f"capabilities/patches.py:{inspect.getsourcelines(patches.ExtraAttention)[1]}: module_code ExtraAttention",
        "would change _can_set_attn_implementation() from True (stock) to False",
        "name an added class without 'Attention'",
    ),
    "dropped_experts": (
        "class_replacement MoeExperts",
        "would change _can_set_experts_implementation() from True (stock) to False",
        "keep the decorator on the replaced experts class",
    ),
    "replaced_root": (
        "class_replacement PlainPreTrainedModel replaces a root model class",
        "define `is_custom_code` in it",
    ),
}
GENERATES = ("added_mixer", "untouched_plain", "replaced_native_root")


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_output_that_would_change_a_capability_is_refused_in_one_line(name, tmp_path):
    (result,) = generate([LoadedConfig("capabilities.configs", getattr(configs, name))], output_dir=tmp_path)
    assert result.outputs == [] and list(tmp_path.iterdir()) == []
    assert result.error.startswith("capabilities.configs: ") and "\n" not in result.error
    assert not re.search(r"0x[0-9a-f]{6,}|/tmp/|/work/", result.error), result.error
    for fragment in REFUSED[name]:
        assert fragment in result.error, (fragment, result.error)


@pytest.mark.parametrize("name", GENERATES)
def test_output_that_keeps_the_capabilities_generates_and_answers_as_upstream(name, tmp_path):
    config = getattr(configs, name)
    (result,) = generate([LoadedConfig("capabilities.configs", config)], output_dir=tmp_path)
    assert result.error is None, result.error
    path = tmp_path / config.target_file
    path.write_text(result.outputs[0].text)
    generated = import_file(path, f"capabilities_toy_{name}")
    stock = importlib.import_module(config.source_module)
    classes = model_classes(generated)
    assert set(classes) == {n for n in model_classes(stock) if n in classes} and classes
    for class_name, cls in classes.items():
        expected = capabilities(getattr(stock, class_name))
        # the toy upstream lives outside `transformers.`, so its own classes are custom code; a generated
        # file's stand for transformers' own (the upstream a real config names is always transformers')
        assert expected.pop("is_custom_code") is True
        assert capabilities(cls) == {**expected, "is_custom_code": False}, class_name


def test_a_refused_config_exits_2_and_writes_nothing(tmp_path):
    """As a user runs it: `run_codegen --all` on a project whose config adds an attention class."""
    root = tmp_path / "project"
    (root / "models/plain").mkdir(parents=True)
    (root / "models/__init__.py").write_text("")
    (root / "models/plain/__init__.py").write_text("")
    (root / "models/plain/plain_gpu_patch_gen_config.py").write_text(
        "from capabilities.configs import added_attention as config\n"
    )
    result = run_cli("patchgen.commands.run_codegen", "--all", "--diff", cwd=root, extra_path=(FIXTURES,))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if "_can_set_attn_implementation" in line]
    assert len(lines) == 1 and "ExtraAttention" in lines[0]
    assert "Traceback" not in result.stderr
    assert not (root / "generated").exists() or not list((root / "generated").rglob("*.py"))


def test_roots_are_found_through_bases_defined_elsewhere():
    from patchgen.load.native_code import pretrained_model_classes
    from patchgen.load.upstream import read_upstream

    assert pretrained_model_classes(read_upstream("capup.modeling_plain")) == ["PlainPreTrainedModel"]
    assert pretrained_model_classes(read_upstream("transformers.models.xcodec.modeling_xcodec")) == [
        "XcodecPreTrainedModel"
    ]
