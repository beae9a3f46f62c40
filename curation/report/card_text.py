"""The prose of the dataset card, written from report.json sections (numbers copied, never computed).

Each function fills one field of the Hub's card template. Fields only a person can
answer are left out, so the template keeps its ``[More Information Needed]`` marker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from curation.report.render import num
from curation.report.sections.lineage import type_text

MORE_INFO = "[More Information Needed]"


def _sec(report: Mapping[str, Any], sid: str) -> dict[str, Any]:
    return next((s for s in report["sections"] if s["id"] == sid), {"ran": False})


def _summary(report: Mapping[str, Any]) -> str:
    v, lin = _sec(report, "verdict"), _sec(report, "lineage")
    s = v["summary"]
    return (
        f"A curated {s['record_kind']} dataset of {num(s['records_curated'])} records, prepared with tuneprep (run `{lin['run_id']}`) "
        f"from {num(s['rows_in'])} input rows. Validation verdict: **{v['status'].replace('_', ' ')}**. "
        f"Dataset fingerprint: `{lin['dataset']['fingerprint']}`."
    )


def _structure(report: Mapping[str, Any]) -> str:
    lin = _sec(report, "lineage")
    cols = "\n".join(f"- `{f['name']}`: {type_text(f)}" for f in lin["features"])
    return (
        f"One split, `train`, with {num(lin['dataset']['rows'])} records in `{lin['dataset']['path']}` (Parquet). "
        f"Record kind: `{lin['record_kind_out']}`. Columns:\n\n{cols}\n\n`id` is stable across reruns (given in the input, or a content hash)."
    )


def _processing(report: Mapping[str, Any]) -> str:
    flow, lin = _sec(report, "flow"), _sec(report, "lineage")
    lines = [
        f"- **{s['stage']}**: {num(s['rows_in'])} in, {num(s['kept'])} kept, {num(s['dropped'])} dropped, {num(s['quarantined'])} quarantined"
        for s in flow["stages"]
    ]
    reasons = [f"- {r['stage']} / `{r['reason']}`: {num(r['rows'])} rows" for r in flow["reasons"]]
    inputs = [f"- `{i['path']}` (SHA-256 `{i['sha256']}`)" for i in lin["inputs"]]
    versions = ", ".join(f"{k} {v}" for k, v in lin["versions"].items())
    parts = ["Inputs:", *inputs, "", "Processing, stage by stage (rows in = kept + dropped + quarantined):", *lines]
    if reasons:
        parts += ["", "Rows dropped, by reason:", *reasons]
    parts += [
        "",
        f"Resolved configuration fingerprint `{lin['config']['fingerprint']}`. Software: {versions}.",
        "",
        MORE_INFO + " (how the source data was selected and collected)",
    ]
    return "\n".join(parts)


def _pii(report: Mapping[str, Any]) -> str:
    pii = _sec(report, "pii")
    if not pii.get("ran"):
        return f"No PII stage ran on this dataset: it may contain personal data that was neither detected nor treated. {MORE_INFO}"
    if pii.get("error"):
        return f"The PII stage ran, but its statistics could not be read. {MORE_INFO}"
    rows = [
        f"- {e['entity']}: {num(e['found'])} found, treated with `{e['operator']}`, {num(e['residual'])} residual" for e in pii["entities"]
    ]
    head = f"Personal data was detected and treated by tuneprep's PII stage (Presidio): {num(pii['total_found'])} entities found, {num(pii['total_residual'])} found again after treatment."
    return "\n".join(
        [
            head,
            "",
            *rows,
            "",
            f"Evaluation of the PII configuration: {pii['evaluation']['status']}.",
            "",
            MORE_INFO + " (special categories of personal data, legal basis)",
        ]
    )


def _annotations(report: Mapping[str, Any]) -> str:
    parts = []
    for sid, what in (("label_audit", "label audit"), ("preferences", "preference-pair assembly")):
        sec = _sec(report, sid)
        if sec.get("ran") and not sec.get("error"):
            b = sec["books"]
            parts.append(
                f"The {what} stage reviewed {num(b['rows_in'])} rows and dropped {num(b['dropped'])}; see the compliance report for its findings."
            )
    return "\n\n".join([*parts, MORE_INFO + " (annotation guidelines and process)"])


def _bias(report: Mapping[str, Any]) -> str:
    bal, art = _sec(report, "balance"), _sec(report, "art10")
    lines = []
    if bal.get("ran") and not bal.get("error"):
        for f in bal["facets"]:
            top = ", ".join(f"{v['value']} {num(v['pct'])}%" for v in f["top"][:5])
            lines.append(
                f"- `{f['facet']}`: {num(f['distinct_values'])} values, imbalance ratio {num(f['imbalance_ratio'])}, {num(f['alerts'])} alerts ({top})"
            )
        if bal.get("representativeness") is None:
            lines.append(
                "- Not compared with a reference sample of real inputs: representativeness of the deployment population is unmeasured."
            )
    else:
        lines.append("- The balance stage did not run: distributions and bias metrics were not examined.")
    open_items = [f"- {i['ref']}: {i['for_a_person']}" for i in art.get("items", []) if i["status"] == "open"]
    if open_items:
        lines += ["", "Open data-governance items (EU AI Act Art. 10):", *open_items]
    return "\n".join([*lines, "", MORE_INFO])


def card_fields(report: Mapping[str, Any]) -> dict[str, str]:
    """Template variables of the Hub's dataset card template."""
    pii_ran = _sec(report, "pii").get("ran")
    return {
        "pretty_name": f"{report['run']['run_id']} ({report['run']['kind']})",
        "dataset_summary": _summary(report),
        "dataset_description": _summary(report)
        + " The compliance report (`report.html`, `report.json`) beside this card holds every number quoted here.",
        "dataset_structure": _structure(report),
        "data_collection_and_processing_section": _processing(report),
        "annotation_process_section": _annotations(report),
        "personal_and_sensitive_information": _pii(report),
        "bias_risks_limitations": _bias(report),
        "bias_recommendations": "Review the compliance report's balance and validation sections before training; "
        + ("treat residual personal data as a risk." if pii_ran else "run the PII stage before any use."),
        "more_information": "Compliance report: `report/report.html` in the run directory; machine-readable numbers in `report/report.json`.",
    }
