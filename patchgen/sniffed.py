"""Text transformers reads in a model's module source to decide what the model supports.

`PreTrainedModel._can_set_attn_implementation` looks for `ALL_ATTENTION_FUNCTIONS.get_interface(` and
`_can_set_experts_implementation` for `@use_experts_implementation`, anywhere in the module's text:
comments and strings count. A generated file whose banner or copied comment merely mentions one of
them makes the model claim a capability its code no longer has (`set_experts_implementation(...)`
then silently does nothing). So banners spell these markers differently (`defuse`), and the output
is refused when a marker appears in its text but not in its code (`claims_without_code`).
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
    code = code_only(text)
    found = []
    for marker in SNIFFED_MARKERS:
        if marker in text and marker not in code:
            found.append((marker, text[: text.index(marker)].count("\n") + 1))
    return found
