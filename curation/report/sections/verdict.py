"""Verdict and summary numbers: the first thing a reviewer reads."""

from __future__ import annotations

from typing import Any

from curation.report.model import RunFiles, books_total, share
from curation.report.render import badge, esc, md_kv, num, tiles
from curation.report.sections import _checks
from curation.report.sections.pii import totals as pii_totals

ID = "verdict"
TITLE = "Verdict and summary"

_HEADLINES = {
    "pass": "The curated dataset passed every critical validation check.",
    "warn": "The curated dataset passed the critical checks; some warning-level checks failed.",
    "fail": "The curated dataset FAILED validation: do not use it for training until the failures are fixed.",
    "not_validated": "The curated dataset has not been validated: the verdict is open.",
}
_CHANGED = "The curated dataset is not the one that was validated: the recorded verdict does not apply to it."


def build(src: RunFiles) -> dict[str, Any]:
    gate = _checks.outcome(src)
    status = gate["status"] if gate["status"] in _HEADLINES else "fail"
    rows_in = src.ingest.books.get("rows_in", 0)
    curated = int(src.dataset_rows if src.dataset_rows is not None else src.stages[-1].books.get("kept", 0))
    same_kind = src.manifest.get("kind") == src.manifest.get("input_kind", src.manifest.get("kind"))
    reasons = [f"critical check failed: {c}" for c in gate.get("failed_critical", [])]
    reasons += [f"warning-level check failed: {c}" for c in gate.get("failed_warning", [])]
    if gate.get("reason"):
        reasons.insert(0, gate["reason"])
    pii = src.stage("pii")
    return {
        "status": status,
        "headline": _CHANGED if gate.get("stale") else _HEADLINES[status],
        "reasons": reasons,
        "incomplete_sections": [],  # filled in once every section is built
        "summary": {
            "rows_in": rows_in,
            "records_curated": curated,
            "record_kind": src.manifest.get("kind"),
            "curated_pct_of_input": share(curated, rows_in) if same_kind else None,
            "rows_dropped": books_total(src, "dropped"),
            "rows_quarantined": int(src.manifest.get("quarantine", {}).get("rows", books_total(src, "quarantined"))),
            "stages_run": [s.name for s in src.stages[1:]],
            "pii_stage_ran": pii is not None,
            "pii_entities_found": pii_totals(pii)[0] if pii else None,
            "pii_entities_residual": pii_totals(pii)[1] if pii else None,
            "checks_passed": None if gate.get("stale") else gate.get("passed"),  # counts of another version of the data
            "checks_failed": None if gate.get("stale") else gate.get("failed"),
        },
    }


def _data_tiles(s: dict[str, Any]) -> list[tuple[str, Any, str]]:
    items: list[tuple[str, Any, str]] = [("rows read", s["rows_in"], ""), (f"{s['record_kind']} records curated", s["records_curated"], "")]
    if s["curated_pct_of_input"] is not None:
        items.append(("of the rows read", s["curated_pct_of_input"], "%"))
    return [*items, ("rows dropped (with a reason)", s["rows_dropped"], ""), ("rows quarantined (malformed)", s["rows_quarantined"], "")]


def _governance_tiles(s: dict[str, Any]) -> list[tuple[str, Any, str]]:
    items: list[tuple[str, Any, str]] = []
    if s.get("pii_entities_found") is not None:
        items.append(("personal-data entities found and treated", s["pii_entities_found"], ""))
    if s.get("pii_entities_residual") is not None:
        items.append(("still found after treatment", s["pii_entities_residual"], ""))
    if s["checks_passed"] is not None:
        items += [("checks passed", s["checks_passed"], ""), ("checks failed", s["checks_failed"], "")]
    return items


def html(data: dict[str, Any]) -> str:
    s = data["summary"]
    reasons = "".join(f"<li>{esc(r)}</li>" for r in data["reasons"])
    incomplete = ""
    if data["incomplete_sections"]:
        incomplete = f"<p class=error>This report is incomplete: the section(s) {esc(', '.join(data['incomplete_sections']))} could not be built.</p>"
    stages = ", ".join(s["stages_run"]) or "none"
    if not s["pii_stage_ran"]:
        stages += ". No PII stage ran: personal data was neither detected nor treated"
    return (
        f'<div class="verdict {esc(data["status"])}">{badge(data["status"])}<p class=headline>{esc(data["headline"])}</p>'
        f"{'<ul>' + reasons + '</ul>' if reasons else ''}</div>{incomplete}"
        f"{tiles(_data_tiles(s))}{tiles(_governance_tiles(s)) if _governance_tiles(s) else ''}<p>Stages run after ingest: {esc(stages)}.</p>"
    )


def markdown(data: dict[str, Any]) -> str:
    s = data["summary"]
    lines = [f"**{data['status'].upper().replace('_', ' ')}** — {data['headline']}", ""]
    lines += [f"- {r}" for r in data["reasons"]]
    lines += ["", md_kv((label + (f" ({unit})" if unit else ""), num(v)) for label, v, unit in _data_tiles(s) + _governance_tiles(s))]
    return "\n".join(lines)
