"""Tiny self-contained SVG charts for the report: horizontal bar charts and histograms.

No JavaScript, no external fonts or stylesheets, deterministic output (same numbers, same
bytes), every label XML-escaped. Good enough to read a distribution at a glance; the
exact numbers live in stats.json.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape

import numpy as np

PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756")
_FONT = 'font-family="sans-serif" font-size="11"'
_LABEL_W, _BAR_W, _ROW_H, _TOP = 150, 320, 16, 34


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    head = f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
    return (
        "\n".join(
            [
                head,
                f"<title>{escape(title)}</title>",
                f'<text x="8" y="16" {_FONT} font-weight="bold">{escape(title)}</text>',
                *body,
                "</svg>",
            ]
        )
        + "\n"
    )


def _legend(names: Sequence[str], y: int) -> list[str]:
    out = []
    for i, name in enumerate(names):
        x = 8 + i * 130
        out.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>')
        out.append(f'<text x="{x + 14}" y="{y}" {_FONT}>{escape(name[:18])}</text>')
    return out


def _short(label: str, n: int = 24) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def bar_chart(title: str, categories: Sequence[str], series: Mapping[str, Sequence[float]], *, percent: bool = False) -> str:
    """Horizontal grouped bars: one group per category, one bar per series.

    Args:
        title: the chart title.
        categories: the bar labels, top to bottom.
        series: series name -> one value per category (e.g. ``{"dataset": shares}``).
        percent: show values as percentages (values are fractions).
    """
    names = list(series)
    top = max((max(v, default=0.0) for v in series.values()), default=0.0) or 1.0
    group_h = _ROW_H * len(names) + 6
    body = _legend(names, 28) if len(names) > 1 else []
    for i, cat in enumerate(categories):
        y0 = _TOP + i * group_h
        body.append(f'<text x="{_LABEL_W - 6}" y="{y0 + group_h / 2 + 2:.1f}" {_FONT} text-anchor="end">{escape(_short(str(cat)))}</text>')
        for j, name in enumerate(names):
            value = float(series[name][i])
            w = _BAR_W * value / top
            y = y0 + j * _ROW_H
            text = f"{100 * value:.1f}%" if percent else f"{value:g}"
            body.append(f'<rect x="{_LABEL_W}" y="{y}" width="{w:.1f}" height="{_ROW_H - 3}" fill="{PALETTE[j % len(PALETTE)]}"/>')
            body.append(f'<text x="{_LABEL_W + w + 4:.1f}" y="{y + _ROW_H - 5}" {_FONT}>{text}</text>')
    height = _TOP + len(categories) * group_h + 8
    return _svg(_LABEL_W + _BAR_W + 70, height, body, title)


def histogram(title: str, series: Mapping[str, np.ndarray], *, bins: int = 30, x_label: str = "") -> str:
    """Overlaid histograms (as shares of each series) on shared bins, clipped at the 99th percentile."""
    values = [np.asarray(v, dtype=np.float64) for v in series.values() if len(v)]
    both = np.concatenate(values) if values else np.zeros(1)
    lo, hi = float(both.min()), max(float(np.percentile(both, 99)), float(both.min()) + 1.0)
    if np.all(both == np.round(both)) and hi - lo < bins:  # small integer range: one bin per integer, no gaps
        bins = int(hi - lo) + 1
        edges = np.arange(lo, hi + 2) - 0.5
    else:
        edges = np.linspace(lo, hi, bins + 1)
    width, height, left, plot_h = 520, 230, 40, 150
    bar_w = (width - left - 10) / bins
    body = _legend(list(series), 32)
    all_shares = []
    for v in series.values():
        counts, _ = np.histogram(np.clip(np.asarray(v, dtype=np.float64), edges[0], edges[-1]), bins=edges)
        all_shares.append(counts / max(counts.sum(), 1))
    peak = max(float(s.max()) for s in all_shares) or 1.0  # one scale, so series compare
    for j, shares in enumerate(all_shares):
        for i, s in enumerate(shares):
            h = plot_h * s / peak
            body.append(
                f'<rect x="{left + i * bar_w:.1f}" y="{42 + plot_h - h:.1f}" width="{bar_w - 1:.1f}" height="{h:.1f}" fill="{PALETTE[j % len(PALETTE)]}" fill-opacity="0.55"/>'
            )
    axis_y = 42 + plot_h + 14
    body.append(f'<text x="{left}" y="{axis_y}" {_FONT}>{lo:g}</text>')
    body.append(f'<text x="{width - 10}" y="{axis_y}" {_FONT} text-anchor="end">{hi:.0f}+</text>')
    body.append(f'<text x="{width / 2:.0f}" y="{axis_y + 14}" {_FONT} text-anchor="middle">{escape(x_label)}</text>')
    return _svg(width, height, body, title)
