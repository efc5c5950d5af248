"""The Ulysses attention forward composed from steps: each family's file calls the steps its base config binds.

One forward for every family (`patchgen/sets/attention/ulysses_attention.py`); the families differ in the
q/k/v projection, the q/k norm, rope and the output projection, which each base config binds with `config.use(..., bind=...)`.
The numbers (logits, loss, gradients, save/load, SP across ranks) are checked by the family, equivalence
and sequence-parallel tests; here: which step each generated forward calls, and why partial rotary
needs its own step.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from tiny_families import FAMILIES, generated_module
from transformers.models.phi3 import modeling_phi3

from tests.families import TABLE, covered


# family -> its attention class, and the (projection, q/k norm, rope, output) steps its generated forward must call
# (`attention_steps` of its entry in tests/families.py; Qwen3-MoE's base config binds nothing, so its forward
# calls the slots, whose default assignments are copied)
STEPS = {model: TABLE[model].attention_steps for model in covered() if TABLE[model].attention_steps}
SLOTS = ("project_qkv", "qk_norm", "rotary", "project_output")


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
@pytest.mark.parametrize("model", sorted(STEPS))
def test_generated_forward_calls_the_bound_steps(model, variant):
    module = generated_module(model, variant)
    attention, project, norm, rope, output = STEPS[model]
    cls = getattr(module, attention)
    # a family whose attention keeps upstream's parameter order calls the shared forward as `ulysses_forward`
    forward = inspect.getsource(getattr(cls, "ulysses_forward", cls.forward))
    assert f"value_states, output_gate = {project}(self, hidden_states)" in forward
    assert f"= {norm}(self, query_states, key_states, hidden_shape)" in forward
    assert f"= {rope}(query_states, key_states, cos, sin)" in forward
    assert f"= {output}(self, attn_output, output_gate)" in forward
    for step in (project, norm, rope, output):
        assert callable(getattr(module, step))
    if project not in SLOTS:  # bound steps are called by their own names; no slot is left in the file
        assert not any(hasattr(module, slot) for slot in SLOTS)


def test_phi3_tiny_config_rotates_part_of_each_head():
    config = FAMILIES["phi3"].make_config()
    rotary = modeling_phi3.Phi3RotaryEmbedding(config)
    cos, _ = rotary(torch.zeros(1), torch.arange(4)[None])
    head_dim = config.hidden_size // config.num_attention_heads
    assert cos.shape[-1] == int(head_dim * 0.75) < head_dim


def test_partial_rotary_step_equals_upstream_partial_rope_with_a_full_rope_kernel():
    """Phi-3's file binds TORCH_ROPE (Liger's interface: rotates the whole last dimension) to apply_rotary_pos_emb;
    the partial_rotary step feeds it the rotated channels only, which equals upstream's partial rope."""
    module = generated_module("phi3", "cpu")
    generator = torch.Generator().manual_seed(0)
    query, key = torch.randn(2, 4, 5, 8, generator=generator), torch.randn(2, 2, 5, 8, generator=generator)
    cos, sin = torch.randn(2, 5, 6, generator=generator), torch.randn(2, 5, 6, generator=generator)
    expected = modeling_phi3.apply_rotary_pos_emb(query, key, cos, sin)
    got = module.partial_rotary(query, key, cos, sin)
    for tensor, reference in zip(got, expected, strict=True):
        torch.testing.assert_close(tensor, reference, rtol=0, atol=0)
    with pytest.raises(RuntimeError):  # what the full_rotary step would do: all 8 channels against 6 of cos/sin
        module.apply_rotary_pos_emb(query, key, cos, sin)
