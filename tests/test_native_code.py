"""The generator keeps moved model classes transformers' own code (`patchgen/load/native_code.py`).

The numbers (initialisation under one seed, `is_custom_code()` of every family's classes, stock checkpoints
loading) are `tests/test_hf_behaviours.py`'s and the MoE model tests'; here: which classes get the
override, and that a config's own patch of the class or of `is_custom_code` is left alone.
"""

import pytest

from patchgen.dsl.patch_spec import PatchConfig, SourceLocation
from patchgen.load.native_code import NATIVE_MODEL_CODE, pretrained_model_classes, with_native_model_code
from patchgen.load.upstream import read_upstream


HERE = SourceLocation(__name__, "tests/test_native_code.py", 1)


@pytest.mark.parametrize(
    ("model", "roots"),
    [("qwen3", ["Qwen3PreTrainedModel"]), ("qwen2_5_vl", ["Qwen2_5_VLPreTrainedModel"])],
)
def test_the_roots_of_a_model_family_get_the_override(model, roots):
    upstream = read_upstream(f"transformers.models.{model}.modeling_{model}")
    assert pretrained_model_classes(upstream) == roots
    config = PatchConfig(source_module=upstream.name, target_file="out.py")
    extended = with_native_model_code(config, upstream)
    assert [patch.target for patch in extended.patches] == [f"{root}.is_custom_code" for root in roots]
    assert config.patches == []  # the loaded config itself is not changed


def test_a_config_that_patches_is_custom_code_itself_keeps_its_own():
    upstream = read_upstream("transformers.models.qwen3.modeling_qwen3")
    config = PatchConfig(source_module=upstream.name, target_file="out.py")
    config.patches += NATIVE_MODEL_CODE.bind(None, {"pretrained_model": "Qwen3PreTrainedModel"}, applied_at=HERE)
    assert with_native_model_code(config, upstream) is config


def test_an_upstream_without_model_classes_is_left_alone():
    upstream = read_upstream("transformers.models.qwen3.configuration_qwen3")
    config = PatchConfig(source_module=upstream.name, target_file="out.py")
    assert pretrained_model_classes(upstream) == []
    assert with_native_model_code(config, upstream) is config
