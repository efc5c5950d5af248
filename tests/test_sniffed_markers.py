"""`claims_without_code` finds a sniffed marker that a text holds only in comments or strings.

transformers decides `_can_set_attn_implementation` and `_can_set_experts_implementation` by searching the
module's text, comments and strings included (`patchgen.syntax.sniffed`). The generator refuses an output
that holds a marker only outside code. The check reads the output's parse tree; the oracle here is the
tokenizer (comments and string tokens blanked out, the marker looked for in what is left), run on every
committed generated file and on texts made to trip a position-based reading: non-ASCII before the marker
(the tree counts UTF-8 bytes), `#` inside a string, comments between implicitly concatenated strings,
f-string expressions, docstrings, decorators.
"""

import io
import tokenize

import pytest
from conftest import REPO

from patchgen.syntax.sniffed import SNIFFED_MARKERS, claims_without_code


def tokenizer_oracle(text: str) -> list[tuple[str, int]]:
    """The markers in `text` but not in its code, where code is the text with comment and string tokens blanked."""
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    code, last = [], 0
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type in (tokenize.COMMENT, tokenize.STRING):
            start = offsets[token.start[0] - 1] + token.start[1]
            code.append(text[last:start] + " ")
            last = offsets[token.end[0] - 1] + token.end[1]
    code.append(text[last:])
    code_text = "".join(code)
    return [
        (marker, text[: text.index(marker)].count("\n") + 1)
        for marker in SNIFFED_MARKERS
        if marker in text and marker not in code_text
    ]


ATTN, EXPERTS = "ALL_ATTENTION_FUNCTIONS.get_interface(", "@use_experts_implementation"
TRICKY = {
    "comment only": f"x = 1  # {ATTN}\n",
    "string then code": f's = "é {ATTN}"\ny = {ATTN}a)\n',
    "docstring only": f'"""doc\n{EXPERTS}\n"""\nclass A:\n    pass\n',
    "f-string expression": 'f = f"{' + ATTN + 'x)}"\n',
    "comment inside a concatenation": f'a = ("x"  # {ATTN}\n     "y")\n',
    "non-ASCII and # in a string, then code": f'é = "#"; b = {ATTN}1)\n',
    "non-ASCII and # in a string, then a comment": f'é = "#"  # {ATTN}\n',
    "decorator, then a commented one": f"{EXPERTS}\nclass E:\n    pass\n# {EXPERTS}\n",
    "a commented one, then code": f'x = "ü#"  # {EXPERTS}\n{EXPERTS}\nclass E:\n    pass\n',
    "both only in strings": f'A = "{ATTN}"\nB = """\n{EXPERTS}\n"""\n',
    "bytes": f'b = b"{ATTN}"\n',
    "no marker": "x = 1\n",
}


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_tricky_texts_agree_with_the_tokenizer(name):
    text = TRICKY[name]
    assert claims_without_code(text) == tokenizer_oracle(text)


def test_the_tricky_texts_cover_both_answers():
    answers = [bool(tokenizer_oracle(text)) for text in TRICKY.values()]
    assert any(answers) and not all(answers)


def test_every_committed_generated_file_agrees_with_the_tokenizer():
    files = sorted((REPO / "generated").rglob("*.py"))
    assert len(files) > 20
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert claims_without_code(text) == tokenizer_oracle(text), path
