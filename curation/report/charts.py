"""Inline SVG charts drawn by the report itself, from numbers already in report.json.

Plain SVG with explicit sizes, fonts set on the root and no scripts, so the page renders
the same in a browser, in print, and with no network. Colours carry no meaning on their
own: every bar is labelled with its number.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from curation.report.render import num

KEPT, DROPPED, QUARANTINED = "#2f6f9f", "#e08a2c", "#c0392b"
_FONT = 'font-family="Helvetica, Arial, sans-serif" font-size="12"'


def _text(x: float, y: float, text: str, *, anchor: str = "start", weight: str = "normal", fill: str = "#222") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-weight="{weight}" fill="{fill}">{escape(text)}</text>'


def flow_chart(stages: Sequence[dict[str, object]]) -> str:
    """One horizontal bar per stage: kept, dropped and quarantined rows, scaled to the largest input.

    Args:
        stages: rows with ``stage``, ``rows_in``, ``kept``, ``dropped``, ``quarantined``.
    """
    label_w, bar_w, row_h, top = 120, 460, 28, 30
    width, height = label_w + bar_w + 250, top + row_h * len(stages) + 10
    biggest = max((int(s["rows_in"]) for s in stages), default=1) or 1  # type: ignore[call-overload]
    body = [_legend(label_w, 14)]
    for i, s in enumerate(stages):
        y = top + i * row_h
        x = float(label_w)
        body.append(_text(label_w - 8, y + 15, str(s["stage"]), anchor="end", weight="bold"))
        for key, colour in (("kept", KEPT), ("dropped", DROPPED), ("quarantined", QUARANTINED)):
            w = bar_w * int(s[key]) / biggest  # type: ignore[call-overload]
            if w > 0:
                body.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{max(w, 1.5):.1f}" height="{row_h - 10}" fill="{colour}"/>')
            x += w
        parts = [f"{num(s['kept'])} kept"] + [f"{num(s[k])} {k}" for k in ("dropped", "quarantined") if s[k]]
        body.append(_text(x + 6, y + 15, " · ".join(parts)))
    return _svg(width, height, body, "Rows through the pipeline, by stage")


def _legend(x0: int, y: int) -> str:
    out = []
    for i, (name, colour) in enumerate((("kept", KEPT), ("dropped", DROPPED), ("quarantined", QUARANTINED))):
        x = x0 + i * 110
        out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{colour}"/>')
        out.append(_text(x + 17, y, name))
    return "".join(out)


def share_bars(title: str, items: Sequence[tuple[str, float]], *, colour: str = KEPT) -> str:
    """Horizontal bars of percentages (already computed), one per labelled item."""
    label_w, bar_w, row_h, top = 170, 380, 20, 28
    width, height = label_w + bar_w + 80, top + row_h * len(items) + 8
    biggest = max((v for _, v in items), default=1.0) or 1.0
    body = [_text(8, 16, title, weight="bold")]
    for i, (label, value) in enumerate(items):
        y = top + i * row_h
        w = bar_w * value / biggest
        short = label if len(label) <= 26 else label[:25] + "…"
        body.append(_text(label_w - 8, y + 13, short, anchor="end"))
        body.append(f'<rect x="{label_w}" y="{y + 3}" width="{max(w, 1.5):.1f}" height="{row_h - 6}" fill="{colour}"/>')
        body.append(_text(label_w + w + 6, y + 13, f"{num(value)}%"))
    return _svg(width, height, body, title)


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" {_FONT}>'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )
