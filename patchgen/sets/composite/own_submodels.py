"""A composite model's sub-models built from the generated file's own classes, not through `AutoModel`.

Qwen3-VL-style composites (Qwen3-VL, Qwen3-VL-MoE, Qwen3.5, Qwen3.5-MoE in transformers 5.25) build their vision tower and text decoder
with `AutoModel.from_config(config.vision_config)` / `AutoModel.from_config(config.text_config)`. The auto mapping
resolves a config class to *transformers'* model class, so in a generated copy of such a module the patched text
model, attention, delta-net and norms would never be built: the model would run stock's decoder behind a patched
head, its logits and loss would equal stock's, and every equivalence test would pass on a file that patches nothing
below the head. (Qwen2-VL and Qwen2.5-VL name their classes, `Qwen2_5_VLTextModel._from_config(...)`, which the
file resolves to its own.)

`OWN_SUBMODELS` overrides the composite model's `__init__` (role `multimodal_model`) with upstream's, each
`AutoModel.from_config(sub_config)` replaced by `own_submodel(sub_config)`: the class AutoModel would pick, by name,
from the generated file (the helper is copied into it, so its `globals()` are the file's), built by `_from_config`
as `AutoModel.from_config` builds it. A sub-config whose class the file does not define fails at construction.
"""

from transformers import PreTrainedConfig, PreTrainedModel
from transformers.models.auto.modeling_auto import MODEL_MAPPING

from patchgen.dsl.patch_sets import PatchSet


def own_submodel(sub_config: PreTrainedConfig):
    """`AutoModel.from_config(sub_config)` with the generated file's class of the same name as transformers' own."""
    stock_class = MODEL_MAPPING[type(sub_config)]
    # this helper is copied into the generated file: its globals are that file's classes
    own_class = globals().get(getattr(stock_class, "__name__", ""))
    if own_class is None:
        raise TypeError(
            f"{type(sub_config).__name__}: AutoModel builds {stock_class!r}, which this generated file does not "
            "define; the composite model would run transformers' class instead of the file's"
        )
    return own_class._from_config(sub_config)


def own_submodels_init(self, config):
    # upstream's __init__ (Qwen3-VL's layout), the sub-models built from this file's classes (not AutoModel's).
    # Upstream calls super().__init__(config): its ...PreTrainedModel defines no __init__, so that is
    # PreTrainedModel's (a set cannot name the file's class for super(); each family's test checks the MRO)
    PreTrainedModel.__init__(self, config)
    self.visual = own_submodel(config.vision_config)
    self.language_model = own_submodel(config.text_config)
    self.rope_deltas = None  # cache rope_deltas here

    # Initialize weights and apply final processing
    self.post_init()


OWN_SUBMODELS = PatchSet(
    "own_submodels", "a composite model's vision tower and text decoder built from the generated file's own classes"
)
OWN_SUBMODELS.override_method(
    "multimodal_model.__init__",
    description=(
        "upstream's __init__ with the vision tower and text model built from this file's classes: "
        "AutoModel.from_config would build transformers' own, leaving every patch below the head unused"
    ),
)(own_submodels_init)
OWN_SUBMODELS.requires_attributes(
    "multimodal_model",
    "visual",
    "language_model",
    "rope_deltas",
    otherwise="an __init__ written for that composite's parts",
)
