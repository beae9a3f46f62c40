"""Lineage: what went in (files and their hashes), with which config and software, and what came out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl
import yaml

from curation.core.masking import mask_path
from curation.core.schema import FORMS, detect_form
from curation.report.model import RunFiles
from curation.report.render import esc, kv, md_kv, md_table, num, table

ID = "lineage"
TITLE = "Lineage"


def _show_paths(src: RunFiles) -> bool:
    """``report.show_paths`` of the run; file names of runs made before it existed are masked here too."""
    report = src.config.get("report")
    return bool(isinstance(report, dict) and report.get("show_paths"))


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
        "inputs": [
            {"path": mask_path(str(i.get("path")), show=_show_paths(src)), "sha256": i.get("sha256"), "bytes": files.get(i.get("sha256"))}
            for i in m.get("inputs", [])
        ],
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
        "features": features(m.get("kind"), dataset["columns"] or [], src.dataset.schema if src.dataset else None),
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


_SCALARS: dict[Any, str] = {
    pl.String: "string",
    pl.Categorical: "string",  # stored as dictionary-encoded strings; read back as strings
    pl.Enum: "string",
    pl.Boolean: "bool",
    pl.Int8: "int8",
    pl.Int16: "int16",
    pl.Int32: "int32",
    pl.Int64: "int64",
    pl.UInt8: "uint8",
    pl.UInt16: "uint16",
    pl.UInt32: "uint32",
    pl.UInt64: "uint64",
    pl.Float32: "float32",
    pl.Float64: "float64",
    pl.Date: "date32",
    pl.Time: "time64[ns]",
    pl.Binary: "binary",
    pl.Null: "null",
}


def feature_type(dtype: Any) -> dict[str, Any]:
    """A polars column type as a Hugging Face feature type, as ``dataset_info.features`` spells it.

    Scalars are ``{"dtype": ...}`` (Arrow names: ``float64``, ``timestamp[us, tz=UTC]``),
    structs ``{"struct": [fields]}``, lists ``{"list": item}`` where the item is a scalar's
    dtype, a struct's fields or another list (fixed-size arrays add ``length``). A type
    outside that vocabulary is given as ``string``.
    """
    if isinstance(dtype, pl.Struct):
        return {"struct": [{"name": f.name, **feature_type(f.dtype)} for f in dtype.fields]}
    if isinstance(dtype, (pl.List, pl.Array)):
        item = feature_type(dtype.inner)
        listed = {"list": item.get("dtype") or item.get("struct") or item}
        return {**listed, "length": dtype.size} if isinstance(dtype, pl.Array) else listed
    if isinstance(dtype, pl.Datetime):
        return {"dtype": f"timestamp[{dtype.time_unit}{f', tz={dtype.time_zone}' if dtype.time_zone else ''}]"}
    if isinstance(dtype, pl.Duration):
        return {"dtype": f"duration[{dtype.time_unit}]"}
    if isinstance(dtype, pl.Decimal):
        return {"dtype": f"decimal128({dtype.precision or 38}, {dtype.scale})"}
    return {"dtype": next((name for t, name in _SCALARS.items() if dtype == t), "string")}


def features(kind: Any, columns: list[str], schema: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Each dataset column with its type: from the file's ``schema``, else from the record kind's contract (``curation.core.schema``)."""
    types: dict[str, Any] = {"id": pl.String()}
    if kind in FORMS:
        types.update(detect_form(kind, columns).columns)
    types.update(schema or {})
    return [{"name": c, **feature_type(types.get(c))} for c in columns]


def type_text(feature: Mapping[str, Any]) -> str:
    """A feature's type in a few words: ``float64``, ``list of string``, ``list of {role, content}``."""
    if "dtype" in feature:
        return str(feature["dtype"])
    if "struct" in feature:
        return "{" + ", ".join(f["name"] for f in feature["struct"]) + "}"
    item = feature.get("list")
    if isinstance(item, list):
        return "list of {" + ", ".join(f["name"] for f in item) + "}"
    return "list of " + (type_text(item) if isinstance(item, Mapping) else str(item))


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
        ("Columns", ", ".join(f"{f['name']} ({type_text(f)})" for f in data["features"])),
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
