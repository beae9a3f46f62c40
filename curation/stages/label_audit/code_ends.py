"""Is an answer cut off? Code and prose end differently.

A prose answer is cut when it stops mid-sentence (on a letter, digit, comma, colon or
hyphen, outside a list item, table row or heading). A code answer is complete when it
parses (Python, through ``ast``) or its last line ends a block (``}``, ``end``, ``fi``,
``done``, ``esac``, a ``return ...`` line, a statement ending in ``;``, a closing
fence) outside any open bracket. Code that does not parse is cut when it visibly stops
inside something: an open bracket, or a last line ending in an operator, comma or
opener. The answer's tail, after its last closing fence, decides which rules apply: a
tail whose lines mostly look like code, or whose last line ends a block, is code.
"""

from __future__ import annotations

import ast
import re

UNCLOSED_FENCE = "unclosed code fence"
MID_SENTENCE = "ends mid-sentence"
MID_CODE = "code stops inside a block"

_FENCE_LINE = re.compile(r"^ {0,3}(?:`{3,}|~{3,})\s*$")
_BLOCK_END = re.compile(
    r"^\s*(?:[})\]]+[;,)]*|(?i:end(?:\s+(?:if|sub|function|module|class|loop|case|select|while|for|do|program))?;?)"
    r"|fi|done|esac|return\b.*|.*;)\s*$"
)
_STRUCTURED = re.compile(r"^\s*(?:[-*+•]|\d+[.)]|#|\|)")
_MID_SENTENCE = re.compile(r"[\w,:\-]\s*$")
_CODE_LINE = re.compile(
    r"^(?:\t| {2,})\S"  # indented
    r"|[;{}]\s*$"  # statement or block punctuation at the end
    r"|^\s*(?:def|class|import|from|return|for|while|if|elif|else|try|except|with|lambda|print|var|let|const|function|public|private|"
    r"static|int|void|char|double|#include|echo|export|cd|SELECT|FROM|WHERE|GROUP|ORDER|INSERT|UPDATE|CREATE)\b"
    r"|\w\s*(?:==|!=|<=|>=|\+=|-=|=>|->|:=|=)\s*\S"  # assignments and comparisons
    r"|\w\(.*\)\s*$"  # a call at the end of the line
)
_OPEN_END = re.compile(r"(?:[(\[{,=+\-*/%&|\\<>.]|\band|\bor|\bnot)\s*$")


def truncation(text: str, *, min_words: int) -> str | None:
    """Why ``text`` looks cut off (one of the constants above), or None when it looks complete."""
    body = text.strip()
    lines = body.split("\n")
    fences = [i for i, line in enumerate(lines) if _FENCE_LINE.match(line) or line.lstrip().startswith(("```", "~~~"))]
    if len(fences) % 2 == 1:
        return UNCLOSED_FENCE
    tail = "\n".join(lines[fences[-1] + 1 :] if fences else lines).strip("\n")
    if not tail.strip():
        return None  # ends with a closing fence
    last = tail.rstrip().split("\n")[-1]
    if _is_code(tail) or _BLOCK_END.match(last):
        return None if _code_complete(tail, last) else MID_CODE
    if len(body.split()) >= min_words and _MID_SENTENCE.search(last) and not _STRUCTURED.match(last):
        return MID_SENTENCE
    return None


def _is_code(tail: str) -> bool:
    """Most non-blank lines of ``tail`` look like code (a one-line tail: that line)."""
    lines = [line for line in tail.split("\n") if line.strip()]
    code = sum(bool(_CODE_LINE.search(line)) for line in lines)
    return code * 2 > len(lines) or (len(lines) > 1 and bool(_CODE_LINE.search(lines[-1])) and lines[-1][:1] in " \t")


def _code_complete(tail: str, last: str) -> bool:
    """Parses, or stops outside any bracket and not on an operator (a block end is then enough)."""
    if _parses(tail):
        return True
    depth = sum(tail.count(c) for c in "([{") - sum(tail.count(c) for c in ")]}")
    return depth <= 0 and not _OPEN_END.search(last)


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):  # ValueError: a null byte
        return False
    return True
