"""The opt-in tidying of `normalize`: inner spaces and blank-line runs, in prose only.

A value is split into lines; lines inside a Markdown fence (```` ``` ```` or ``~~~``)
and indented lines (a tab or four spaces: Markdown's indented code, and the body of
most code) are code and stay as they are. In the other lines, runs of spaces and tabs
after the first non-blank character become one space; the leading whitespace of a
line is never touched. Runs of empty lines outside fences are capped.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_INNER_RUN = re.compile(r"(?<=\S)[ \t]{2,}(?=\S)")
_INDENTED = re.compile(r"^(?:\t| {4})")


def tidy_prose(text: str, *, collapse_spaces: bool, max_blank_lines: int | None) -> str:
    """``text`` with inner space runs collapsed and blank-line runs capped, outside code."""
    out: list[str] = []
    fence: str | None = None  # the opening fence while inside a fenced block
    blank_run = 0
    for line in text.split("\n"):
        opener = _FENCE.match(line)
        in_code = fence is not None or opener is not None
        if fence is not None and opener is not None and opener.group(1)[0] == fence[0] and len(opener.group(1)) >= len(fence):
            if not line.strip().strip(fence[0]):
                fence = None  # a closing fence: only fence characters on the line
        elif fence is None and opener is not None:
            fence = opener.group(1)
        if not line.strip() and not in_code:
            blank_run += 1
            if max_blank_lines is not None and blank_run > max_blank_lines:
                continue
            out.append(line)
            continue
        blank_run = 0
        if collapse_spaces and not in_code and not _INDENTED.match(line):
            line = _INNER_RUN.sub(" ", line)
        out.append(line)
    return "\n".join(out)
