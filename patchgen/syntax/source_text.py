"""Precise text surgery on Python source: positions, node spans, edits, re-indentation, renaming.

Everything here works on the original text so comments, blank lines and quoting survive; the
syntax tree only tells where to cut.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


def python_lines(text: str) -> list[str]:
    """The lines of `text` as Python's tokenizer counts them (`ast` line numbers index these), ends kept.

    Only `\n`, `\r\n` and `\r` end a line. `str.splitlines` also splits at form feeds, `\x1c`-`\x1e`,
    NEL (`\x85`) and U+2028/U+2029, which may sit inside a comment or a string: counting those would
    shift every line number after them.
    """
    return io.StringIO(text, newline="").readlines()


def read_source(path: str | Path) -> str:
    """A Python file's text, decoded the way the interpreter decodes it (PEP 263 coding line, BOM), with
    newlines normalised to `\n`. Raises `SyntaxError` (with `filename`) when its bytes cannot be decoded."""
    data = Path(path).read_bytes()
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError) as exc:
        raise SyntaxError(f"cannot decode the file: {exc}", (str(path), 1, 0, "")) from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


@dataclass(frozen=True)
class TextEdit:
    """Replace `text[start:end]` by `new`. An insertion has `start == end`; `order` breaks ties."""

    start: int
    end: int
    new: str
    order: int = 0


class SourceText:
    """A source file's text with conversions from `ast` positions (1-based lines, UTF-8 columns)."""

    def __init__(self, text: str):
        self.text = text
        self.lines = python_lines(text)
        self._line_starts = [0]
        for line in self.lines:
            self._line_starts.append(self._line_starts[-1] + len(line))

    def line_start(self, lineno: int) -> int:
        return self._line_starts[lineno - 1]

    def line_end(self, lineno: int) -> int:
        """Offset just past line `lineno`, its newline included."""
        return self._line_starts[lineno]

    def offset(self, lineno: int, col_bytes: int) -> int:
        line = self.lines[lineno - 1]
        return self.line_start(lineno) + len(line.encode("utf-8")[:col_bytes].decode("utf-8"))

    def node_start_line(self, node: ast.stmt, *, leading_comments: bool = True) -> int:
        """First line of a statement, counting its decorators and the comments directly above it."""
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        if leading_comments:
            while first > 1 and self.lines[first - 2].lstrip().startswith("#"):
                first -= 1
        return first

    def node_lines(self, node: ast.stmt, *, leading_comments: bool = True) -> tuple[int, int]:
        """Offsets of the whole lines a statement occupies (decorators and leading comments included)."""
        start = self.line_start(self.node_start_line(node, leading_comments=leading_comments))
        return start, self.line_end(node.end_lineno)

    def segment(self, start: int, end: int) -> str:
        return self.text[start:end]

    def indentation_of(self, lineno: int) -> str:
        line = self.lines[lineno - 1]
        return line[: len(line) - len(line.lstrip())]


def apply_edits(text: str, edits: list[TextEdit]) -> str:
    """Apply non-overlapping edits; an edit that lies inside a larger replacement is dropped."""
    ordered = sorted(edits, key=lambda e: (e.start, e.order, -(e.end - e.start)))
    kept: list[TextEdit] = []
    for edit in ordered:
        if kept and edit.start < kept[-1].end:
            if edit.end <= kept[-1].end:
                continue  # inside a replaced span: the replacement wins
            raise ValueError(f"overlapping edits at offsets {kept[-1].start}-{kept[-1].end} and {edit.start}")
        kept.append(edit)
    pieces, cursor = [], 0
    for edit in kept:
        pieces.append(text[cursor : edit.start])
        pieces.append(edit.new)
        cursor = max(cursor, edit.end)
    pieces.append(text[cursor:])
    return "".join(pieces)


