"""A generated file's models stay transformers' own code to transformers, as the patched upstream's would.

transformers treats a model class whose module lies outside the `transformers` package as custom code
(`PreTrainedModel.is_custom_code()`), and then behaves unlike it does for its own classes (5.17):

- weight initialisation (`PreTrainedModel._initialize_weights`) skips `_init_weights` for a module with
  no parameters of its own once its children are initialised. Qwen3-Next initialises its router from
  the parent's branch (`isinstance(module, Qwen3NextSparseMoeBlock)`), so a generated Qwen3-Next built
  from a config kept an all-zero router, and every later random draw moved (13 tensors differed from
  stock under one seed);
- checkpoint conversion mappings are skipped unless the user registers them (a stock Qwen3-MoE
  checkpoint, experts one by one, loaded with its fused experts MISSING);
- legacy `layer_types` names are remapped.

Patches applied to upstream at run time leave the classes in `transformers.models...`; a generated file
moves them. So the generator applies `NATIVE_MODEL_CODE` to every upstream class that derives from
`PreTrainedModel` directly (`with_native_model_code`), unless the config patches that class or its
`is_custom_code` itself. The header and the class's banner show it like any patch set.
"""

from __future__ import annotations

import ast
import copy

from patchgen.patch_sets import PatchSet
from patchgen.patch_spec import PatchConfig, SourceLocation
from patchgen.upstream import UpstreamModule


NATIVE_MODEL_CODE = PatchSet(
    "native_model_code", "the generated models count as transformers' own code, as the stock classes do"
)


@classmethod
@NATIVE_MODEL_CODE.override_method(
    "pretrained_model.is_custom_code",
    description="this file is transformers' modeling code with patches: initialise weights, convert checkpoints "
    "and read layer types as for the stock classes (outside the transformers package they count as custom code); "
    "applied by the generator to every class deriving from PreTrainedModel",
)
def is_custom_code(cls) -> bool:
    """Custom only when loaded from the hub, as the stock class (its module is outside `transformers.`)."""
    return cls.is_remote_code()


def with_native_model_code(config: PatchConfig, upstream: UpstreamModule) -> PatchConfig:
    """`config` plus `NATIVE_MODEL_CODE` on each upstream `PreTrainedModel` subclass it leaves alone."""
    targets = {patch.target for patch in config.patches}
    excluded = {exclusion.name for exclusion in config.exclusions}
    classes = [
        name
        for name in pretrained_model_classes(upstream)
        if not {name, f"{name}.is_custom_code"} & targets and name not in excluded
    ]
    if not classes:
        return config
    applied_at = SourceLocation(__name__, "patchgen/native_code.py", with_native_model_code.__code__.co_firstlineno)
    extended = copy.copy(config)
    extended.patches = list(config.patches)
    for name in classes:
        extended.patches += NATIVE_MODEL_CODE.bind(None, {"pretrained_model": name}, applied_at=applied_at)
    return extended


def pretrained_model_classes(upstream: UpstreamModule) -> list[str]:
    """Module-level classes of `upstream` whose bases name `PreTrainedModel` (the model family's root classes)."""
    return [
        node.name
        for node in upstream.tree.body
        if isinstance(node, ast.ClassDef)
        and any(ast.unparse(base).rsplit(".", 1)[-1] == "PreTrainedModel" for base in node.bases)
    ]
