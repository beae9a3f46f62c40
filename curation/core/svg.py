"""SVG primitives shared by the balance stage's chart files and the report's inline charts.

Plain SVG with explicit sizes, fonts on the root, no scripts, no external resources, and
deterministic output (same numbers, same bytes); every piece of text is XML-escaped.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

FONT = 'font-family="Helvetica, Arial, sans-serif" font-size="12"'


def text(x: float, y: float, s: str, *, anchor: str = "start", weight: str = "normal", fill: str = "#222", size: int | None = None) -> str:
    """A ``<text>`` element; ``s`` is escaped."""
    font_size = f' font-size="{size}"' if size else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-weight="{weight}" fill="{fill}"{font_size}>{escape(s)}</text>'


def rect(x: float, y: float, width: float, height: float, fill: str, *, opacity: float | None = None) -> str:
    """A filled ``<rect>``."""
    alpha = f' fill-opacity="{opacity}"' if opacity is not None else ""
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" fill="{fill}"{alpha}/>'


def short(label: str, n: int = 24) -> str:
    """``label`` cut to ``n`` characters with an ellipsis."""
    return label if len(label) <= n else label[: n - 1] + "…"


def document(width: int, height: int, body: list[str], *, title: str, heading: bool = False, css_class: str | None = None) -> str:
    """The ``<svg>`` root around ``body``: a ``<title>`` for screen readers, and the title drawn on top when ``heading``."""
    cls = f' class="{css_class}"' if css_class else ""
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg"{cls} width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" {FONT}>'
    )
    top = [text(8, 16, title, weight="bold")] if heading else []
    return "\n".join([head, f"<title>{escape(title)}</title>", *top, *body, "</svg>"]) + "\n"
