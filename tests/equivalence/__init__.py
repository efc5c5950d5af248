"""Equivalence harness: every generated modeling file must compute what its upstream module computes.

Run the whole table with `python -m tests.equivalence` (add `--device cuda` on a GPU); pytest runs the same
checks through `tests/test_equivalence.py`.
"""
