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
else `code`. A hunk that does not parse on its own counts as `code`. Only `code` hunks need a
person: the others are shown but change nothing that runs.

Only the smallest stretch of statements around the hunk is parsed (`enclosing_region`), never the
whole subject: `PreTrainedModel` has 3,831 lines and 63 hunks between 5.17 and 5.25, and parsing
all of it twice per hunk, in every lock that records it, is what made the report take half an hour.
Results are memoised on the texts themselves (`hunks`, `classify_region`), so a dependency that six
locks record is classified once.
"""

from __future__ import annotations

import ast
import difflib
import io
import re
import tokenize
from dataclasses import dataclass
from functools import lru_cache

from patchgen.syntax.source_text import Snippet


CONTEXT = 2  # unchanged lines shown around each hunk (they also anchor the patch's corresponding lines)
CODE = "code"
NEEDS_REVIEW = frozenset({CODE})  # the other kinds change nothing that runs


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

    @property
    def needs_review(self) -> bool:
        return self.kind in NEEDS_REVIEW

    @property
    def old_changed_lines(self) -> list[int]:
        """0-based indices into the old text of the lines this hunk removes or rewrites."""
        return sorted(self.old_start + i for i in self.old_changed)


def hunk_ids(owner: str, found: tuple[Hunk, ...]) -> dict[int, str]:
    """Position in `found` -> review id (`Qwen3Attention.forward#2`), for the hunks that need review
    (`code`), numbered 1, 2, ... in order: what `upgrade_report --accept --reviewed` names."""
    ids, number = {}, 0
    for position, hunk in enumerate(found):
        if hunk.needs_review:
            number += 1
            ids[position] = f"{owner}#{number}"
    return ids


def hunks(old_text: str, new_text: str) -> list[Hunk]:
    return list(_hunks(old_text, new_text))


@lru_cache(maxsize=2048)
def _hunks(old_text: str, new_text: str) -> tuple[Hunk, ...]:
    old, new = old_text.splitlines(), new_text.splitlines()
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    found = []
    for group in matcher.get_grouped_opcodes(CONTEXT):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        old_changed = {i - i1 for tag, a, b, _, _ in group if tag != "equal" for i in range(a, b)}
        new_changed = {j - j1 for tag, _, _, c, d in group if tag != "equal" for j in range(c, d)}
        kind = _classify_group(old_text, old, new, group)
        found.append(
            Hunk(tuple(old[i1:i2]), tuple(new[j1:j2]), i1, j1, frozenset(old_changed), frozenset(new_changed), kind)
        )
    return tuple(found)


def _classify_group(old_text: str, old: list[str], new: list[str], group: list[tuple]) -> str:
    """The kind of one group of edits, parsing only the statements around it."""
    edits = [(a, b, c, d) for tag, a, b, c, d in group if tag != "equal"]
    lo, hi = min(a for a, _, _, _ in edits), max(max(b, a + 1) for a, b, _, _ in edits)
    region = enclosing_region(old_text, lo, hi)
    if region is None:
        return CODE
    start, end, keeps_docstring = region
    before = old[start:end]
    after = list(before)
    for a, b, c, d in reversed(edits):
        after[a - start : b - start] = new[c:d]
    return classify_region("".join(x + "\n" for x in before), "".join(x + "\n" for x in after), keeps_docstring)


@lru_cache(maxsize=64)
def _old_tree(old_text: str) -> ast.Module | None:
    try:
        return Snippet.parse(old_text).tree
    except SyntaxError:
        return None


def _span(node: ast.stmt) -> tuple[int, int]:
    """0-based [first, last) lines of a statement, decorators included."""
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])
    return first - 1, node.end_lineno


def enclosing_region(old_text: str, lo: int, hi: int) -> tuple[int, int, bool] | None:
    """The smallest run of sibling statements covering old lines [lo, hi): (start, end, first_in_body).

    Descends from the module into the one statement that holds the whole range (a class, then a
    method, then an `if` in it) and stops where the range spans several statements, touches a
    statement's own header lines, or falls between statements (an insertion: its neighbours).
    `first_in_body` says whether the run starts its block, so a string first in it is a docstring.
    None when the old text does not parse.
    """
    tree = _old_tree(old_text)
    if tree is None:
        return None
    body: list[ast.stmt] = tree.body
    while True:
        spans = [_span(node) for node in body]
        inside = [k for k, (a, b) in enumerate(spans) if a <= lo and hi <= b]
        if len(inside) == 1:
            node = body[inside[0]]
            children = [c for c in _blocks(node) if c]
            a, b = spans[inside[0]]
            child_first = min((_span(c[0])[0] for c in children), default=b)
            if children and lo >= child_first:
                block = next((c for c in children if _span(c[0])[0] <= lo < _span(c[-1])[1]), None)
                if block is not None:
                    body = block
                    continue
            return a, b, inside[0] == 0 and body is not tree.body
        touched = [k for k, (a, b) in enumerate(spans) if a < hi and lo < b]
        if not touched:  # between statements: take the neighbours
            touched = [k for k, (a, _) in enumerate(spans) if a >= hi][:1] + [
                k for k, (_, b) in enumerate(spans) if b <= lo
            ][-1:]
        if not touched:
            return None
        first, last = min(touched), max(touched)
        start, end = min(spans[first][0], lo), max(spans[last][1], hi)
        return start, end, first == 0 and body is not tree.body


def _blocks(node: ast.stmt) -> list[list[ast.stmt]]:
    blocks = [getattr(node, name, None) for name in ("body", "orelse", "finalbody")]
    blocks += [h.body for h in getattr(node, "handlers", ())]
    return [b for b in blocks if isinstance(b, list) and b and isinstance(b[0], ast.stmt)]


@lru_cache(maxsize=8192)
def classify_region(before_text: str, after_text: str, first_in_body: bool = True) -> str:
    """The kind of change from `before_text` to `after_text` (whole statements, any indentation)."""
    if _tokens(before_text) == _tokens(after_text):
        return "formatting-only"
    try:
        Snippet.parse(before_text), Snippet.parse(after_text)
    except SyntaxError:
        return CODE
    return _classify_trees(before_text, after_text, first_in_body)


def _tokens(text: str) -> tuple[str, ...] | None:
    """The significant tokens (no comments, line breaks or indentation), or None when it does not tokenize."""
    try:
        return tuple(
            t.string
            for t in tokenize.generate_tokens(io.StringIO(text).readline)
            if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
        )
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None


def classify(old_text: str, edited_text: str) -> str:
    """The kind of change between two whole texts (see the module docstring)."""
    return classify_region(old_text, edited_text)


def _classify_trees(before: str, after: str, first_in_body: bool) -> str:
    """Each comparison strips freshly parsed trees (parsing a region is cheaper than copying a tree)."""

    def dumped(text: str, *strips) -> str:
        tree = Snippet.parse_fresh(text).tree  # the strips change it: not the shared tree
        for strip in strips:
            tree = strip(tree)
        return ast.dump(tree)

    if dumped(before) == dumped(after):
        return "formatting-only"
    drop = _DropDocstrings(module_too=first_in_body).visit
    annotations = _DropAnnotations().visit
    for kind, strips in (
        ("docstring-only", (drop,)),
        ("annotation-only", (annotations,)),
        ("docstring+annotation-only", (drop, annotations)),
    ):
        if dumped(before, *strips) == dumped(after, *strips):
            return kind
    return CODE


class _DropDocstrings(ast.NodeTransformer):
    def __init__(self, module_too: bool = True):
        self.module_too = module_too  # false for a run of statements that does not start its block

    def generic_visit(self, node):
        super().generic_visit(node)
        body = getattr(node, "body", None)
        holders = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef) + ((ast.Module,) if self.module_too else ())
        if isinstance(node, holders) and body:
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


def corresponding_lines(
    old_text: str, patch_lines: list[str], hunk: Hunk, context: int = CONTEXT
) -> tuple[int, int] | None:
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
    return max(min(hits) - context, 0), min(max(hits) + 1 + context, len(patch_lines))


_DEFINITION_HEAD = re.compile(r"^((?:async\s+)?def|class)\s+\w+.*")


def _comparable(line: str) -> str:
    return _DEFINITION_HEAD.sub(r"\1", line.strip())


def absorbed(old_upstream: str, hunk: Hunk, old_patch: str | None, new_patch: str | None) -> bool:
    """Whether the patch took in this upstream hunk: it changed where the hunk maps, and what upstream added.

    Where: the patch lines `corresponding_lines` maps the hunk's changed lines to, with no context
    (the whole patch when nothing maps). What: every name, number and string the hunk adds is in the
    patch's new text there (for a pure removal: what it removed is no longer all there). So renaming
    `past_key_values` to `cache` on the signature line absorbs nothing of a hunk on the update line,
    and renaming it on the update line does not absorb upstream's new `kwargs=kwargs` there either.
    """
    if old_patch is None or new_patch is None:
        return False  # no patch text recorded: only a person can say
    old_lines, new_lines = old_patch.splitlines(), new_patch.splitlines()
    span = corresponding_lines(old_upstream, old_lines, hunk, context=0) or (0, len(old_lines))
    start, end = span
    changed, reached = False, []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False).get_opcodes():
        if not (i1 < end and start < i2 or i1 == i2 and start <= i1 <= end):
            continue
        if tag == "equal":
            reached += [j1 + max(i1, start) - i1, j1 + min(i2, end) - i1]
        else:
            changed = True
            reached += [j1, j2]
    if not changed:
        return False
    region = _words("\n".join(new_lines[min(reached) : max(reached)]))
    old_words = _words("\n".join(hunk.old[i] for i in sorted(hunk.old_changed)))
    new_words = _words("\n".join(hunk.new[i] for i in sorted(hunk.new_changed)))
    added, removed = new_words - old_words, old_words - new_words
    if added:
        return added <= region
    return not removed <= region


def only_decorators(hunk: Hunk) -> bool:
    """Whether every line the hunk removes or adds is a one-line decorator (`@deprecate_kwarg(...)`): for a
    method whose output keeps upstream's decorators, regeneration takes such a hunk in by itself."""
    changed = [hunk.old[i] for i in hunk.old_changed] + [hunk.new[j] for j in hunk.new_changed]
    return bool(changed) and all(_ONE_LINE_DECORATOR.match(line) for line in changed)


_ONE_LINE_DECORATOR = re.compile(r"^\s*@[\w.]+(\(.*\))?\s*$")


def _words(text: str) -> set[str]:
    """Names, numbers and strings in `text` (line by line, so a fragment of a statement still counts)."""
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*|\d[\d_.eE]*|'[^']*'|\"[^\"]*\"", text))


def uses_changed(name: str, old_patch: str | None, new_patch: str | None) -> bool:
    """Whether the patch changed a line of code that reads `name` (before or after): how a patch absorbs
    a changed upstream dependency, whose hunks map to no patch line. A comment is not a fix."""
    if old_patch is None or new_patch is None:
        return False
    old_lines, new_lines = old_patch.splitlines(), new_patch.splitlines()
    pattern = re.compile(rf"\b{re.escape(name)}\b")

    def reads(lines: list[str]) -> bool:
        return any(pattern.search(line.split("#", 1)[0]) for line in lines)

    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False).get_opcodes():
        if tag != "equal" and (reads(old_lines[i1:i2]) or reads(new_lines[j1:j2])):
            return True
    return False
