"""Python source as text and syntax trees: positions, edits, definitions, what a module binds.

Takes source text (a patch file, an upstream module); hands on spans, text edits, definitions found
by location and the facts a module's top-level statements establish. Imports nothing of patchgen.
"""
