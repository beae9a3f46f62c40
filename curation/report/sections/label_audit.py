"""Label audit: label variants merged, suspected mislabels, conflicts, annotator agreement.

For instruction data the same stage audits responses (empty, echoed, truncated,
refusals); the issue table covers both.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from curation.report.model import RunFiles, rounded, scalars, share
from curation.report.render import esc, kv, md_kv, md_table, note, pct, table
from curation.report.safety import scrub_id, scrub_value
from curation.report.sections._stage import common, common_html, common_md, extra_html, extra_md

ID = "label_audit"
TITLE = "Label audit"
STAGE = "label_audit"

MOST_SUSPECT = 8  # suspected mislabels listed by id
_KNOWN = {
    "applies",
    "reason",
    "rows_in",
    "issues",
    "actions",
    "dropped",
    "normalized_counts",
    "label_counts",
    "confident_learning",
    "conflicts",
    "agreement",
}
_CL = ("features", "classifier", "folds", "rows_audited", "oof_accuracy", "estimated_noise_rate", "issues")


def _visible(value: str) -> str:
    value = scrub_value(value)
    return f'"{value}"' if value != value.strip() else value


def _issues(m: Mapping[str, Any]) -> list[dict[str, Any]]:
    found, actions, dropped = m.get("issues") or {}, m.get("actions") or {}, m.get("dropped") or {}
    names = sorted(set(found) | set(dropped), key=lambda k: (-int(found.get(k, 0)), k))
    return [{"issue": k, "found": int(found.get(k, 0)), "action": actions.get(k, "flag"), "dropped": int(dropped.get(k, 0))} for k in names]


def _labels(m: Mapping[str, Any]) -> list[dict[str, Any]]:
    counts = {str(k): int(v) for k, v in (m.get("label_counts") or {}).items()}
    merged = m.get("normalized_counts") or {}
    total = sum(counts.values())
    rows = []
    for label, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        variants = merged.get(label) or {}
        rows.append(
            {
                "label": _visible(label),
                "rows": n,
                "pct": share(n, total),
                "variants_merged": [f"{_visible(str(v))} ×{c}" for v, c in sorted(variants.items())],
            }
        )
    return rows


def _most_suspect(findings: Path) -> list[dict[str, Any]]:
    """The suspected mislabels with the lowest label quality: row id and labels, never text."""
    if not findings.is_file():
        return []
    f = pl.read_parquet(findings)
    if not {"id", "issue", "given_label", "suggested_label", "score"} <= set(f.columns):
        return []
    worst = f.filter(pl.col("issue") == "label_mislabel").sort("score", "id").head(MOST_SUSPECT)
    return [
        {
            "id": scrub_id(str(r["id"])),
            "given_label": _visible(str(r["given_label"])),
            "suggested_label": _visible(str(r["suggested_label"])),
            "label_quality": rounded(r["score"]),
        }
        for r in worst.iter_rows(named=True)
    ]


def _cl(cl: Mapping[str, Any]) -> dict[str, Any]:
    return {"ran": bool(cl.get("ran", bool(cl))), "reason": scrub_value(str(cl.get("reason", ""))), **{k: cl[k] for k in _CL if k in cl}}


def build(src: RunFiles) -> dict[str, Any]:
    rec = src.stage(STAGE)
    assert rec is not None
    m = rec.metrics
    cl = m.get("confident_learning") or {}
    return {
        **common(rec),
        "applies": bool(m.get("applies", True)),
        "not_applicable_reason": scrub_value(str(m.get("reason", ""))),
        "normalized_rows": m.get("normalized_rows"),
        "relabeled": m.get("relabeled") if not isinstance(m.get("relabeled"), Mapping) else scalars(m["relabeled"]),
        "issues": _issues(m),
        "labels": _labels(m),
        "confident_learning": _cl(cl) if "confident_learning" in m else None,  # classification only
        "most_suspect": _most_suspect(src.run_dir / rec.dir / "findings.parquet"),
        "issues_by_class": {_visible(str(k)): v for k, v in (cl.get("issues_by_class") or {}).items()},
        "conflicts": scalars(m.get("conflicts") or {}),
        "agreement": scalars(m.get("agreement") or {}),
        "other_metrics": scalars(m, skip=_KNOWN | {"normalized_rows", "relabeled"}),
    }


def html(data: dict[str, Any]) -> str:
    if not data["applies"]:
        return common_html(data) + note(data["not_applicable_reason"])
    out = [common_html(data)]
    if data["issues"]:
        out.append(
            "<h4>Issues found</h4>"
            + table(
                ["Issue", "Rows", "Action", "Dropped"],
                [(i["issue"], i["found"], i["action"], i["dropped"]) for i in data["issues"]],
                numeric=(1, 3),
            )
        )
    else:
        out.append(note("No label issues were found."))
    if data["labels"]:
        rows = [(r["label"], r["rows"], pct(r["pct"]), ", ".join(r["variants_merged"]) or "—") for r in data["labels"]]
        out.append(f"<h4>Labels after hygiene ({esc(data['normalized_rows'] or 0)} rows respelled)</h4>")
        out.append(table(["Label", "Rows", "Share", "Spelling variants merged into it"], rows, numeric=(1, 2)))
    out.append(_cl_html(data))
    if data["conflicts"]:
        out.append("<h4>Conflicting labels for the same text</h4>" + kv(data["conflicts"].items(), columns=2))
    if data["agreement"]:
        out.append("<h4>Annotator agreement</h4>" + kv(data["agreement"].items(), columns=2))
    out.append(extra_html("Other recorded metrics", data["other_metrics"]))
    return "".join(out)


def _cl_html(data: dict[str, Any]) -> str:
    cl = data["confident_learning"]
    head = "<h4>Suspected mislabels (confident learning)</h4>"
    if cl is None:  # not classification data
        return ""
    if not cl["ran"]:
        return head + note(f"Not run: {cl['reason']}.")
    facts = [(k.replace("_", " "), v) for k, v in cl.items() if k not in ("ran", "reason")]
    by_class = (
        ("<p class=small>Suspected mislabels per class:</p>" + kv(data["issues_by_class"].items(), columns=3))
        if data["issues_by_class"]
        else ""
    )

    worst = data["most_suspect"]
    examples = ""
    if worst:
        rows = [(w["id"], w["given_label"], w["suggested_label"], w["label_quality"]) for w in worst]
        examples = (
            "<p class=small>The most suspect rows (lowest label quality first); look them up by id in the run's outputs.</p>"
            + table(["Row id", "Given label", "Suggested label", "Label quality"], rows, numeric=(3,), mono=(0,))
        )
    return head + kv(facts, columns=2) + by_class + examples


def markdown(data: dict[str, Any]) -> str:
    if not data["applies"]:
        return common_md(data) + "\n\n" + data["not_applicable_reason"]
    parts = [common_md(data)]
    if data["issues"]:
        parts.append(
            md_table(["Issue", "Rows", "Action", "Dropped"], [(i["issue"], i["found"], i["action"], i["dropped"]) for i in data["issues"]])
        )
    if data["labels"]:
        parts.append(
            md_table(
                ["Label", "Rows", "Share", "Variants merged"],
                [(r["label"], r["rows"], pct(r["pct"]), ", ".join(r["variants_merged"])) for r in data["labels"]],
            )
        )
    cl = data["confident_learning"]
    if cl is not None:
        parts.append(
            md_kv((k, v) for k, v in cl.items() if k not in ("ran", "reason"))
            if cl["ran"]
            else f"Confident learning not run: {cl['reason']}."
        )
    parts.append(extra_md("Other recorded metrics", data["other_metrics"]))
    return "\n\n".join(p for p in parts if p)
