"""Lineage: what went in (files and their hashes), with which config and software, and what came out."""

from __future__ import annotations

from typing import Any

import polars as pl
import yaml

from curation.report.model import RunFiles
from curation.report.render import esc, kv, md_kv, md_table, num, table
from curation.schema import FORMS, detect_form

ID = "lineage"
TITLE = "Lineage"


def build(src: RunFiles) -> dict[str, Any]:
    m = src.manifest
    dataset = _dataset(src)
    files = {f.get("sha256"): f.get("bytes") for f in src.ingest.metrics.get("files", []) if isinstance(f, dict)}
    return {
        "run_id": m.get("run_id"),
        "created": m.get("created"),
        "record_kind_in": m.get("input_kind", m.get("kind")),
        "record_kind_out": m.get("kind"),
        "input_form": src.ingest.metrics.get("form"),
        "inputs": [{"path": i.get("path"), "sha256": i.get("sha256"), "bytes": files.get(i.get("sha256"))} for i in m.get("inputs", [])],
        "config": {"path": m.get("config", {}).get("path"), "fingerprint": m.get("config", {}).get("fingerprint"), "resolved": src.config},
        "stage_chain": [
            {
                "index": s.index,
                "stage": s.name,
                "input_fingerprint": s.input_fingerprint,
                "output_fingerprint": s.output_fingerprint,
                "reused": s.skipped,
            }
            for s in src.stages
        ],
        "dataset": dataset,
        "features": features(m.get("kind"), dataset["columns"] or []),
        "versions": dict(sorted(m.get("versions", {}).items())),
        "cleaned": m.get("cleaned", {}).get("removed", []),
    }


def _dataset(src: RunFiles) -> dict[str, Any]:
    """The curated file as it is now, and the fingerprint the run recorded for it when that differs."""
    recorded = src.manifest.get("dataset", {})
    d = src.dataset
    out = {
        "path": d.path if d else recorded.get("path"),
        "fingerprint": src.dataset_fingerprint,
        "rows": src.dataset_rows,
        "columns": list(d.schema) if d else recorded.get("columns"),
        "missing": d is None,
    }
    if d and recorded.get("fingerprint") not in (None, d.fingerprint):
        out["fingerprint_at_run"] = recorded["fingerprint"]
    return out


def _dtype(dtype: Any) -> dict[str, Any]:
    """A column type in the Hugging Face ``dataset_info.features`` vocabulary."""
    if isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct):
        return {"list": [{"name": f.name, **_dtype(f.dtype)} for f in dtype.inner.fields]}
    names = {pl.String: "string", pl.Float64: "float64", pl.Int64: "int64", pl.Boolean: "bool"}
    return {"dtype": next((v for k, v in names.items() if dtype == k), "string")}


def features(kind: Any, columns: list[str]) -> list[dict[str, Any]]:
    """Each dataset column with its type, from the record kind's contract (``curation.schema``)."""
    types: dict[str, pl.DataType] = {"id": pl.String()}
    if kind in FORMS:
        types.update(detect_form(kind, columns).columns)
    return [{"name": c, **_dtype(types.get(c))} for c in columns]


def _config_text(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data["config"]["resolved"], sort_keys=False, default_flow_style=False, width=100).strip()


def _missing(d: dict[str, Any]) -> str:
    return " (the file is missing: rows and fingerprint as the run recorded them)" if d["missing"] else ""


def _at_run_html(d: dict[str, Any]) -> str:
    if "fingerprint_at_run" not in d:
        return ""
    return f"<dt>Dataset at the run</dt><dd><code>{esc(d['fingerprint_at_run'])}</code> (the file changed since)</dd>"


def html(data: dict[str, Any]) -> str:
    d = data["dataset"]
    facts = [
        ("Run id", data["run_id"]),
        ("Created", data["created"]),
        (
            "Record kind",
            f"{data['record_kind_in']} → {data['record_kind_out']}"
            if data["record_kind_in"] != data["record_kind_out"]
            else data["record_kind_in"],
        ),
        ("Input form", data["input_form"]),
        ("Curated dataset", f"{d['path']}: {num(d['rows'])} records" + _missing(d)),
        ("Columns", ", ".join(f"{f['name']} ({f.get('dtype', 'list')})" for f in data["features"])),
    ]
    inputs = table(
        ["Input file", "SHA-256", "Bytes"], [(i["path"], i["sha256"], i["bytes"]) for i in data["inputs"]], numeric=(2,), mono=(1,)
    )
    chain = table(
        ["#", "Stage", "Input fingerprint", "Output fingerprint", "Reused"],
        [(s["index"], s["stage"], s["input_fingerprint"], s["output_fingerprint"], s["reused"]) for s in data["stage_chain"]],
        numeric=(0,),
        mono=(2, 3),
    )
    cleaned = (
        f"<p>Sensitive intermediates removed by <code>tuneprep clean</code>: {esc(', '.join(data['cleaned']))}.</p>"
        if data["cleaned"]
        else ""
    )
    return (
        kv(facts)
        + "<h4>Fingerprints</h4>"
        + f'<dl class="kv fp"><dt>Dataset</dt><dd><code>{esc(d["fingerprint"])}</code></dd>'
        + _at_run_html(d)
        + f"<dt>Config</dt><dd><code>{esc(data['config']['fingerprint'])}</code></dd></dl>"
        + "<h4>Inputs</h4>"
        + inputs
        + "<h4>Stage chain</h4><p class=small>Each stage's input fingerprint covers the previous output, its options and the seed; equal fingerprints mean identical data.</p>"
        + chain
        + cleaned
        + f"<details class=config><summary>Resolved configuration (<code>{esc(data['config']['path'])}</code>): every option with its default filled in</summary>"
        f"<pre class=config>{esc(_config_text(data))}</pre></details>" + "<h4>Software</h4>" + kv(data["versions"].items(), columns=3)
    )


def markdown(data: dict[str, Any]) -> str:
    d = data["dataset"]
    parts = [
        md_kv(
            [
                ("Run id", data["run_id"]),
                ("Created", data["created"]),
                ("Record kind", data["record_kind_out"]),
                ("Curated dataset", f"{d['path']}: {num(d['rows'])} records" + _missing(d)),
                ("Dataset fingerprint", f"`{d['fingerprint']}`"),
                *(
                    [("Dataset fingerprint at the run", f"`{d['fingerprint_at_run']}` (the file changed since)")]
                    if "fingerprint_at_run" in d
                    else []
                ),
                ("Config fingerprint", f"`{data['config']['fingerprint']}`"),
            ]
        ),
        md_table(["Input file", "SHA-256", "Bytes"], [(i["path"], i["sha256"], i["bytes"]) for i in data["inputs"]]),
        md_table(
            ["#", "Stage", "Output fingerprint", "Reused"],
            [(s["index"], s["stage"], s["output_fingerprint"], s["reused"]) for s in data["stage_chain"]],
        ),
        "```yaml\n" + _config_text(data) + "\n```",
        md_kv(data["versions"].items()),
    ]
    return "\n\n".join(parts)
