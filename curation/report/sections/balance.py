"""Balance and representativeness: facet distributions, bias metrics, lengths, diversity, drift.

The balance stage's own SVG charts are embedded inline (sanitised, see ``safety``);
the tables beside them hold the numbers. Facet values were masked by the stage and are
masked again here; topic examples are shown only through the PII stage's masking.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from curation.report.model import RunFiles, StageRecord, rounded, scalars, share
from curation.report.render import esc, kv, md_kv, md_table, note, num, prose, table
from curation.report.safety import mask_samples, scrub_value
from curation.report.sections._stage import common, common_html, common_md, extra_html, extra_md

ID = "balance"
TITLE = "Balance and representativeness"
STAGE = "balance"

TOP_VALUES = 10  # facet values listed per facet (the chart shows up to the stage's cap)
CLARIFY_ROWS = 12  # facet values per facet in the bias table, largest class imbalance first
_KNOWN = {
    "facets",
    "clarify",
    "lengths",
    "diversity",
    "representativeness",
    "embeddings",
    "rebalance",
    "undefined",
    "charts",
    "facet_columns",
}


def build(src: RunFiles) -> dict[str, Any]:
    rec = src.stage(STAGE)
    assert rec is not None
    m = rec.metrics
    return {
        **common(rec),
        "facets": [_facet(name, fs) for name, fs in (m.get("facets") or {}).items()],
        "clarify": _clarify(m.get("clarify") or {}, str((m.get("clarify") or {}).get("kind") or src.manifest.get("input_kind") or "")),
        "lengths": _lengths(m.get("lengths") or {}),
        "diversity": scalars(m.get("diversity") or {}, skip={"undefined"}),
        "representativeness": _reference(m.get("representativeness")),
        "embeddings": _embeddings(m.get("embeddings"), src.stage("pii")),
        "rebalance": scalars(m.get("rebalance") or {}),
        "not_computed": {k: scrub_value(str(v)) for k, v in scalars_text(m.get("undefined") or {}).items()},
        "charts": [{"name": name, "svg": svg} for name, svg in rec.charts.items()],
        "other_metrics": scalars(m, skip=_KNOWN),
    }


def scalars_text(reasons: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``undefined``-style reason maps flattened to ``a.b`` -> reason."""
    out: dict[str, str] = {}
    for k, v in reasons.items():
        out.update(scalars_text(v, f"{prefix}{k}.") if isinstance(v, Mapping) else {f"{prefix}{k}": str(v)})
    return out


def _facet(name: str, fs: Mapping[str, Any]) -> dict[str, Any]:
    counts = dict(sorted((fs.get("counts") or {}).items(), key=lambda item: (-item[1], item[0])))  # stats.json sorts keys by name
    total = sum(counts.values())
    top = [{"value": _visible(scrub_value(str(v))), "rows": int(n), "pct": share(n, total)} for v, n in list(counts.items())[:TOP_VALUES]]
    return {
        "facet": name,
        "distinct_values": fs.get("values", len(counts)),
        "imbalance_ratio": rounded(fs.get("imbalance_ratio")),
        "missing": fs.get("missing", 0),
        "alerts": fs.get("alerts", 0),
        "top": top,
        "more_values": max(0, len(counts) - TOP_VALUES),
    }


def _visible(value: str) -> str:
    """Quote a value with leading or trailing spaces, so label variants like ' billing' show."""
    return f'"{value}"' if value != value.strip() else value


def _clarify(c: Mapping[str, Any], kind: str) -> dict[str, Any]:
    if c.get("skipped") and kind not in ("", "classification"):  # no outcome column to set: nothing for the user to do
        why = f"Clarify's metrics compare label proportions across facets, and {kind} rows have no label"
        return {"skipped": why, "not_applicable": True}
    if c.get("skipped"):
        return {"skipped": scrub_value(str(c["skipped"]))}
    rows = []
    for facet, values in (c.get("facets") or {}).items():
        ranked = sorted(values.items(), key=lambda item: (-(abs(item[1].get("CI") or 0)), item[0]))[:CLARIFY_ROWS]
        for value, mv in ranked:
            dpl = [abs(x) for x in (mv.get("DPL") or {}).values() if x is not None]
            rows.append(
                {
                    "facet": facet,
                    "value": _visible(scrub_value(str(value))),
                    "rows": mv.get("n"),
                    "CI": rounded(mv.get("CI")),
                    "max_abs_DPL": rounded(max(dpl)) if dpl else None,
                }
                | {k: rounded(mv.get(k)) for k in ("KL", "JS", "TVD", "KS")}
            )
    return {"label": c.get("label"), "rows": rows}


def _lengths(lengths: Mapping[str, Any]) -> dict[str, Any]:
    cols = ("count", "mean", "min", "median", "p95", "max")
    table_rows = [
        {"measure": unit, **{k: rounded((lengths.get(unit) or {}).get(k)) for k in cols}}
        for unit in ("chars", "tokens")
        if lengths.get(unit)
    ]
    outliers = {f"{unit} outliers": (o or {}).get("count") for unit, o in (lengths.get("outliers") or {}).items()}
    return {"token_unit": lengths.get("token_unit"), "rows": table_rows, "outliers": outliers}


