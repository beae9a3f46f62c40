"""Duplicates: exact and near duplicates removed, cluster sizes, how the dedup stage decided, and the boilerplate it found."""

from __future__ import annotations

from typing import Any

from curation.report.model import RunFiles, StageRecord, scalars
from curation.report.render import kv, md_kv, md_table, note, table
from curation.report.safety import mask_samples
from curation.report.sections._stage import common, common_html, common_md, extra_html, extra_md

ID = "dedup"
TITLE = "Duplicates"
STAGE = "dedup"

_SUMMARY = ("removed", "exact_duplicates", "near_duplicates", "clusters", "largest_cluster", "keep", "fields")
_KNOWN = {*_SUMMARY, "cluster_sizes", "minhash", "against", "boilerplate"}


_BUCKETS = ((2, 2), (3, 3), (4, 4), (5, 9), (10, 19), (20, 49), (50, None))


def _buckets(sizes: dict[str, int]) -> list[dict[str, Any]]:
    """Clusters per size range (2, 3, 4, 5-9, 10-19, 20-49, 50+), empty ranges left out."""
    out = []
    for low, high in _BUCKETS:
        n = sum(c for k, c in sizes.items() if k.isdigit() and int(k) >= low and (high is None or int(k) <= high))
        if n:
            out.append({"size": str(low) if low == high else f"{low}–{high}" if high else f"{low}+", "clusters": n})
    return out


def build(src: RunFiles) -> dict[str, Any]:
    rec = src.stage(STAGE)
    assert rec is not None  # build_section checks STAGE first
    m = rec.metrics
    sizes = {str(k): int(v) for k, v in (m.get("cluster_sizes") or {}).items()}
    return {
        **common(rec),
        "summary": {k: m[k] for k in _SUMMARY if k in m},
        "cluster_sizes": _buckets(sizes),
        "near_duplicate_method": scalars(m.get("minhash") or {}),
        "against": scalars(m.get("against") or {}),
        "boilerplate": _boilerplate(m.get("boilerplate") or {}, src.stage("pii")),
        "other_metrics": scalars(m, skip=_KNOWN),
    }


def _boilerplate(b: dict[str, Any], pii: StageRecord | None) -> dict[str, Any]:
    """The boilerplate rule's settings and counts, and the most common blocks with masked examples.

    Examples were masked by the stage (regex); here they also go through the PII stage's
    masking, as every sample text in the report does, or are hidden when it is unavailable.
    """
    if not b:
        return {}
    blocks = [x for x in b.get("blocks") or [] if isinstance(x, dict)]
    examples = mask_samples([str(x.get("example") or "") for x in blocks], pii.config if pii else None) if blocks else []
    return {
        "rule": scalars(b, skip={"blocks"}),
        "blocks": [
            {
                "rows": x.get("rows"),
                "pct_of_rows_examined": x.get("pct_of_rows_examined"),
                "words": x.get("words"),
                "example": None if examples is None else examples[i] or None,
            }
            for i, x in enumerate(blocks)
        ],
        "examples_hidden": examples is None and bool(blocks),
    }


def _block_rows(data: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(b["rows"], b["pct_of_rows_examined"], b["words"], b["example"] or "(hidden)") for b in data["boilerplate"]["blocks"]]


_BLOCK_HEADERS = ["Rows", "% of rows examined", "Words", "Example (masked)"]
_BLOCKS_NOTE = (
    "Blocks of text (footers, disclaimers, banners) shared by many different rows. Near-duplicate detection "
    "weighs them down, so two different messages under the same footer are not duplicates."
)


def html(data: dict[str, Any]) -> str:
    out = [common_html(data), "<h4>What was removed</h4>", kv(data["summary"].items(), columns=2)]
    if data["cluster_sizes"]:
        sizes = data["cluster_sizes"]
        out.append(
            table(
                ["Rows per cluster (keeper included)", *[c["size"] for c in sizes]],
                [("Clusters", *[c["clusters"] for c in sizes])],
                numeric=tuple(range(1, len(sizes) + 1)),
            )
        )
    if data["near_duplicate_method"]:
        out.append("<h4>Near-duplicate detection (MinHash LSH)</h4>" + kv(data["near_duplicate_method"].items(), columns=3))
    if data["against"]:
        out.append("<h4>Compared with an earlier run</h4>" + kv(data["against"].items()))
    if data.get("boilerplate"):
        out.append("<h4>Boilerplate</h4>" + note(_BLOCKS_NOTE) + kv(data["boilerplate"]["rule"].items(), columns=3))
        if data["boilerplate"]["blocks"]:
            out.append(table(_BLOCK_HEADERS, _block_rows(data), numeric=(0, 1, 2)))
    out.append(extra_html("Other recorded metrics", data["other_metrics"]))
    return "".join(out)


def markdown(data: dict[str, Any]) -> str:
    parts = [common_md(data), md_kv(data["summary"].items())]
    if data["cluster_sizes"]:
        parts.append(md_table(["Cluster size", "Clusters"], [(c["size"], c["clusters"]) for c in data["cluster_sizes"]]))
    if data["near_duplicate_method"]:
        parts.append(md_kv(data["near_duplicate_method"].items()))
    if data.get("boilerplate"):
        parts.append(_BLOCKS_NOTE)
        parts.append(md_kv(data["boilerplate"]["rule"].items()))
        if data["boilerplate"]["blocks"]:
            parts.append(md_table(_BLOCK_HEADERS, _block_rows(data)))
    parts.append(extra_md("Other recorded metrics", data["other_metrics"]))
    return "\n\n".join(p for p in parts if p)
