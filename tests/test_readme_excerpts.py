"""The README and the docs show real output: each block marked `<!-- excerpt: PATH -->` is cut from that committed file.

A marked block's runs of lines (`...` lines, indented or not, stand for lines left out) must each occur in the
file as consecutive whole lines, in the same order, so a banner, header or diff hunk in the README cannot drift from what
the generator writes. Regenerating changes them together: rerun this test and paste the new lines.
"""

import re

import pytest
from conftest import REPO


README = (REPO / "README.md").read_text(encoding="utf-8")
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
MARKED = re.compile(r"<!-- excerpt: (?P<path>\S+) -->\n```[a-z]*\n(?P<body>.*?)\n```", re.S)
EXCERPTS = [(match["path"], match["body"]) for match in MARKED.finditer(README)]
EVERY_EXCERPT = [
    (page.relative_to(REPO).as_posix(), match["path"], match["body"])
    for page in PAGES
    for match in MARKED.finditer(page.read_text(encoding="utf-8"))
]


def missing_line(excerpt: str, text: str) -> str | None:
    """The first excerpt line not found in `text` (None when every run is).

    The excerpt is read as runs of lines separated by `...` lines: each run must occur in `text` as
    consecutive whole lines, after the previous run. So an excerpt leaves lines out only where it says so.
    """
    lines = text.splitlines()
    runs: list[list[str]] = [[]]
    for line in excerpt.splitlines():
        if line.strip() == "...":
            runs.append([])
        else:
            runs[-1].append(line)
    position = 0
    for run in filter(None, runs):
        starts = [i for i in range(position, len(lines) - len(run) + 1) if lines[i : i + len(run)] == run]
        if not starts:
            return _first_absent(run, lines, position)
        position = starts[0] + len(run)
    return None


def _first_absent(run: list[str], lines: list[str], position: int) -> str:
    """The line of `run` that breaks it: the first not following its predecessor in `lines`."""
    for length in range(1, len(run) + 1):
        if not any(lines[i : i + length] == run[:length] for i in range(position, len(lines) - length + 1)):
            return run[length - 1]
    return run[-1]


def test_readme_marks_its_generated_excerpts():
    assert len(EXCERPTS) >= 3
    assert {path for path, _ in EXCERPTS} >= {
        "generated/qwen3/patched_modeling_qwen3_gpu.py",
        "generated/qwen3/patched_modeling_qwen3_gpu.diff",
    }


def test_missing_line_finds_lines_out_of_order_or_left_out_unsaid():
    assert missing_line("a\n...\nc", "a\nb\nc") is None
    assert missing_line("a\n    ...\nc", "a\nb\nc") is None
    assert missing_line("c\n...\na", "a\nb\nc") == "a"
    assert missing_line("a\nx", "a\nb") == "x"
    assert missing_line("a\nc", "a\nb\nc") == "c"  # b left out without a `...` line


@pytest.mark.parametrize(
    ("page", "path", "excerpt"), EVERY_EXCERPT, ids=[f"{page}:{path}" for page, path, _ in EVERY_EXCERPT]
)
def test_excerpt_is_cut_from_the_committed_file(page, path, excerpt):
    line = missing_line(excerpt, (REPO / path).read_text(encoding="utf-8"))
    assert line is None, f"{page}: excerpt of {path} has a line the file does not (in that order): {line!r}"


def test_docs_pages_carry_excerpts_too():
    assert {page for page, _, _ in EVERY_EXCERPT} > {"README.md"}
