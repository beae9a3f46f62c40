"""Formatting helpers shared by the report's section renderers (HTML and Markdown).

Renderers only format what ``report.json`` holds: they never compute a number. Every
value goes through ``num`` so that the page shows exactly the digits stored in the JSON
(integers get thousands separators, floats are shown as stored).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

STATUS_LABELS = {
    "pass": "PASS",
    "fail": "FAIL",
    "warn": "PASSED WITH WARNINGS",
    "not_validated": "NOT VALIDATED",
    "evidenced": "evidenced",
    "partly_evidenced": "partly evidenced",
    "open": "open",
    "not_run": "not run",
}


def esc(value: Any) -> str:
    return escape(str(value), quote=True)


def num(value: Any) -> str:
    """A number as the page shows it: ``2,247``, ``0.8734``, ``36.1``; anything else as text."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else ("yes" if value else "no")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,}" if value == value else "n/a"  # NaN never reaches JSON, but be safe
    return str(value)


def pct(value: Any) -> str:
    """A percentage already computed by the model (e.g. ``36.1`` -> ``36.1%``)."""
    return "—" if value is None else f"{num(value)}%"


class Markup(str):
    """HTML built by a renderer from escaped parts; ``cell`` passes it through unescaped."""


def chips(values: Iterable[Any]) -> Markup:
    """Short values (ids, masked examples) as separate code chips."""
    return Markup(" ".join(f"<code>{esc(v)}</code>" for v in values))


def cell(value: Any) -> str:
    """One HTML table cell's content: numbers right-aligned, lists joined, text escaped."""
    if isinstance(value, Markup):
        return value
    if isinstance(value, (list, dict)) and not value:
        return "—"
    if isinstance(value, list):
        return esc(", ".join(num(v) for v in value))
    if isinstance(value, dict):
        return esc(", ".join(f"{k}: {num(v)}" for k, v in value.items()))
    return esc(num(value))


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric: Sequence[int] = (), mono: Sequence[int] = (), caption: str = ""
) -> str:
    """An HTML table; ``numeric`` columns are right-aligned, ``mono`` columns are identifiers (monospace)."""

    def cls(i: int) -> str:
        return " class=num" if i in numeric else " class=mono" if i in mono else ""

    head = "".join(f"<th{' class=num' if i in numeric else ''}>{esc(h)}</th>" for i, h in enumerate(headers))
    body = []
    for row in rows:
        tds = "".join(f"<td{cls(i)}>{cell(v)}</td>" for i, v in enumerate(row))
        body.append(f"<tr>{tds}</tr>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def kv(pairs: Iterable[tuple[str, Any]], *, columns: int = 1) -> str:
    """A definition list of label/value pairs, in ``columns`` side-by-side columns."""
    if columns > 1:  # flowing columns of label/value pairs: long labels cannot squeeze a value
        items = "".join(f"<div class=pair><span class=k>{esc(k)}</span> <span class=v>{cell(v)}</span></div>" for k, v in pairs)
        return f'<div class="kvcols c{columns}">{items}</div>'
    items = "".join(f"<dt>{esc(k)}</dt><dd>{cell(v)}</dd>" for k, v in pairs)
    return f"<dl class=kv>{items}</dl>"


def badge(status: str) -> str:
    return f'<span class="badge {esc(status)}">{esc(STATUS_LABELS.get(status, status))}</span>'


def prose(text: str) -> str:
    """Escaped text with `backticked` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(text))


def note(text: str) -> str:
    return f"<p class=note>{prose(text)}</p>"


def tiles(items: Sequence[tuple[str, Any, str]]) -> str:
    """Big summary numbers: (label, value, unit suffix such as ``%`` or ``''``)."""
    out = [
        f"<div class=tile><div class=big>{esc(num(v))}{esc(unit)}</div><div class=lbl>{esc(label)}</div></div>" for label, v, unit in items
    ]
    return f"<div class=tiles>{''.join(out)}</div>"


def metric_rows(metrics: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(label, value) rows for scalar metrics the section does not know by name."""
    return [(k.replace("_", " "), v) for k, v in metrics.items()]


# ---------------------------------------------------------------------------- markdown
def md_esc(value: Any) -> str:
    return num(value).replace("|", "\\|").replace("\n", " ")


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    return "\n".join(lines)


def _md_cell(value: Any) -> str:
    if isinstance(value, list):
        return md_esc(", ".join(num(v) for v in value))
    if isinstance(value, dict):
        return md_esc(", ".join(f"{k}: {num(v)}" for k, v in value.items()))
    return md_esc(value)


def md_code(values: Iterable[Any]) -> str:
    """Short values (ids, masked examples) as Markdown code spans, so that ``*`` is not read as emphasis."""
    spans = []
    for value in values:
        text = str(value)
        fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
        spans.append(f"{fence} {text} {fence}" if "`" in text else f"{fence}{text}{fence}")
    return " ".join(spans)


def md_kv(pairs: Iterable[tuple[str, Any]]) -> str:
    return "\n".join(f"- **{k}:** {_md_cell(v)}" for k, v in pairs)
