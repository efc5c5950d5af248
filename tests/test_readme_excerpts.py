"""The README shows real output: each block marked `<!-- excerpt: PATH -->` is cut from that committed file.

A marked block's lines (`...` lines stand for lines left out, and may be indented) must occur in the file in
the same order, each as a whole line, so a banner, header or diff hunk in the README cannot drift from what
the generator writes. Regenerating changes them together: rerun this test and paste the new lines.
"""

import re

import pytest
from conftest import REPO


README = (REPO / "README.md").read_text(encoding="utf-8")
MARKED = re.compile(r"<!-- excerpt: (?P<path>\S+) -->\n```[a-z]*\n(?P<body>.*?)\n```", re.S)
EXCERPTS = [(match["path"], match["body"]) for match in MARKED.finditer(README)]


def missing_line(excerpt: str, text: str) -> str | None:
    """The first excerpt line not found in `text` after the previous one (None when all are, in order)."""
    lines = text.splitlines()
    position = 0
    for line in excerpt.splitlines():
        if line.strip() == "...":
            continue
        try:
            position = lines.index(line, position) + 1
        except ValueError:
            return line
    return None


def test_readme_marks_its_generated_excerpts():
    assert len(EXCERPTS) >= 3
    assert {path for path, _ in EXCERPTS} >= {
        "generated/qwen3/patched_modeling_qwen3_gpu.py",
        "generated/qwen3/patched_modeling_qwen3_gpu.diff",
    }


def test_missing_line_finds_lines_out_of_order():
    assert missing_line("a\n...\nc", "a\nb\nc") is None
    assert missing_line("c\na", "a\nb\nc") == "a"
    assert missing_line("a\nx", "a\nb") == "x"


@pytest.mark.parametrize(("path", "excerpt"), EXCERPTS, ids=[path for path, _ in EXCERPTS])
def test_excerpt_is_cut_from_the_committed_file(path, excerpt):
    line = missing_line(excerpt, (REPO / path).read_text(encoding="utf-8"))
    assert line is None, f"README excerpt of {path} has a line the file does not (in that order): {line!r}"
