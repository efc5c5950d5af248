"""The causal-LM forward whose loss never materialises the `[tokens, vocab]` logits when they are many.

`linear_cross_entropy_forward` is a method override for `...ForCausalLM.forward`, for every Llama-style
model. With labels, each call picks its loss by size (`use_fused_linear_cross_entropy`, in
`patchgen/runtime/losses.py`, where the threshold and its measured source are):

- many logits (tokens x vocab at or above `FUSED_LINEAR_CROSS_ENTROPY_MIN_LOGITS`):
  `linear_cross_entropy(hidden_states, lm_head.weight, labels)`, a name the patch set that applies the
  forward binds in the generated file (`patchgen/sets/training_sets.py`, `cce_kernels.py`): a fused kernel
  in GPU files (`fastest_linear_cross_entropy`: Liger's or the chunked torch one by shape; or a single
  kernel: chunked, Liger's, Apple's Cut Cross-Entropy), which never holds the logits;
  `patchgen.runtime.losses.torch_linear_cross_entropy` in CPU files, the same interface in plain torch,
  so CPU tests run the exact code of the GPU forward;
- few logits, or an `lm_head` sharded by tensor parallelism (a DTensor weight): upstream's `lm_head` and
  `self.loss_function`, which are faster there (a fused kernel's chunks are small matmuls) and keep the
  tensor-parallel hooks of `lm_head` working.

While training, the output carries the loss and `logits=None` (nothing can read them: the point of a
fused kernel, as Liger does). Otherwise (evaluation, generation, no labels) the forward is upstream's:
the logits are materialised and, with labels, upstream's loss is computed from them, so an evaluation
loop reading `.logits` next to `.loss` works as on stock. `labels` keep their upstream meaning (shifted inside, `-100` ignored), as
do `num_items_in_batch` (sum of the per-token losses divided by it, else the mean) and
`logits_to_keep` (an int or a 1-D index tensor: the loss covers the kept positions; labels that do not
match the kept positions raise upstream's `ValueError`), `ignore_index` (a keyword, as upstream's loss
takes it) and `shift_labels` (labels already shifted, used instead of shifting `labels`; as upstream, a
loss needs `labels` too: `patchgen.runtime.shard_batch` passes both for sequence parallelism).
"""

from typing import TYPE_CHECKING

import torch
from torch import nn
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import slice_logits_to_keep
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs

from patchgen.runtime.losses import use_fused_linear_cross_entropy
from patchgen.runtime.sequence_parallel import check_sequence_parallel_inputs


if TYPE_CHECKING:  # bound in the generated file by the patch set: a fused kernel (GPU) or its torch twin (CPU)
    from patchgen.runtime.losses import chunked_linear_cross_entropy as linear_cross_entropy


def linear_cross_entropy_forward(
    self,
    input_ids: torch.LongTensor | None = None,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.LongTensor | None = None,
    cache: Cache | None = None,
    inputs_embeds: torch.Tensor | None = None,
    labels: torch.LongTensor | None = None,
    use_cache: bool | None = None,
    logits_to_keep: int | torch.Tensor = 0,
    **kwargs: Unpack[TransformersKwargs],
) -> CausalLMOutputWithPast:
    r"""
    labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
        Labels for computing the masked language modeling loss. Indices should either be in `[0, ...,
        config.vocab_size]` or -100 (see `input_ids` docstring). Tokens with indices set to `-100` are ignored
        (masked), the loss is only computed for the tokens with labels in `[0, ..., config.vocab_size]`.
        With labels while training (shifted inside, or used as given in `shift_labels`), the output's `logits`
        is `None` and the loss is, for many logits, `linear_cross_entropy` of the last hidden states and the
        `lm_head` weight (a fused kernel in GPU files: the logits are never materialised), else upstream's loss.
        In evaluation both are returned, as upstream computes them.
    """
    shift_labels = kwargs.pop("shift_labels", None)
    # sequence parallelism: a sequence shard needs its global positions and the whole batch's label count
    check_sequence_parallel_inputs(position_ids, kwargs.get("num_items_in_batch"), labels is not None)
    outputs: BaseModelOutputWithPast = self.model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        cache=cache,
        inputs_embeds=inputs_embeds,
        use_cache=use_cache,
        **kwargs,
    )

    hidden_states = outputs.last_hidden_state
    # Only compute necessary positions (logits or loss), as upstream does for the logits
    hidden_states = slice_logits_to_keep(hidden_states, logits_to_keep)

    loss, logits = loss_and_logits(self, hidden_states, labels, shift_labels, self.config.vocab_size, kwargs)

    # The output class is a step: a config binds its model's own (`MoeCausalLMOutputWithPast` for DeepSeek-V3),
    # and every other field of the decoder's output passes on as upstream passes it (cache, hidden states,
    # attentions, router logits).
    return CausalLMOutputWithPast(
        loss=loss,
        logits=logits,
        **{name: value for name, value in outputs.items() if name != "last_hidden_state"},
    )


