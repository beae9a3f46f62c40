"""Tiny self-contained SVG charts for the report: horizontal bar charts and histograms.

No JavaScript, no external fonts or stylesheets, deterministic output (same numbers, same
bytes), every label XML-escaped. Good enough to read a distribution at a glance; the
exact numbers live in stats.json.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from curation.core import svg

PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756")
_LABEL_W, _BAR_W, _ROW_H, _TOP = 150, 320, 16, 34


def _legend(names: Sequence[str], y: int) -> list[str]:
    out = []
    for i, name in enumerate(names):
        x = 8 + i * 130
        out.append(svg.rect(x, y - 9, 10, 10, PALETTE[i % len(PALETTE)]))
        out.append(svg.text(x + 14, y, name[:18], size=11))
    return out


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
        body.append(svg.text(_LABEL_W - 6, y0 + group_h / 2 + 2, svg.short(str(cat)), anchor="end", size=11))
        for j, name in enumerate(names):
            value = float(series[name][i])
            w = _BAR_W * value / top
            y = y0 + j * _ROW_H
            text = f"{100 * value:.1f}%" if percent else f"{value:g}"
            body.append(svg.rect(_LABEL_W, y, w, _ROW_H - 3, PALETTE[j % len(PALETTE)]))
            body.append(svg.text(_LABEL_W + w + 4, y + _ROW_H - 5, text, size=11))
    height = _TOP + len(categories) * group_h + 8
    return svg.document(_LABEL_W + _BAR_W + 70, height, body, title=title, heading=True)


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
            body.append(svg.rect(left + i * bar_w, 42 + plot_h - h, bar_w - 1, h, PALETTE[j % len(PALETTE)], opacity=0.55))
    axis_y = 42 + plot_h + 14
    body.append(svg.text(left, axis_y, f"{lo:g}", size=11))
    body.append(svg.text(width - 10, axis_y, f"{hi:.0f}+", anchor="end", size=11))
    body.append(svg.text(width / 2, axis_y + 14, x_label, anchor="middle", size=11))
    return svg.document(width, height, body, title=title, heading=True)
