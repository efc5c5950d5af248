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

import io
import tokenize


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


def code_only(text: str) -> str:
    """The source with comments and string literals blanked out (what the interpreter runs)."""
    pieces: list[str] = []
    lines = text.splitlines(keepends=True)
    last = (1, 0)
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    for token in tokens:
        if token.type in (tokenize.COMMENT, tokenize.STRING) or token.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
            pieces.append(_between(lines, last, token.start))
            pieces.append(" ")
            last = token.end
    pieces.append(_between(lines, last, (len(lines) + 1, 0)))
    return "".join(pieces)


def _between(lines: list[str], start: tuple[int, int], end: tuple[int, int]) -> str:
    (row, col), (end_row, end_col) = start, end
    if row == end_row:
        return lines[row - 1][col:end_col] if row <= len(lines) else ""
    out = [lines[row - 1][col:]] if row <= len(lines) else []
    out += lines[row : end_row - 1]
    if end_row <= len(lines):
        out.append(lines[end_row - 1][:end_col])
    return "".join(out)


def claims_without_code(text: str) -> list[tuple[str, int]]:
    """(marker, first line) for each marker the text holds only in comments or strings."""
    if not any(marker in text for marker in SNIFFED_MARKERS):
        return []  # nothing to look for: no need to tokenize the whole text
    code = code_only(text)
    found = []
    for marker in SNIFFED_MARKERS:
        if marker in text and marker not in code:
            found.append((marker, text[: text.index(marker)].count("\n") + 1))
    return found


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
