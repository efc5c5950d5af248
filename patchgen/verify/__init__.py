"""Checks on generated output: each file imported for real, in a fresh process, with patchgen blocked.

Takes generated files; hands on pass/fail verdicts, cached keyed on the hashes of their inputs.
"""
