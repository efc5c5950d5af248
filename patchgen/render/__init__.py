"""Rendering: a plan -> output text, formatted like upstream, written all-or-nothing and diffed.

Takes a `Plan`; hands on formatted texts, the files on disk and their diffs against upstream.
"""