@dataclass(frozen=True)
class Snippet:
    """Whole lines of source holding one definition, parsed on their own.

    `tree` is the module the snippet parses to; its first statement is the definition. Snippets
    indented in their file are parsed inside an `if 1:` wrapper, hidden from callers.
    """

    text: str
    tree: ast.Module
    indent: str

    @classmethod
    def parse(cls, text: str) -> Snippet:
        """The snippet of `text`, parsed once per distinct text in this process (a content-keyed memo).

        The record and its tree are shared by every caller that parses the same text: treat the tree as
        read-only. A caller that strips or rewrites nodes takes its own copy with `parse_fresh`.
        `SyntaxError` is raised on every call (failures are not remembered).
        """
        return _parsed_snippet(text)

    @classmethod
    def parse_fresh(cls, text: str) -> Snippet:
        """A newly parsed snippet whose tree the caller may change."""
        first = next((line for line in python_lines(text) if line.strip() and not line.lstrip().startswith("#")), "")
        indent = first[: len(first) - len(first.lstrip())]
        if indent:
            wrapped = ast.parse("if 1:\n" + text)
            body = wrapped.body[0].body
            ast.increment_lineno(wrapped, -1)
            tree = ast.Module(body=body, type_ignores=[])
        else:
            tree = ast.parse(text)
        return cls(text=text, tree=tree, indent=indent)

    @property
    def definition(self) -> ast.stmt:
        return self.tree.body[0]

    @property
    def source(self) -> SourceText:
        return SourceText(self.text)


#: distinct snippet texts remembered: the patch code of one run (a few hundred definitions) fits
_SNIPPETS_REMEMBERED = 4096


@lru_cache(maxsize=_SNIPPETS_REMEMBERED)
def _parsed_snippet(text: str) -> Snippet:
    return Snippet.parse_fresh(text)


@lru_cache(maxsize=256)
def parse_text(text: str) -> ast.Module:
    """`ast.parse(text)`, once per distinct text in this process (a content-keyed memo).

    The tree is shared by every caller that parses the same text (a generated file checked three ways,
    an upstream module read by the planner and by the lock): treat it as read-only, and parse it yourself
    to change it. `SyntaxError` is raised on every call.
    """
    return ast.parse(text)


def frozen_string_lines(tree: ast.AST) -> set[int]:
    """Line numbers inside multi-line string literals whose content indentation must not change.

    Docstrings are excluded: re-indenting them is what a person would do and `inspect.cleandoc`
    ignores it. Any other string (a SQL query, an f-string template) keeps its bytes.
    """
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    frozen: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Constant, ast.JoinedStr)) and node.end_lineno and node.end_lineno > node.lineno:
            if isinstance(node, ast.Constant) and not isinstance(node.value, (str, bytes)):
                continue
            if id(node) not in docstrings:
                frozen.update(range(node.lineno + 1, node.end_lineno + 1))
    return frozen


def reindent(snippet: Snippet, new_indent: str) -> str:
    """The snippet's text moved from its own indentation to `new_indent`, strings left intact."""
    if snippet.indent == new_indent:
        return snippet.text
    frozen = frozen_string_lines(snippet.tree)
    out = []
    for lineno, line in enumerate(python_lines(snippet.text), start=1):
        if lineno in frozen or not line.strip():
            out.append(line if lineno in frozen else line.lstrip(" \t"))
            continue
        body = line[len(snippet.indent) :] if line.startswith(snippet.indent) else line.lstrip(" \t")
        out.append(new_indent + body)
    return "".join(out)


# `\w` is Unicode-aware on str patterns: identifiers may be non-ASCII (PEP 3131).
_DEF_NAME = re.compile(r"\b(?:class|def)\s+(\w+)")


def rename_edits(snippet: Snippet, renames: dict[str, str]) -> list[TextEdit]:
    """Edits renaming identifiers on the syntax tree: `Name` nodes and `def`/`class` names.

    Comments and strings are never touched, because only positions the parser reports as
    identifiers are edited.
    """
    if not renames:
        return []
    source = snippet.source
    edits = []
    for node in ast.walk(snippet.tree):
        if isinstance(node, ast.Name) and node.id in renames:
            start = source.offset(node.lineno, node.col_offset)
            end = source.offset(node.end_lineno, node.end_col_offset)
            edits.append(TextEdit(start, end, renames[node.id]))
        elif isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in renames:
            line_start = source.offset(node.lineno, node.col_offset)
            match = _DEF_NAME.match(source.text, line_start) or _DEF_NAME.search(source.text, line_start)
            if match and match.group(1) == node.name:
                edits.append(TextEdit(match.start(1), match.end(1), renames[node.name]))
    return edits


def rename(snippet: Snippet, renames: dict[str, str]) -> Snippet:
    edits = rename_edits(snippet, renames)
    return Snippet.parse(apply_edits(snippet.text, edits)) if edits else snippet