def loss_and_logits(
    self,
    hidden_states: torch.Tensor,
    labels: torch.Tensor | None,
    shift_labels: torch.Tensor | None,
    vocab_size: int,
    kwargs: dict,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The forward's `(loss, logits)` from the kept positions' `hidden_states`.

    With `labels` while training, the loss alone (`logits=None`: nothing reads them): for many logits
    `fused_causal_lm_loss`, which never materialises them. Otherwise (few logits, a tensor-parallel `lm_head`,
    evaluation, generation, no labels) upstream's: the `lm_head` logits and, with `labels`, `self.loss_function`
    of them. Shared by every causal-LM forward of the loss sets (text, vision-language).
    """
    loss_only = labels is not None and self.training
    if loss_only and use_fused_linear_cross_entropy(hidden_states, self.lm_head.weight):
        # training reads only the loss: a fused kernel never materialises the logits
        return fused_causal_lm_loss(self, hidden_states, labels, shift_labels, kwargs), None
    logits = self.lm_head(hidden_states)
    loss = None
    if labels is not None:  # as upstream: no loss without `labels`, even with `shift_labels`
        loss = self.loss_function(
            logits=logits,
            labels=labels,
            vocab_size=vocab_size,
            shift_labels=None if shift_labels is None else shift_labels.contiguous(),  # upstream's loss views it
            **kwargs,
        )
    # while training the output carries the loss alone, whichever way it was computed
    return loss, None if loss_only else logits


def fused_causal_lm_loss(
    self,
    hidden_states: torch.Tensor,
    labels: torch.Tensor,
    shift_labels: torch.Tensor | None,
    kwargs: dict,
) -> torch.Tensor:
    """The loss of the kept positions' `hidden_states` against `labels` (or `shift_labels`, already shifted), fused.

    `linear_cross_entropy(hidden, lm_head.weight, shift_labels)`, the kernel the patch set binds (never
    materialising the logits), with upstream's loss's `ignore_index` and `num_items_in_batch`.
    """
    # upstream's loss reads `ignore_index` from the same kwargs (ForCausalLMLoss's parameter)
    ignore_index = kwargs.get("ignore_index", -100)
    if shift_labels is None:
        # token t predicts token t + 1; the last position has nothing to predict
        shift_labels = nn.functional.pad(labels, (0, 1), value=ignore_index)[..., 1:]
    hidden_states = hidden_states.reshape(-1, hidden_states.shape[-1])
    shift_labels = shift_labels.reshape(-1).to(hidden_states.device)
    if hidden_states.shape[0] != shift_labels.shape[0]:
        # e.g. `logits_to_keep` keeping fewer positions than there are labels: upstream's cross_entropy says
        # this (a ValueError) before any kernel runs; a fused kernel would fail later, and differently
        raise ValueError(
            f"Expected input batch_size ({hidden_states.shape[0]}) to match target batch_size "
            f"({shift_labels.shape[0]})."
        )
    num_items_in_batch = kwargs.get("num_items_in_batch")
    loss = linear_cross_entropy(
        hidden_states,
        self.lm_head.weight,
        shift_labels,
        ignore_index=ignore_index,
        reduction="mean" if num_items_in_batch is None else "sum",
    )
    if num_items_in_batch is not None:
        if torch.is_tensor(num_items_in_batch):
            num_items_in_batch = num_items_in_batch.to(loss.device)
        loss = loss / num_items_in_batch
    return loss
