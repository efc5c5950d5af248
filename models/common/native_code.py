"""A generated file is transformers' own modeling code with patches, and its models say so to transformers.

transformers treats a model class whose module lies outside the `transformers` package as custom code
(`PreTrainedModel.is_custom_code()`: true for a generated file), and then behaves unlike the stock class
in three places (transformers 5.17):

- weight initialisation (`PreTrainedModel._initialize_weights`) skips `_init_weights` for a module with
  no parameters of its own once its children are initialised. Qwen3-Next initialises its router from the
  parent's branch (`isinstance(module, Qwen3NextSparseMoeBlock)`), so a generated Qwen3-Next built from a
  config kept an all-zero router, and every later random draw moved: 13 tensors differed from stock
  under the same seed;
- checkpoint conversion mappings are skipped unless the user registers them: a stock Qwen3-MoE checkpoint
  (experts one by one) loaded into the generated class with its fused experts MISSING;
- legacy `layer_types` names are remapped.

Answering as upstream's class does (custom only when loaded from the hub) keeps all three as stock.
"""

from patchgen.patch_sets import PatchSet


NATIVE_MODEL_CODE = PatchSet(
    "native_model_code", "the generated models are transformers' own code to transformers, as the stock ones"
)


@classmethod
@NATIVE_MODEL_CODE.override_method(
    "pretrained_model.is_custom_code",
    description="this file is transformers' modeling code with patches: initialise weights, convert checkpoints "
    "and read layer types as for the stock classes (outside the transformers package they count as custom code)",
)
def is_custom_code(cls) -> bool:
    """Custom only when loaded from the hub, as the stock class (its module is outside `transformers.`)."""
    return cls.is_remote_code()
