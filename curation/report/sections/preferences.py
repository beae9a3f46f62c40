"""Preference-pair diagnostics: pairs built, why candidates were rejected, margins, agreement, biases."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from curation.report.model import RunFiles, rounded, scalars, share
from curation.report.render import esc, kv, md_kv, md_table, pct, table
from curation.report.safety import scrub_value
from curation.report.sections._stage import common, common_html, common_md, extra_html, extra_md

ID = "preferences"
TITLE = "Preference-pair diagnostics"
STAGE = "preferences"

TOP_ANNOTATORS = 10
_SUMMARY = ("form", "strategy", "aggregate", "rows_used", "pairs", "prompts_with_candidates", "prompts_with_pairs")
_DISTRIBUTIONS = ("margin", "agreement", "prompt_agreement")
_DIST_COLS = ("count", "mean", "min", "p10", "p50", "p90", "max")
_KNOWN = {*_SUMMARY, *_DISTRIBUTIONS, "candidates", "length", "annotators"}


def build(src: RunFiles) -> dict[str, Any]:
    rec = src.stage(STAGE)
    assert rec is not None
    m = rec.metrics
    candidates = {str(k): int(v) for k, v in (m.get("candidates") or {}).items()}
    total = sum(candidates.values())
    return {
        **common(rec),
        "summary": {k: (scrub_value(m[k]) if isinstance(m[k], str) else m[k]) for k in _SUMMARY if k in m},
        "candidates": [
            {"status": s, "pairs": n, "pct": share(n, total)} for s, n in sorted(candidates.items(), key=lambda item: (-item[1], item[0]))
        ],
        "distributions": [
            {"measure": name, **{c: rounded((m.get(name) or {}).get(c)) for c in _DIST_COLS}} for name in _DISTRIBUTIONS if m.get(name)
        ],
        "distribution_extras": scalars(
            {name: {k: v for k, v in (m.get(name) or {}).items() if k not in _DIST_COLS} for name in _DISTRIBUTIONS}
        ),
        "length_bias": scalars(m.get("length") or {}),
        "annotators": _annotators(m.get("annotators")),
        "other_metrics": scalars(m, skip=_KNOWN),
    }


def _annotators(a: Any) -> dict[str, Any] | None:
    if not isinstance(a, Mapping):
        return None
    measure = str(a.get("measure", "skew"))
    top = list((a.get("most_skewed") or {}).items())[:TOP_ANNOTATORS]
    rows = [
        {"annotator": scrub_value(str(name)), "judgements": v.get("n"), measure: rounded(v.get(measure))}
        for name, v in top
        if isinstance(v, Mapping)
    ]
    return {"count": a.get("count"), "measure": measure, "most_skewed": rows}


def html(data: dict[str, Any]) -> str:
    out = [common_html(data), "<h4>Pairs</h4>", kv(data["summary"].items())]
    if data["candidates"]:
        out.append(
            table(
                ["Candidate pair status", "Pairs", "Share"],
                [(c["status"], c["pairs"], pct(c["pct"])) for c in data["candidates"]],
                numeric=(1, 2),
            )
        )
    if data["distributions"]:
        cols = ["measure", *_DIST_COLS]
        out.append(
            "<h4>Margins and agreement</h4>"
            + table(cols, [[d.get(c) for c in cols] for d in data["distributions"]], numeric=tuple(range(1, len(cols))))
        )
        out.append(kv(data["distribution_extras"].items()))
    if data["length_bias"]:
        out.append("<h4>Length and position bias</h4>" + kv(data["length_bias"].items()))
    a = data["annotators"]
    if a and a["most_skewed"]:
        cols = ["annotator", "judgements", a["measure"]]
        out.append(
            f"<h4>Annotators ({esc(a['count'])}), most skewed first</h4>"
            + table(cols, [[r.get(c) for c in cols] for r in a["most_skewed"]], numeric=(1, 2))
        )
    out.append(extra_html("Other recorded metrics", data["other_metrics"]))
    return "".join(out)


def markdown(data: dict[str, Any]) -> str:
    parts = [common_md(data), md_kv(data["summary"].items())]
    if data["candidates"]:
        parts.append(
            md_table(["Candidate pair status", "Pairs", "Share"], [(c["status"], c["pairs"], pct(c["pct"])) for c in data["candidates"]])
        )
    if data["distributions"]:
        cols = ["measure", *_DIST_COLS]
        parts.append(md_table(cols, [[d.get(c) for c in cols] for d in data["distributions"]]))
    if data["length_bias"]:
        parts.append(md_kv(data["length_bias"].items()))
    parts.append(extra_md("Other recorded metrics", data["other_metrics"]))
    return "\n\n".join(p for p in parts if p)
