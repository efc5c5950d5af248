"""Text transformers reads in a model's module source to decide what the model supports.

`PreTrainedModel._can_set_attn_implementation` looks for `ALL_ATTENTION_FUNCTIONS.get_interface(` and
`_can_set_experts_implementation` for `@use_experts_implementation`, anywhere in the module's text:
comments and strings count. A generated file whose banner or copied comment merely mentions one of
them makes the model claim a capability its code no longer has (`set_experts_implementation(...)`
then silently does nothing). So banners spell these markers differently (`defuse`), and the output
is refused when a marker appears in its text but not in its code (`claims_without_code`), and when
the answers themselves differ from upstream's (`sniffed_capabilities`, asked of transformers itself;
`validation._refuse_changed_capabilities`), e.g. added code defining `class ...Attention...(nn.Module):`
in a module that had no attention class.
"""

from __future__ import annotations

import ast


# marker -> how banners write it instead
SNIFFED_MARKERS = {
    "@use_experts_implementation": "use_experts_implementation decorator",
    "ALL_ATTENTION_FUNCTIONS.get_interface(": "ALL_ATTENTION_FUNCTIONS.get_interface (call)",
}


def defuse(text: str) -> str:
    """`text` with every sniffed marker spelled so that transformers does not match it."""
    for marker, spelled in SNIFFED_MARKERS.items():
        text = text.replace(marker, spelled)
    return text


def claims_without_code(text: str, tree: ast.Module | None = None) -> list[tuple[str, int]]:
    """(marker, first line) for each marker the text holds only in comments or strings.

    Read off the parse tree (`tree`, when the caller has parsed `text` already) rather than by tokenizing
    the whole file: an occurrence is in a string when a string literal covers it (an f-string or an
    implicit concatenation counts whole, as the tokenizer's string tokens do), in a comment when a `#`
    outside any string precedes it on its line, and otherwise in code. Only the nodes whose lines hold
    an occurrence are visited.
    """
    if not any(marker in text for marker in SNIFFED_MARKERS):
        return []  # nothing to look for: no need to parse
    lines = text.splitlines(keepends=True)
    tree = tree if tree is not None else ast.parse(text)
    found = []
    for marker in SNIFFED_MARKERS:
        occurrences = _occurrences(text, marker)
        if occurrences and not any(_in_code(tree, lines[line - 1], line, col) for line, col in occurrences):
            found.append((marker, occurrences[0][0]))
    return found


def _occurrences(text: str, marker: str) -> list[tuple[int, int]]:
    """(line, character column) of each occurrence of `marker`."""
    found, start = [], text.find(marker)
    while start != -1:
        line_start = text.rfind("\n", 0, start) + 1
        found.append((text.count("\n", 0, start) + 1, start - line_start))
        start = text.find(marker, start + 1)
    return found


def _in_code(tree: ast.Module, text: str, line: int, col: int) -> bool:
    """Whether column `col` of line `line` (whose text is `text`) is code: not in a string, not in a comment."""
    if _in_string(tree, line, len(text[:col].encode("utf-8"))):  # the tree's columns count UTF-8 bytes
        return False
    return not any(
        char == "#" and not _in_string(tree, line, len(text[:index].encode("utf-8")))
        for index, char in enumerate(text[:col])
    )


def _in_string(node: ast.AST, line: int, column: int) -> bool:
    """Whether a string literal below `node` covers (line, UTF-8 byte column); descends only into nodes
    that cover it (a node without a position, such as `arguments`, is looked into)."""
    for child in ast.iter_child_nodes(node):
        start = getattr(child, "lineno", None)
        if start is not None and not (
            (start, child.col_offset) <= (line, column) < (child.end_lineno, child.end_col_offset)
        ):
            continue
        if isinstance(child, ast.JoinedStr) or (
            isinstance(child, ast.Constant) and isinstance(child.value, (str, bytes))
        ):
            return True
        if _in_string(child, line, column):
            return True
    return False


# -- capabilities transformers decides from the module text ---------------------------------------

#: `PreTrainedModel` classmethods that read the source of the class's module (transformers 5.17) ->
#: (what transformers looks for, what the refusal tells the user to do when the output changes the answer).
SNIFFED_CAPABILITIES = {
    "_can_set_attn_implementation": (
        "transformers looks for a `class ...Attention...(nn.Module):` and then for "
        "`ALL_ATTENTION_FUNCTIONS.get_interface(` in the module text",
        "name an added class without 'Attention' (or not as an nn.Module subclass), or keep the "
        "get_interface call in a replaced attention",
    ),
    "_can_set_experts_implementation": (
        "transformers looks for `@use_experts_implementation` in the module text",
        "keep the decorator on the replaced experts class",
    ),
}


def sniffed_capabilities(text: str) -> dict[str, bool]:
    """What transformers' own source-reading classmethods answer for a model class in a module with `text`.

    Asks transformers itself rather than copying its heuristics, so an upgrade that changes them is
    followed: a throwaway `PreTrainedModel` subclass is put in a throwaway module whose source
    `inspect.getsource` finds in `linecache`.
    """
    import linecache
    import sys
    import types

    from transformers import PreTrainedModel

    name = f"_patchgen_sniff_{abs(hash(text))}"
    filename = f"<{name}>"
    module = types.ModuleType(name)
    module.__file__ = filename
    linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)
    sys.modules[name] = module
    try:
        probe = type("SniffedModel", (PreTrainedModel,), {"__module__": name})
        return {capability: bool(getattr(probe, capability)()) for capability in SNIFFED_CAPABILITIES}
    finally:
        del sys.modules[name]
        linecache.cache.pop(filename, None)
