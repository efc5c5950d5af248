"""The patch-spec DSL and the sets API: `PatchConfig`, `Patch`, `PatchSet`, their argument checks.

Takes what a config module writes; hands on plain data (configs, patches, sets, their requirements
of upstream) and the one error type, `PatchgenError`. `layout` (where a project keeps configs and
outputs) sits here because the DSL names outputs from it.
"""
