"""What each stage rewrote in the rows it kept: shares, characters, the values it replaced (masked).

The figures come from ``stats.json`` ``fidelity`` of every stage (``curation.core.fidelity``),
where replaced values are already masked by shape. The section shows them only if they
still look masked (``is_shape``), so a stats file from elsewhere cannot put a raw value
on the page. The thresholds are the gate's (``checks.fidelity``).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from curation.core.config import FidelityChecks
from curation.report.model import RunFiles, share
from curation.report.render import esc, md_code, md_table, note, num, pct, table

ID = "fidelity"
TITLE = "Text rewritten by the stages"
VALUES = 5  # most replaced values shown per stage
EXAMPLES = 3

_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*>|<U\+[0-9A-F]{4,6}>")
_LETTERS = re.compile(r"[^\W\d_]+")
_NOTE = (
    "A stage that rewrites text can damage it: collapsed code indentation, everyday words or type names taken for names. "
    "Shares are of the rows the stage kept. Values are shown by shape only: each word keeps its first letter, other "
    "letters become x or X, digits #; placeholders such as `<PERSON>` are kept. In examples `⟦ ⟧` marks the change, "
    "`⏎` a newline, `⇥` a tab and `·` a space at an edge or in a run."
)


def is_shape(value: Any) -> bool:
    """True for a value masked by ``curation.core.fidelity.mask_shape``: no digit, every word ``first letter + x/X``."""
    if not isinstance(value, str):
        return False
    rest = _PLACEHOLDER.sub(" ", value)
    return not any(c.isdigit() for c in rest) and all(set(w[1:]) <= {"x", "X"} for w in _LETTERS.findall(rest))


def _threshold(src: RunFiles) -> FidelityChecks:
    checks = src.config.get("checks") or {}
    try:
        return FidelityChecks.model_validate(checks.get("fidelity") or {})
    except ValidationError:
        return FidelityChecks.model_validate({})


def build(src: RunFiles) -> dict[str, Any]:
    limits = _threshold(src)
    stages, values, examples, unmeasured = [], [], [], []
    for s in src.stages[1:]:
        f = s.fidelity
        if not f:
            unmeasured.append(s.name)
            continue
        limit = limits.share_for(s.name)
        stages.append(
            {
                "index": s.index,
                "stage": s.name,
                "rows_compared": int(f["rows_compared"]),
                "rows_rewritten": int(f["rows_rewritten"]),
                "share_pct": share(f["rows_rewritten"], f["rows_compared"]),
                "chars_changed": int(f["chars_changed"]),
                "rows_diffed": int(f["rows_diffed"]),
                "max_share_pct": round(100.0 * limit, 1),
                "above_threshold": float(f["share"]) > limit,
            }
        )
        top = [v for v in f.get("top_replaced", []) if is_shape(v.get("before")) and is_shape(v.get("after"))]
        values += [{"stage": s.name, "before": v["before"], "after": v["after"], "rows": int(v["rows"])} for v in top[:VALUES]]
        shown = [e for e in f.get("examples", []) if is_shape(e.get("before")) and is_shape(e.get("after"))]
        examples += [{"stage": s.name, "field": e["field"], "before": e["before"], "after": e["after"]} for e in shown[:EXAMPLES]]
    return {"stages": stages, "values": values, "examples": examples, "not_measured": unmeasured}


def _stage_rows(data: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (
            s["index"],
            s["stage"],
            s["rows_compared"],
            s["rows_rewritten"],
            pct(s["share_pct"]),
            pct(s["max_share_pct"]),
            s["chars_changed"],
            "above the gate's share" if s["above_threshold"] else "",
        )
        for s in data["stages"]
    ]


_HEADERS = ["#", "Stage", "Rows compared", "Rows rewritten", "Share", "Gate's share", "Characters changed", ""]


def _sampled(data: dict[str, Any]) -> list[str]:
    return [
        f"{s['stage']}: replaced values counted on a sample of {num(s['rows_diffed'])} of the {num(s['rows_rewritten'])} rewritten rows."
        for s in data["stages"]
        if s["rows_diffed"] < s["rows_rewritten"]
    ]


def html(data: dict[str, Any]) -> str:
    out = [note(_NOTE), table(_HEADERS, _stage_rows(data), numeric=(0, 2, 3, 4, 5, 6))]
    out += [f"<p class=small>{esc(line)}</p>" for line in _sampled(data)]
    if data["values"]:
        out.append("<h4>Most replaced values (masked)</h4>")
        rows = [(v["stage"], v["before"], v["after"], v["rows"]) for v in data["values"]]
        out.append(table(["Stage", "Replaced", "By", "Rows"], rows, numeric=(3,), mono=(1, 2)))
    if data["examples"]:
        out.append("<h4>Examples (masked)</h4>")
        rows = [(e["stage"], e["field"], e["before"], e["after"]) for e in data["examples"]]
        out.append(table(["Stage", "Column", "Before", "After"], rows, mono=(2, 3)))
    if data["not_measured"]:
        out.append(
            f"<p class=small>Not measured (rows turned into new records, or reused from an older run): {esc(', '.join(data['not_measured']))}.</p>"
        )
    return "".join(out)


def markdown(data: dict[str, Any]) -> str:
    parts = [_NOTE, md_table(_HEADERS, _stage_rows(data)), *_sampled(data)]
    if data["values"]:
        rows = [(v["stage"], md_code([v["before"]]), md_code([v["after"]]), v["rows"]) for v in data["values"]]
        parts.append("Most replaced values (masked):\n\n" + md_table(["Stage", "Replaced", "By", "Rows"], rows))
    if data["examples"]:
        rows = [(e["stage"], e["field"], md_code([e["before"]]), md_code([e["after"]])) for e in data["examples"]]
        parts.append("Examples (masked):\n\n" + md_table(["Stage", "Column", "Before", "After"], rows))
    if data["not_measured"]:
        parts.append(f"Not measured (rows turned into new records, or reused from an older run): {', '.join(data['not_measured'])}.")
    return "\n\n".join(parts)
