"""Attention and token-mixing sets: Ulysses sequence parallelism for softmax attention (steps per
family), multi-head latent attention, gated delta-net linear attention, vision-language text
models.
"""
