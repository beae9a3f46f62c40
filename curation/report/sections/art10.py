"""EU AI Act Article 10 checklist: each data-governance requirement next to the evidence in this run.

Regulation (EU) 2024/1689, Art. 10 ("Data and data governance") asks providers of
high-risk systems to govern training data. A run can evidence the mechanical parts
(origin, preparation, examination for bias, gaps, errors); intent, assumptions and the
intended setting are for a person. Each item says which is which:

- ``evidenced``: the run records evidence that covers the requirement;
- ``partly_evidenced``: the run records evidence, and a person must complete or judge it;
- ``open``: nothing in the run covers it; a person must supply it (or a stage is missing).

The words are docs/report.md's: they say what the run shows, never that a requirement is met.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, get_args

from curation.report.model import RunFiles, books_total
from curation.report.render import STATUS_LABELS, badge, esc, md_table, num, prose
from curation.report.sections import _checks

ID = "art10"
TITLE = "EU AI Act Art. 10 checklist"

Status = Literal["evidenced", "partly_evidenced", "open"]
Evidence = tuple[Status, list[dict[str, str]], str]  # status, evidence items, what a person must add


def _ev(text: str, anchor: str) -> dict[str, str]:
    return {"text": text, "link": f"#{anchor}"}


def _design(src: RunFiles) -> Evidence:
    stages = ", ".join(s.name for s in src.stages[1:]) or "none"
    cfg = src.manifest.get("config", {})
    return (
        "partly_evidenced",
        [_ev(f"resolved configuration {cfg.get('path')} (fingerprint recorded), stages: {stages}, seed fixed", "lineage")],
        "why these choices fit the intended purpose",
    )


def _origin(src: RunFiles) -> Evidence:
    n = len(src.manifest.get("inputs", []))
    return (
        "partly_evidenced",
        [_ev(f"{n} input file(s) with SHA-256 hashes, read at {src.manifest.get('created')}", "lineage")],
        "where the data comes from, how it was collected and, for personal data, the original purpose of collection",
    )


def _preparation(src: RunFiles) -> Evidence:
    ops = [s.name for s in src.stages[1:]]
    if not ops:
        return (
            "partly_evidenced",
            [_ev("ingest only: malformed rows quarantined, nothing else prepared", "flow")],
            "which preparation the data needs",
        )
    dropped = books_total(src, "dropped")
    return "evidenced", [_ev(f"operations run: {', '.join(ops)}; {num(dropped)} rows dropped, each with a reason", "flow")], ""


def _assumptions(src: RunFiles) -> Evidence:
    return (
        "open",
        [_ev(f"record kind '{src.manifest.get('kind')}' and its columns", "lineage")],
        "what the data is supposed to measure and represent",
    )


def _quantity(src: RunFiles) -> Evidence:
    items = [_ev(f"{num(src.dataset_rows)} curated records", "verdict")]
    if src.stage("balance"):
        items.append(_ev("per-value counts and imbalance ratios", "balance"))
    if src.checks is not None:
        items.append(_ev("validation checks on size and class counts", "validation"))
    return "partly_evidenced", items, "whether this quantity and kind of data suit the intended purpose"


def _bias_exam(src: RunFiles) -> Evidence:
    items = [_ev(f"{name} stage statistics", name) for name in ("balance", "label_audit", "preferences") if src.stage(name)]
    if not src.stage("balance"):
        return "open", items, "add the `balance` stage to examine distributions and bias metrics"
    return "evidenced", items, ""


def _bias_measures(src: RunFiles) -> Evidence:
    bal = src.stage("balance")
    if bal is None:
        return "open", [], "add the `balance` stage (with a `target` to weight or re-sample)"
    if bal.metrics.get("rebalance"):
        return (
            "partly_evidenced",
            [_ev("sample weights / re-sampling towards the configured target", "balance")],
            "whether the mitigation is adequate",
        )
    return (
        "partly_evidenced",
        [_ev("biases detected and reported; no mitigation configured", "balance")],
        "decide on mitigation (e.g. `balance.target`) or justify none",
    )


def _gaps(src: RunFiles) -> Evidence:
    items = [_ev(f"{num(src.manifest.get('quarantine', {}).get('rows', 0))} malformed rows quarantined", "flow")]
    if src.stage("balance"):
        items.append(_ev("under-represented values and topics flagged", "balance"))
    failed = _checks.outcome(src).get("failed") or 0
    if src.checks is not None:
        items.append(_ev(f"{num(failed)} failed validation checks", "validation"))
    return "partly_evidenced", items, "how each gap or shortcoming is addressed"


def _quality(src: RunFiles) -> Evidence:
    items = [_ev(f"{name} stage", name) for name in ("dedup", "label_audit") if src.stage(name)]
    gate = _checks.outcome(src)
    items.append(_ev(f"validation verdict: {gate['status']}", "validation"))
    status: Status = (
        "partly_evidenced" if src.stage("dedup") and src.stage("label_audit") and gate["status"] in ("pass", "warn") else "open"
    )
    return status, items, "whether the data is relevant and representative for the intended purpose"


def _setting(src: RunFiles) -> Evidence:
    bal = src.stage("balance")
    if bal is None:
        return "open", [], "describe the setting (geography, context, behaviour, function) and add facets for it"
    ref = "with" if bal.metrics.get("representativeness") else "without"
    facets = ", ".join(bal.metrics.get("facet_columns") or []) or "none"
    return (
        "partly_evidenced",
        [_ev(f"facets examined: {facets}; {ref} a reference sample of real inputs", "balance")],
        "the intended geographical, contextual, behavioural and functional setting",
    )


def _special(src: RunFiles) -> Evidence:
    if src.stage("pii") is None:
        return "open", [], "no PII stage ran: personal data was neither detected nor treated"
    return (
        "partly_evidenced",
        [_ev("personal data detected and treated per entity type; residual counted", "pii")],
        "whether special categories of personal data were processed, and the safeguards applied",
    )


ITEMS: list[tuple[str, str, Callable[[RunFiles], Evidence]]] = [
    ("Art. 10(2)(a)", "Relevant design choices", _design),
    ("Art. 10(2)(b)", "Data collection processes and origin of data; for personal data, the original purpose of collection", _origin),
    ("Art. 10(2)(c)", "Data-preparation operations: annotation, labelling, cleaning, updating, enrichment, aggregation", _preparation),
    ("Art. 10(2)(d)", "Assumptions about what the data measures and represents", _assumptions),
    ("Art. 10(2)(e)", "Availability, quantity and suitability of the data sets", _quantity),
    ("Art. 10(2)(f)", "Examination in view of possible biases", _bias_exam),
    ("Art. 10(2)(g)", "Measures to detect, prevent and mitigate the biases identified", _bias_measures),
    ("Art. 10(2)(h)", "Data gaps or shortcomings, and how they are addressed", _gaps),
    ("Art. 10(3)", "Relevant, sufficiently representative, to the best extent possible free of errors and complete", _quality),
    ("Art. 10(4)", "Characteristics of the specific geographical, contextual, behavioural or functional setting", _setting),
    ("Art. 10(5)", "Special categories of personal data: only where strictly necessary for bias detection, with safeguards", _special),
]


def build(src: RunFiles) -> dict[str, Any]:
    items = []
    for ref, requirement, fn in ITEMS:
        status, evidence, person = fn(src)
        items.append({"ref": ref, "requirement": requirement, "status": status, "evidence": evidence, "for_a_person": person})
    counts = {s: sum(i["status"] == s for i in items) for s in get_args(Status)}
    return {
        "regulation": "Regulation (EU) 2024/1689 (AI Act), Article 10: data and data governance",
        "disclaimer": "This checklist maps evidence recorded in the run to Art. 10. It supports, and does not replace, the provider's own assessment of the intended purpose.",
        "items": items,
        "counts": counts,
    }


def html(data: dict[str, Any]) -> str:
    rows = []
    for i in data["items"]:
        evidence = "<br>".join(f'<a href="{esc(e["link"])}">{esc(e["text"])}</a>' for e in i["evidence"]) or "—"
        person = prose(i["for_a_person"]) or "—"
        rows.append(
            f"<tr><td class=ref>{esc(i['ref'])}</td><td>{esc(i['requirement'])}</td><td>{badge(i['status'])}</td><td>{evidence}</td><td>{person}</td></tr>"
        )
    c = data["counts"]
    summary = f"<p>{esc(c['evidenced'])} evidenced by the run, {esc(c['partly_evidenced'])} partly evidenced (a person completes them), {esc(c['open'])} open.</p>"
    head = "<thead><tr><th>Ref.</th><th>Requirement</th><th>Status</th><th>Evidence in this run</th><th>Still needed</th></tr></thead>"
    return f"<p class=small>{esc(data['regulation'])}. {esc(data['disclaimer'])}</p>{summary}<table class=art10>{head}<tbody>{''.join(rows)}</tbody></table>"


def markdown(data: dict[str, Any]) -> str:
    rows = [
        (
            i["ref"],
            i["requirement"],
            STATUS_LABELS[i["status"]],
            "; ".join(e["text"] for e in i["evidence"]) or "—",
            i["for_a_person"] or "—",
        )
        for i in data["items"]
    ]
    return f"_{data['disclaimer']}_\n\n" + md_table(["Ref.", "Requirement", "Status", "Evidence", "Still needed"], rows)
