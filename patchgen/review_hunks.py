"""Hunks of an upstream change, what kind of change each is, and the patch lines each one concerns.

The upgrade report shows every hunk three ways at once: the old upstream lines, the new upstream
lines, and the lines of the patch that correspond to the old ones (the patch is usually a modified
copy of upstream, so most of its lines match upstream's). For example, with `logits_to_keep`:

    old upstream   slice_indices = slice(-logits_to_keep, None) if ... else logits_to_keep
                   logits = self.lm_head(hidden_states[:, slice_indices, :])
    new upstream   hidden_states = slice_logits_to_keep(hidden_states, logits_to_keep)
                   logits = self.lm_head(hidden_states)
    patch          slice_indices = slice(-logits_to_keep, None) if ... else logits_to_keep
                   hidden_states = hidden_states[:, slice_indices, :]

A hunk is classified by applying it alone to the old text and comparing syntax trees:
`formatting-only` (the trees are equal: comments, wrapping), `docstring-only` (equal once docstrings
are dropped), `annotation-only` (equal once annotations are dropped), `docstring+annotation-only`,
else `code`. A hunk that does not parse on its own counts as `code`.
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass

from patchgen.source_text import Snippet


CONTEXT = 2  # unchanged lines shown around each hunk (they also anchor the patch's corresponding lines)
CODE = "code"


@dataclass(frozen=True)
class Hunk:
    old: tuple[str, ...]  # old lines of the hunk, context included
    new: tuple[str, ...]
    old_start: int  # 0-based index of `old[0]` in the old text
    new_start: int
    old_changed: frozenset[int]  # indices into `old` of removed lines (the rest is context)
    new_changed: frozenset[int]  # indices into `new` of added lines
    kind: str

    @property
    def key(self) -> tuple:
        """Identical upstream edits in several targets (a shared model pattern) are one hunk to read."""
        return (self.kind, self.old, self.new, self.old_changed, self.new_changed)


def hunks(old_text: str, new_text: str) -> list[Hunk]:
    old, new = old_text.splitlines(), new_text.splitlines()
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    found = []
    for group in matcher.get_grouped_opcodes(CONTEXT):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        old_changed = {i - i1 for tag, a, b, _, _ in group if tag != "equal" for i in range(a, b)}
        new_changed = {j - j1 for tag, _, _, c, d in group if tag != "equal" for j in range(c, d)}
        kind = classify(old_text, _apply(old, new, group))
        found.append(
            Hunk(tuple(old[i1:i2]), tuple(new[j1:j2]), i1, j1, frozenset(old_changed), frozenset(new_changed), kind)
        )
    return found


def _apply(old: list[str], new: list[str], group: list[tuple]) -> str:
    """The old text with only this group's edits made."""
    lines = list(old)
    for tag, i1, i2, j1, j2 in reversed(group):
        if tag != "equal":
            lines[i1:i2] = new[j1:j2]
    return "".join(line + "\n" for line in lines)


def classify(old_text: str, edited_text: str) -> str:
    try:
        before, after = Snippet.parse(old_text).tree, Snippet.parse(edited_text).tree
    except SyntaxError:
        return CODE
    if ast.dump(before) == ast.dump(after):
        return "formatting-only"
    for kind, strip in (
        ("docstring-only", _without_docstrings),
        ("annotation-only", _without_annotations),
        ("docstring+annotation-only", lambda tree: _without_annotations(_without_docstrings(tree))),
    ):
        if ast.dump(strip(before)) == ast.dump(strip(after)):
            return kind
    return CODE


class _DropDocstrings(ast.NodeTransformer):
    def generic_visit(self, node):
        super().generic_visit(node)
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body:
            first = body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
        return node


class _DropAnnotations(ast.NodeTransformer):
    def visit_arg(self, node):
        node.annotation = None
        return node

    def visit_FunctionDef(self, node):
        node.returns = None
        return self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_AnnAssign(self, node):
        node.annotation = ast.Constant(None)
        return self.generic_visit(node)


def _without_docstrings(tree: ast.AST) -> ast.AST:
    return _DropDocstrings().visit(_copy(tree))


def _without_annotations(tree: ast.AST) -> ast.AST:
    return _DropAnnotations().visit(_copy(tree))


def _copy(tree: ast.AST) -> ast.AST:
    return ast.parse(ast.unparse(tree))


def corresponding_lines(old_text: str, patch_lines: list[str], hunk: Hunk) -> tuple[int, int] | None:
    """The 0-based [start, end) range of `patch_lines` that corresponds to the hunk's changed old lines
    (or, for a pure insertion, to its context), with up to CONTEXT lines around it; None if nothing does.

    Lines are matched on their stripped text; a `def`/`class` line matches any other of its keyword
    (the patch is named otherwise, and `modify_init` takes `original_init` first);
    lines shorter than 4 characters (a closing bracket, a docstring quote, a blank) are too common to
    anchor anything.
    """
    old = [_comparable(line) for line in old_text.splitlines()]
    patch = [_comparable(line) for line in patch_lines]
    matcher = difflib.SequenceMatcher(lambda line: len(line) < 4, old, patch, autojunk=False)
    if not any(block.size for block in matcher.get_matching_blocks()):
        return None  # nothing in common: the patch is not a modified copy of this upstream
    changed = sorted(hunk.old_start + i for i in hunk.old_changed)
    wanted = changed or range(hunk.old_start, hunk.old_start + len(hunk.old))
    hits: list[int] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            hits += [j1 + (i - i1) for i in wanted if i1 <= i < i2]
        elif tag == "replace":  # a rewritten stretch: map by relative position, so the range stays local
            hits += [j1 + (i - i1) * (j2 - j1) // (i2 - i1) for i in wanted if i1 <= i < i2]
    if not hits:
        return None
    return max(min(hits) - CONTEXT, 0), min(max(hits) + 1 + CONTEXT, len(patch_lines))


_DEFINITION_HEAD = re.compile(r"^((?:async\s+)?def|class)\s+\w+.*")


def _comparable(line: str) -> str:
    return _DEFINITION_HEAD.sub(r"\1", line.strip())