def _reference(rep: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not rep:
        return None
    facets = [
        {
            "facet": f,
            "PSI": rounded(d.get("PSI")),
            "JS": rounded(d.get("JS")),
            "only_in_reference": [_visible(scrub_value(str(v))) for v in d.get("only_in_reference", [])],
        }
        for f, d in (rep.get("facets") or {}).items()
        if "skipped" not in d
    ]
    lengths = [
        {"measure": k, "KS": rounded(v.get("KS")), "p_value": rounded(v.get("p_value"))} for k, v in (rep.get("lengths") or {}).items()
    ]
    ref = rep.get("reference") or {}
    return {
        "reference": {"file": ref.get("file"), "sha256": ref.get("sha256"), "rows": ref.get("rows")},
        "facets": facets,
        "lengths": lengths,
    }


def _embeddings(emb: Mapping[str, Any] | None, pii: StageRecord | None) -> dict[str, Any] | None:
    if not emb:
        return None
    topics = emb.get("topics", [])
    lacking = [t for t in topics if t.get("lacking")]
    masked = mask_samples([e for t in topics for e in t.get("examples", [])], pii.config if pii else None)
    per_topic: list[list[str] | None] = []
    for t in topics:  # each topic gets its own examples back, masked (None: hidden)
        n = len(t.get("examples", []))
        per_topic.append(None if masked is None else masked[:n])
        masked = None if masked is None else masked[n:]
    examples = (
        None
        if per_topic and per_topic[0] is None
        else [e for t, ex in zip(topics, per_topic, strict=True) if t.get("lacking") for e in ex or []]
    )
    shown = {
        "coverage": emb.get("coverage"),
        "density": emb.get("density"),
        "vendi_score": emb.get("vendi"),
        "reference_vendi_score": emb.get("reference_vendi"),
    }
    return {
        "metrics": {k: rounded(v) for k, v in shown.items() if v is not None},
        "topics": len(emb.get("topics", [])),
        "lacking_topics": [
            {
                "topic": t.get("topic"),
                "dataset_pct": share(t.get("dataset_share", 0), 1),
                "reference_pct": share(t.get("reference_share", 0), 1),
            }
            for t in lacking
        ],
        "examples": examples,
        "examples_hidden": examples is None and any(t.get("examples") for t in topics),
        "topic_table": [
            {
                "topic": t.get("topic"),
                "keywords": [scrub_value(str(w)) for w in t.get("keywords", [])],
                "dataset_pct": share(t.get("dataset_share", 0), 1),
                "reference_pct": share(t["reference_share"], 1) if "reference_share" in t else None,
                "lacking": bool(t.get("lacking")),
                "examples": ex or [],
            }
            for t, ex in zip(topics, per_topic, strict=True)
        ],
    }


# ---------------------------------------------------------------------------- rendering
def _facet_rows(data: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(f["facet"], f["distinct_values"], f["imbalance_ratio"], f["missing"], f["alerts"]) for f in data["facets"]]


def _top_values(f: dict[str, Any]) -> str:
    more = f" (+{num(f['more_values'])} more)" if f["more_values"] else ""
    return ", ".join(f"{v['value']} {num(v['pct'])}%" for v in f["top"]) + more


def html(data: dict[str, Any]) -> str:
    out = [common_html(data)]
    if data["facets"]:
        out.append("<h4>Distributions</h4>")
        out.append(
            table(
                ["Facet", "Distinct values", "Imbalance ratio (largest / smallest)", "Missing", "Alerts"],
                _facet_rows(data),
                numeric=(1, 2, 3, 4),
            )
        )
        out.append(table(["Facet", "Largest values (share of rows)"], [(f["facet"], _top_values(f)) for f in data["facets"]]))
    if data["charts"]:
        out.append(
            '<div class="charts">'
            + "".join(
                f'<figure class="chart">{c["svg"]}<figcaption>{esc(data["stage_dir"])}/charts/{esc(c["name"])}</figcaption></figure>'
                for c in data["charts"]
            )
            + "</div>"
        )
    out.append(_clarify_html(data["clarify"]))
    if data["lengths"]["rows"]:
        out.append(f"<h4>Lengths ({esc(data['lengths']['token_unit'])} tokens)</h4>")
        cols = ["measure", "count", "mean", "min", "median", "p95", "max"]
        out.append(
            table(cols, [[r[c] for c in cols] for r in data["lengths"]["rows"]], numeric=tuple(range(1, 7)))
            + kv(data["lengths"]["outliers"].items())
        )
    if data["diversity"]:
        out.append("<h4>Diversity</h4>" + kv(data["diversity"].items(), columns=3))
    out.append(_reference_html(data["representativeness"], data["embeddings"]))
    if data["rebalance"]:
        out.append(extra_html("Re-balancing", data["rebalance"]))
    if data["not_computed"]:
        out.append(
            "<h4>Not computed</h4><ul>" + "".join(f"<li>{esc(k)}: {prose(v)}</li>" for k, v in data["not_computed"].items()) + "</ul>"
        )
    out.append(extra_html("Other recorded metrics", data["other_metrics"]))
    return "".join(out)


def _clarify_html(c: dict[str, Any]) -> str:
    if c.get("not_applicable"):
        return "<h4>Pre-training bias metrics</h4>" + note(f"Not applicable: {c['skipped']}.")
    if c.get("skipped"):
        return "<h4>Pre-training bias metrics</h4>" + note(f"Not computed: {c['skipped']}.")
    if not c["rows"]:
        return ""
    cols = ["facet", "value", "rows", "CI", "max_abs_DPL", "KL", "JS", "TVD", "KS"]
    head = (
        f"<h4>Pre-training bias metrics over <code>{esc(c['label'])}</code></h4><p class=small>Each facet value against the rest of the data "
        "(SageMaker Clarify definitions): CI class imbalance (−1..1), DPL difference in label proportions, KL/JS divergence, TVD total variation, KS largest gap. "
        "Values near 0 mean the facet value looks like the rest.</p>"
    )
    return head + table(cols, [[r.get(k) for k in cols] for r in c["rows"]], numeric=tuple(range(2, 9)))


def _reference_html(rep: dict[str, Any] | None, emb: dict[str, Any] | None) -> str:
    out = ["<h4>Representativeness</h4>"]
    if rep is None:
        out.append(
            note(
                "No reference sample of real inputs was configured (`balance.reference`), so drift against the deployment population was not measured."
            )
        )
    else:
        r = rep["reference"]
        out.append(
            f"<p>Reference sample <code>{esc(r['file'])}</code>, {esc(num(r['rows']))} rows, SHA-256 <code>{esc(r['sha256'])}</code>.</p>"
        )
        out.append(
            table(
                ["Facet", "PSI", "JS", "Values only in the reference"],
                [(f["facet"], f["PSI"], f["JS"], f["only_in_reference"]) for f in rep["facets"]],
                numeric=(1, 2),
            )
        )
        out.append(table(["Length", "KS", "p-value"], [(x["measure"], x["KS"], x["p_value"]) for x in rep["lengths"]], numeric=(1, 2)))
    if emb:
        out.append(kv(emb["metrics"].items()))
        if emb.get("topic_table"):
            out.append(
                "<p class=small>Topics (k-means over the embeddings): the words that set each apart and masked texts nearest its centre (from the reference for a topic the dataset lacks).</p>"
            )
            out.append(
                table(["Topic", "Keywords", "Dataset share", "Reference share", "Examples (masked)"], _topic_rows(emb), numeric=(2, 3))
            )
        if emb["lacking_topics"]:
            rows = [(t["topic"], f"{num(t['dataset_pct'])}%", f"{num(t['reference_pct'])}%") for t in emb["lacking_topics"]]
            out.append(table(["Topic lacking in the dataset", "Dataset share", "Reference share"], rows, numeric=(1, 2)))
        if emb["examples"]:
            out.append(
                "<p class=small>Masked reference examples from the lacking topics:</p><ul class=samples>"
                + "".join(f"<li>{esc(e)}</li>" for e in emb["examples"])
                + "</ul>"
            )
        elif emb["examples_hidden"]:
            out.append(note("Example texts are hidden: the PII stage's masking rules are not available to mask them."))
    return "".join(out)


def _topic_rows(emb: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (
            f"{t['topic']}" + (" (lacking)" if t["lacking"] else ""),
            ", ".join(t["keywords"]) or "—",
            f"{num(t['dataset_pct'])}%",
            "—" if t["reference_pct"] is None else f"{num(t['reference_pct'])}%",
            " | ".join(t["examples"]) or ("hidden" if emb["examples_hidden"] else "—"),
        )
        for t in emb["topic_table"]
    ]


def markdown(data: dict[str, Any]) -> str:
    parts = [common_md(data)]
    if data["facets"]:
        parts.append(md_table(["Facet", "Distinct values", "Imbalance ratio", "Missing", "Alerts"], _facet_rows(data)))
        parts.append(md_table(["Facet", "Largest values (share of rows)"], [(f["facet"], _top_values(f)) for f in data["facets"]]))
    if data["clarify"].get("rows"):
        cols = ["facet", "value", "rows", "CI", "max_abs_DPL", "KL", "JS", "TVD", "KS"]
        parts.append(md_table(cols, [[r.get(k) for k in cols] for r in data["clarify"]["rows"]]))
    if data["diversity"]:
        parts.append(md_kv(data["diversity"].items()))
    if data["representativeness"] is None:
        parts.append("No reference sample configured: representativeness against real inputs not measured.")
    if data["embeddings"]:
        parts.append(md_kv(data["embeddings"]["metrics"].items()))
        if data["embeddings"].get("topic_table"):
            parts.append(
                md_table(["Topic", "Keywords", "Dataset share", "Reference share", "Examples (masked)"], _topic_rows(data["embeddings"]))
            )
    parts.append(extra_md("Other recorded metrics", data["other_metrics"]))
    parts.append("Charts: see report.html.")
    return "\n\n".join(p for p in parts if p)
