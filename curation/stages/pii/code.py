"""Where a text holds code: Markdown fences, inline code, indented blocks and code-like lines.

Fine-tuning sets are full of code answers (Code Alpaca, Stack Exchange dumps), and a
general NER model reads code as prose: ``String`` and ``Random`` become people,
``[::-1]`` an IPv6 address, ``3.14159265`` a phone number. ``code_regions`` finds the
character ranges that are code, with regular expressions only (no parse, no model), so
the engine can hold findings there to high-precision entities (see ``guard.py``).

A line is code-like when it opens with a keyword of a common language (``def``,
``import``, ``public``, ``SELECT``, ``echo``...), assigns (``x = ...``), ends like a
statement or block (``;``, ``{``, ``}``), or holds operators prose never writes (``==``,
``=>``, ``::``, ``[::-1]``, ``foo.bar(``). Lines indented under a code-like line belong to
its block. A text without fences whose non-blank lines are mostly code-like is code throughout,
but for the sentences in it ("Thanks, Jane Doe").
"""

from __future__ import annotations

import re

Region = tuple[int, int]

_FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n.*?(?:^[ \t]*\1[ \t]*$|\Z)", re.MULTILINE | re.DOTALL)
_INLINE = re.compile(r"`[^`\n]+`")
# Line openings that are code in common languages, each with the shape that follows it, so
# that lower-case chat ("do you ...", "return the parcel", "cat ate it") stays prose.
_KEYWORD = re.compile(
    r"^[ \t]*(?:>>>[ \t]|\$[ \t]+\S|#include\s*[<\"]|#!/|@[A-Za-z_][\w.]*(?:\(|[ \t]*$)"
    r"|def\s+\w+\s*\(|class\s+\w+\s*(?:[(:{<]|extends|implements|$)|import\s+[\w.*]+(?:\s+as\s+\w+)?\s*;?\s*$"
    r"|from\s+[\w.]+\s+import\s|return(?:\s*;|\s+\S+(?:\s*[-+*/%<>=!&|^]+\s*\S+)*\s*;?)\s*$"
    r"|(?:public|private|protected|internal)\s+(?:(?:static|final|abstract|async|override|readonly)\s+)*[\w<>\[\],.?]+\s+\w+\s*[({=;:]"
    r"|static\s+\w+\s+\w+\s*[(=;]"
    r"|(?:int|long|double|float|char|bool|boolean|void|String|auto|var|let|const|val)\s+[A-Za-z_]\w*\s*(?:[=;(,:]|\[)"
    r"|(?:async\s+)?function\b\s*\w*\s*\(|fn\s+\w+\s*[(<]|func\s+\w+\s*\(|package\s+[\w.]+\s*;?\s*$|using\s+[\w.]+\s*;"
    r"|(?:if|elif|while|for|switch|catch|foreach)\s*\(|(?:if|elif|while|for|with|except|def)\b[^\n]*:\s*$"
    r"|(?:else|try|finally|except|do|then)\s*[:{]?\s*$|(?:fi|done|esac|end)\s*;?\s*$"
    r"|(?:print|printf|println!?|puts|console\.\w+|System\.\w+\.\w+|fmt\.\w+)\s*\("
    r"|(?:echo|sudo|pip3?|npm|yarn|git|docker|curl|wget|chmod|chown|mkdir|rm|cp|mv|cd|ls|grep|cat|export|apt(?:-get)?|brew"
    r"|python3?|node|java|javac|gcc|make|kubectl)\s+(?:\S*[-./$~=\"'*]|install\b|run\b|build\b|clone\b|commit\b|add\b|push\b)"
    r"|(?:SELECT|FROM|WHERE|INSERT\s+INTO|UPDATE|DELETE\s+FROM|CREATE\s+(?:TABLE|INDEX|VIEW|DATABASE)|ALTER\s+TABLE"
    r"|DROP\s+TABLE|GROUP\s+BY|ORDER\s+BY|HAVING|LIMIT|VALUES|SET|(?:INNER\s+|LEFT\s+|RIGHT\s+)?JOIN)\s+\S)"
)
_ASSIGN = re.compile(r"^[ \t]*[A-Za-z_$][\w.$]*(?:\[[^\]\n]*\])*[ \t]*(?:[-+*/%&|^]|//|<<|>>)?=(?!=)[ \t]*\S")
_ENDS = re.compile(r"(?:[;{}]|;[ \t]*(?:do|then)|\)[ \t]*:|^[ \t]*[)\]}][,;)]*)[ \t]*(?:(?://|#)[^\n]*)?$")
_OPERATORS = re.compile(
    r"==|!=|<=|>=|&&|\|\||=>|::|\+\+|--[a-z]|\+=|-=|\w\[[^\]\n]*:[^\]\n]*\]|\b[A-Za-z_]\w*\.[a-z_]\w*\(|\b[a-z_]+[A-Z_]\w*\(|\w\(\)"
)
_INDENT = re.compile(r"^(?:[ ]{4,}|\t)")
# a sentence: a capitalised word and at least two more, none of the characters code is made of
_PROSE = re.compile(r"^[ \t]*[\"'“>]*[A-Z][\w'’,.:-]*(?:[ \t]+[^\s;{}=<>\[\]]+){2,}[ \t]*\n?$")
_LINE = re.compile(r"[^\n]*\n?")


def is_code_line(line: str) -> bool:
    """Whether one line reads as code rather than prose."""
    if not line.strip():
        return False
    return bool(_KEYWORD.match(line) or _ASSIGN.match(line) or _ENDS.search(line) or _OPERATORS.search(line))


def code_regions(text: str) -> list[Region]:
    """Sorted, non-overlapping ``(start, end)`` ranges of ``text`` that are code."""
    if not text:
        return []
    fences = [m.span() for m in _FENCE.finditer(text)]
    regions = fences + [m.span() for m in _INLINE.finditer(text)]
    lines = [(m.start(), m.end(), m.group()) for m in _LINE.finditer(text) if m.group().strip()]
    flags = [is_code_line(line) for _, _, line in lines]
    if not fences and len(lines) >= 2 and sum(flags) * 2 >= len(lines):
        # a bare code answer: every line but the sentences around it ("Thanks, Jane Doe")
        return _merge([(a, b) for (a, b, line), f in zip(lines, flags, strict=True) if f or not _PROSE.match(line)])
    in_block = False
    for (start, end, line), flag in zip(lines, flags, strict=True):
        in_block = flag or (in_block and bool(_INDENT.match(line)))
        if in_block and not in_regions(fences, start, end):
            regions.append((start, end))
    return _merge(regions)


def _merge(regions: list[Region]) -> list[Region]:
    out: list[list[int]] = []
    for a, b in sorted(regions):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def in_regions(regions: list[Region], start: int, end: int) -> bool:
    """Whether ``[start, end)`` overlaps any of ``regions``."""
    return any(a < end and start < b for a, b in regions)
