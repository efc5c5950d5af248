"""The shared patch sets, shipped with patchgen: Ulysses sequence parallelism, fused losses, kernels, experts.

Each module defines patch code and the `PatchSet`s that apply it by role; a config applies a set with
`config.use(SET, ...)`. Set code is patch code: the generator copies what a set's patches use into each
generated file (as it does for a config's own package), so generated files never import this package;
they import only `patchgen.runtime`. `training_sets` holds the sets a training config applies first:
`ULYSSES_ATTENTION` (with its step requirements) and the fused-loss sets; the subpackages hold the code.
"""
