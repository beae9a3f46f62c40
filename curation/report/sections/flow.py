"""The flow of rows through the stages: in, kept, dropped by reason, quarantined."""

from __future__ import annotations

from typing import Any

from curation.report.charts import flow_chart
from curation.report.model import RunFiles, share
from curation.report.render import esc, md_table, num, table

ID = "flow"
TITLE = "Flow of rows through the stages"


def build(src: RunFiles) -> dict[str, Any]:
    stages: list[dict[str, Any]] = []
    reasons: list[dict[str, Any]] = []
    for s in src.stages:
        b = s.books
        stages.append(
            {
                "index": s.index,
                "stage": s.name,
                **{k: int(b.get(k, 0)) for k in ("rows_in", "kept", "dropped", "quarantined")},
                "reused": s.skipped,
                "seconds": s.seconds,
                "cpu_seconds": s.cpu_seconds,
            }
        )
        reasons += [
            {"stage": s.name, "reason": r, "rows": n, "pct_of_input": share(n, src.ingest.books.get("rows_in", 0))}
            for r, n in sorted(s.dropped_by_reason.items())
        ]
    kind_change = next((s.name for s in src.stages if s.metrics.get("rows_used") is not None and s.name != "ingest"), None)
    return {
        "stages": stages,
        "reasons": reasons,
        "quarantine": {"path": src.manifest.get("quarantine", {}).get("path"), "rows": src.manifest.get("quarantine", {}).get("rows")},
        "kind_changed_at": kind_change,
        "books_balance": all(st["rows_in"] == st["kept"] + st["dropped"] + st["quarantined"] for st in stages),
    }


def _note(data: dict[str, Any]) -> str:
    text = "For every stage, rows in = kept + dropped + quarantined; nothing leaves a stage unaccounted for. Time is wall-clock (CPU, child processes included) when the stage was computed; a reused stage shows the time of the run that computed it."
    if data["kind_changed_at"]:
        text += f" The {data['kind_changed_at']} stage turns rows into new records, so its 'kept' counts the input rows used; the records it made are the next row's 'rows in' (the dataset if it is last)."
    return text


def _time(s: dict[str, Any]) -> str:
    """Wall (CPU) seconds as recorded when the stage was computed; a reused stage shows its original time."""
    if s.get("seconds") is None:
        return "—"
    return f"{num(s['seconds'])} s ({num(s['cpu_seconds'])} s CPU)"


def html(data: dict[str, Any]) -> str:
    rows = [
        (s["index"], s["stage"], s["rows_in"], s["kept"], s["dropped"], s["quarantined"], _time(s), "reused" if s["reused"] else "")
        for s in data["stages"]
    ]
    out = [
        flow_chart(data["stages"]),
        table(["#", "Stage", "Rows in", "Kept", "Dropped", "Quarantined", "Time", ""], rows, numeric=(0, 2, 3, 4, 5, 6)),
    ]
    out.append(f"<p class=small>{esc(_note(data))}</p>")
    if data["reasons"]:
        out.append("<h4>Why rows were dropped</h4>")
        out.append(
            table(
                ["Stage", "Reason", "Rows", "Of all rows read"],
                [(r["stage"], r["reason"], r["rows"], _pct(r["pct_of_input"])) for r in data["reasons"]],
                numeric=(2, 3),
            )
        )
    q = data["quarantine"]
    out.append(
        f"<p>Quarantined rows (malformed input, kept with their error for inspection): {esc(num(q['rows']))} in <code>{esc(q['path'])}</code> (sensitive: holds raw lines).</p>"
    )
    return "".join(out)


def markdown(data: dict[str, Any]) -> str:
    rows = [(s["index"], s["stage"], s["rows_in"], s["kept"], s["dropped"], s["quarantined"], _time(s)) for s in data["stages"]]
    parts = [md_table(["#", "Stage", "Rows in", "Kept", "Dropped", "Quarantined", "Time"], rows), _note(data)]
    if data["reasons"]:
        parts.append(
            md_table(
                ["Stage", "Reason", "Rows", "Of all rows read"],
                [(r["stage"], r["reason"], r["rows"], _pct(r["pct_of_input"])) for r in data["reasons"]],
            )
        )
    parts.append(f"Quarantined rows: {num(data['quarantine']['rows'])} in `{data['quarantine']['path']}`.")
    return "\n\n".join(parts)


def _pct(value: Any) -> str:
    return "—" if value is None else f"{num(value)}%"
