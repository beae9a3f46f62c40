"""Inline SVG charts drawn by the report itself, from numbers already in report.json.

Plain SVG with explicit sizes, fonts set on the root and no scripts, so the page renders
the same in a browser, in print, and with no network. Colours carry no meaning on their
own: every bar is labelled with its number.
"""

from __future__ import annotations

from collections.abc import Sequence

from curation.core import svg
from curation.report.render import num

KEPT, DROPPED, QUARANTINED = "#2f6f9f", "#e08a2c", "#c0392b"


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
        body.append(svg.text(label_w - 8, y + 15, str(s["stage"]), anchor="end", weight="bold"))
        for key, colour in (("kept", KEPT), ("dropped", DROPPED), ("quarantined", QUARANTINED)):
            w = bar_w * int(s[key]) / biggest  # type: ignore[call-overload]
            if w > 0:
                body.append(svg.rect(x, y + 3, max(w, 1.5), row_h - 10, colour))
            x += w
        parts = [f"{num(s['kept'])} kept"] + [f"{num(s[k])} {k}" for k in ("dropped", "quarantined") if s[k]]
        body.append(svg.text(x + 6, y + 15, " · ".join(parts)))
    return svg.document(width, height, body, css_class="chart", title="Rows through the pipeline, by stage")


def _legend(x0: int, y: int) -> str:
    out = []
    for i, (name, colour) in enumerate((("kept", KEPT), ("dropped", DROPPED), ("quarantined", QUARANTINED))):
        x = x0 + i * 110
        out.append(svg.rect(x, y - 10, 12, 12, colour))
        out.append(svg.text(x + 17, y, name))
    return "".join(out)


def share_bars(title: str, items: Sequence[tuple[str, float]], *, colour: str = KEPT) -> str:
    """Horizontal bars of percentages (already computed), one per labelled item."""
    label_w, bar_w, row_h, top = 170, 380, 20, 28
    width, height = label_w + bar_w + 80, top + row_h * len(items) + 8
    biggest = max((v for _, v in items), default=1.0) or 1.0
    body = []
    for i, (label, value) in enumerate(items):
        y = top + i * row_h
        w = bar_w * value / biggest
        body.append(svg.text(label_w - 8, y + 13, svg.short(label, 26), anchor="end"))
        body.append(svg.rect(label_w, y + 3, max(w, 1.5), row_h - 6, colour))
        body.append(svg.text(label_w + w + 6, y + 13, f"{num(value)}%"))
    return svg.document(width, height, body, css_class="chart", title=title, heading=True)
