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
moves them. So the generator applies `NATIVE_MODEL_CODE` to every root model class (`pretrained_model_classes`,
`with_native_model_code`) whose `is_custom_code` the config leaves alone; the class's banner shows it.
"""

from __future__ import annotations

import ast
import copy

from patchgen.dsl.errors import PatchgenError
from patchgen.dsl.patch_sets import PatchSet
from patchgen.dsl.patch_spec import Patch, PatchConfig, PatchKind, SourceLocation
from patchgen.load.upstream import UpstreamModule


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
    """`config` plus `NATIVE_MODEL_CODE` on each root model class of `upstream` (replaced or not) whose
    `is_custom_code` it leaves alone."""
    targets = {patch.target for patch in config.patches}
    excluded = {exclusion.name for exclusion in config.exclusions}
    replaced = {p.target: p for p in config.patches if p.kind is PatchKind.CLASS_REPLACEMENT}
    classes = []
    for name in pretrained_model_classes(upstream):
        if f"{name}.is_custom_code" in targets or name in excluded:
            continue
        if name in replaced:
            _require_own_is_custom_code(replaced[name])
            continue
        classes.append(name)
    if not classes:
        return config
    applied_at = SourceLocation(
        __name__, "patchgen/load/native_code.py", with_native_model_code.__code__.co_firstlineno
    )
    extended = copy.copy(config)
    extended.patches = list(config.patches)
    for name in classes:
        extended.patches += NATIVE_MODEL_CODE.bind(None, {"pretrained_model": name}, applied_at=applied_at)
    return extended


def _require_own_is_custom_code(patch: Patch) -> None:
    """A replaced root keeps its replacement's source, which a method patch cannot be added to: the
    replacement must define `is_custom_code` itself, or its models count as custom code."""
    if "is_custom_code" not in vars(patch.replacement):
        raise PatchgenError(
            f"{patch.defined_at}: {patch.label} replaces a root model class, and the replacement would count as custom "
            "code to transformers (checkpoint conversion skipped, weights initialised otherwise); define "
            "`is_custom_code` in it as a classmethod returning `cls.is_remote_code()` (as "
            "patchgen.load.native_code.is_custom_code does)"
        )


def pretrained_model_classes(upstream: UpstreamModule) -> list[str]:
    """The root model classes of `upstream`, in file order: module-level classes that are `PreTrainedModel`
    subclasses with no such base defined in `upstream`.

    A root may derive from `PreTrainedModel` through a base defined elsewhere
    (`XcodecPreTrainedModel(PreTrainedAudioTokenizerBase)`), which its text does not show: roots are found
    on the imported classes, not in the syntax tree. A replaced root (`replace_class`) is moved into the
    generated file too, but a method patch cannot join a class replacement: the replacement must define
    `is_custom_code` itself (`_require_own_is_custom_code`). An excluded root is left alone.
    """
    from transformers import PreTrainedModel

    module = upstream.module()
    defined = [node.name for node in upstream.tree.body if isinstance(node, ast.ClassDef)]
    roots = []
    for name in defined:
        cls = vars(module).get(name)
        if not (isinstance(cls, type) and issubclass(cls, PreTrainedModel)):
            continue
        if not any(base.__module__ == module.__name__ and issubclass(base, PreTrainedModel) for base in cls.__bases__):
            roots.append(name)
    return roots
