"""The part every stage section shares: the stage's books, drop reasons, options, extra metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from curation.report.model import StageRecord, rounded, share
from curation.report.render import esc, kv, md_kv, md_table, num, table


def common(rec: StageRecord) -> dict[str, Any]:
    """Books, drop reasons (with their share of the stage's input) and resolved options."""
    rows_in = rec.books.get("rows_in", 0)
    reasons = [
        {"reason": r, "rows": n, "pct_of_stage_input": share(n, rows_in)}
        for r, n in sorted(rec.dropped_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return {
        "stage_dir": rec.dir,
        "reused": rec.skipped,
        "books": dict(rec.books),
        "dropped_by_reason": reasons,
        "options": {k: _option(v) for k, v in sorted(rec.config.items())},
    }


def _option(value: Any) -> Any:
    if isinstance(value, float):
        return rounded(value)
    if isinstance(value, Mapping):
        return {k: _option(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_option(v) for v in value]
    return value


def books_line(data: Mapping[str, Any]) -> str:
    b = data["books"]
    parts = [
        f"{num(b.get('rows_in', 0))} rows in",
        f"{num(b.get('kept', 0))} kept",
        f"{num(b.get('dropped', 0))} dropped",
        f"{num(b.get('quarantined', 0))} quarantined",
    ]
    reused = " (reused from an earlier identical run)" if data.get("reused") else ""
    return f"<p class=books>{esc(' · '.join(parts))}{esc(reused)} — <code>{esc(data['stage_dir'])}/</code></p>"


def common_html(data: Mapping[str, Any]) -> str:
    """The books line, the drop-reason table and the options of one stage."""
    out = [books_line(data)]
    if data["dropped_by_reason"]:
        rows = [(r["reason"], r["rows"], _pct(r["pct_of_stage_input"])) for r in data["dropped_by_reason"]]
        out.append(table(["Drop reason", "Rows", "Of stage input"], rows, numeric=(1, 2)))
    if data["options"]:
        out.append("<h4>Options</h4>" + kv(data["options"].items(), columns=3))
    return "".join(out)


def extra_html(title: str, metrics: Mapping[str, Any]) -> str:
    """A compact table of metrics the section has no dedicated view for."""
    if not metrics:
        return ""
    return f"<h4>{esc(title)}</h4>" + table(["Metric", "Value"], [(k, v) for k, v in metrics.items()], numeric=(1,))


def common_md(data: Mapping[str, Any]) -> str:
    b = data["books"]
    out = [
        f"{num(b.get('rows_in', 0))} rows in, {num(b.get('kept', 0))} kept, {num(b.get('dropped', 0))} dropped, {num(b.get('quarantined', 0))} quarantined (`{data['stage_dir']}/`)."
    ]
    if data["dropped_by_reason"]:
        out.append(
            md_table(
                ["Drop reason", "Rows", "Of stage input"],
                [(r["reason"], r["rows"], _pct(r["pct_of_stage_input"])) for r in data["dropped_by_reason"]],
            )
        )
    if data["options"]:
        out.append("Options:\n\n" + md_kv(data["options"].items()))
    return "\n\n".join(out)


def extra_md(title: str, metrics: Mapping[str, Any]) -> str:
    if not metrics:
        return ""
    return f"{title}:\n\n" + md_table(["Metric", "Value"], list(metrics.items()))


def _pct(value: Any) -> str:
    return "—" if value is None else f"{num(value)}%"
