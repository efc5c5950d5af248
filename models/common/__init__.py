"""Patch implementations shared by several model families (written once, spliced into each generated file)."""
