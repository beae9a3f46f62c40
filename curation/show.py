"""Why was this row dropped? The rows a run dropped, flagged or quarantined, read back from its stage files.

``show_rows(run_dir, ...)`` answers a reviewer's question without polars: each entry names
the stage, the row id, what happened to it (``kept``, ``dropped``, ``flagged``,
``quarantined``), the reason or finding, the finding's details (a PII finding's entity type
and masked value; a label issue's given and suggested label), what a duplicate duplicated
(id, similarity and both texts), and the row's text as that stage's own files hold it: raw
before the PII stage, scrubbed from it on. Text is the user's data read on the user's
machine; after ``tuneprep clean`` removed a file, the text is gone and the entry says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from curation.core.errors import RunError
from curation.core.rundir import read_manifest

Status = Literal["kept", "dropped", "flagged", "quarantined"]
TEXT_COLUMNS = ("text", "prompt", "completion", "messages", "response", "response_a", "response_b", "chosen", "rejected")
FINDING_NAME = ("entity_type", "issue", "finding")  # the column that names a finding, per stage
ROW_KEY = ("id", "key")
REMOVED = "(text not available: the file was removed, e.g. by `tuneprep clean`)"


@dataclass(frozen=True)
class Query:
    """What to show: at most one of ``id``, ``reason``, ``finding``; ``stage`` narrows any of them."""

    stage: str | None = None
    id: str | None = None
    reason: str | None = None
    finding: str | None = None
    limit: int = 20


@dataclass
class Entry:
    stage: str
    id: str | None
    status: Status
    reason: str | None = None
    finding: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    text: str | None = None
    duplicate_of: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None and v != {}}


@dataclass(frozen=True)
class _Stage:
    index: int
    name: str
    dir: Path


def show_rows(run_dir: Path, query: Query) -> list[Entry]:
    """The entries of ``run_dir`` that match ``query``, in stage order, at most ``query.limit``.

    Raises:
        RunError: not a run directory, or ``query.stage`` names no stage of the run.
    """
    stages = _stages(Path(run_dir), query.stage)
    entries: list[Entry] = []
    for stage in stages:
        left = query.limit - len(entries)
        if left <= 0:
            break
        entries += _stage_entries(stage, query, left)
    return entries[: query.limit]


def known_values(run_dir: Path) -> dict[str, list[str]]:
    """The drop reasons and finding names that occur in the run (for a helpful empty answer)."""
    manifest = read_manifest(run_dir)
    reasons = sorted({r for s in manifest.get("stages", []) for r in s.get("dropped_by_reason", {})})
    findings: set[str] = set()
    for stage in _stages(Path(run_dir), None):
        frame = _scan(stage.dir / "findings.parquet")
        column = _finding_column(frame)
        if frame is not None and column is not None:
            findings |= {v for v in frame.select(pl.col(column).unique()).collect()[column].to_list() if v is not None}
    return {"reasons": reasons, "findings": sorted(findings)}


def _stages(run_dir: Path, wanted: str | None) -> list[_Stage]:
    manifest = read_manifest(run_dir)
    stages = [_Stage(int(s["index"]), str(s["name"]), run_dir / s["dir"]) for s in manifest.get("stages", [])]
    if wanted is None:
        return stages
    picked = [s for s in stages if wanted in (s.name, s.dir.name)]
    if not picked:
        raise RunError(f"`--stage {wanted}`: no such stage in this run; use one of {', '.join(s.name for s in stages)}")
    return picked


def _scan(path: Path) -> pl.LazyFrame | None:
    return pl.scan_parquet(path) if path.is_file() else None


def _finding_column(frame: pl.LazyFrame | None) -> str | None:
    if frame is None:
        return None
    names = frame.collect_schema().names()
    return next((c for c in FINDING_NAME if c in names), None)


def _stage_entries(stage: _Stage, query: Query, limit: int) -> list[Entry]:
    out: list[Entry] = []
    if query.finding is None:
        out += _dropped(stage, query, limit)
    if query.reason is None:
        out += _flagged(stage, query, limit - len(out))
        out += _quarantined(stage, query, limit - len(out))
    if query.id is not None and not out:
        out += _kept(stage, query.id)
    return out[:limit]


# ---------------------------------------------------------------------------- dropped rows
def _dropped(stage: _Stage, query: Query, limit: int) -> list[Entry]:
    frame = _scan(stage.dir / "dropped.parquet")
    findings = _scan(stage.dir / "findings.parquet")
    if frame is None or limit <= 0:
        return _dropped_without_text(stage, findings, query, limit) if limit > 0 else []
    if query.id is not None:
        frame = frame.filter(pl.col("id") == query.id)
    if query.reason is not None:
        frame = frame.filter(pl.col("reason") == query.reason)
    rows = frame.head(limit).collect()
    relations = _duplicates(stage, findings, rows["id"].to_list()) if stage.name == "dedup" else {}
    return [
        Entry(stage.name, row["id"], "dropped", reason=row["reason"], text=_text(row), duplicate_of=relations.get(row["id"]))
        for row in rows.iter_rows(named=True)
    ]


def _dropped_without_text(stage: _Stage, findings: pl.LazyFrame | None, query: Query, limit: int) -> list[Entry]:
    """Dedup's findings still say what a removed row duplicated once ``tuneprep clean`` deleted its text."""
    if stage.name != "dedup" or findings is None:
        return []
    if query.id is not None:
        findings = findings.filter(pl.col("id") == query.id)
    if query.reason is not None:
        findings = findings.filter(pl.col("reason") == query.reason)
    rows = findings.head(limit).collect()
    relations = _duplicates(stage, findings, rows["id"].to_list())
    return [
        Entry(stage.name, r["id"], "dropped", reason=r["reason"], text=REMOVED, duplicate_of=relations.get(r["id"]))
        for r in rows.iter_rows(named=True)
    ]


def _duplicates(stage: _Stage, findings: pl.LazyFrame | None, ids: list[str]) -> dict[str, dict[str, Any]]:
    """For each removed id: the kept row it duplicated, their similarity and the kept row's text."""
    if findings is None or not ids:
        return {}
    pairs = findings.filter(pl.col("id").is_in(ids)).collect()
    kept = _scan(stage.dir / "output.parquet")
    texts: dict[str, str | None] = {}
    if kept is not None:
        keepers = kept.filter(pl.col("id").is_in(pairs["kept_id"].implode())).collect()
        texts = {row["id"]: _text(row) for row in keepers.iter_rows(named=True)}
    out = {}
    for row in pairs.iter_rows(named=True):
        source = row["kept_from"]
        text = texts.get(row["kept_id"]) if source == "input" else f"(kept in {source})"
        out[row["id"]] = {"id": row["kept_id"], "similarity": round(float(row["similarity"]), 4), "text": text or REMOVED}
    return out


# ---------------------------------------------------------------------------- findings
def _flagged(stage: _Stage, query: Query, limit: int) -> list[Entry]:
    if stage.name == "dedup" or limit <= 0:  # dedup's findings are its dropped rows' relations
        return []
    findings = _scan(stage.dir / "findings.parquet")
    column = _finding_column(findings)
    if findings is None or column is None:
        return []
    names = findings.collect_schema().names()
    key = next((c for c in ROW_KEY if c in names), None)
    if query.id is not None:
        if key is None:
            return []
        findings = findings.filter(pl.col(key) == query.id)
    if query.finding is not None:
        findings = findings.filter(pl.col(column).str.to_lowercase() == query.finding.lower())
    rows = findings.head(limit).collect()
    ids = rows[key].drop_nulls().unique().to_list() if key else []
    texts = _texts(stage, ids)
    out = []
    for row in rows.iter_rows(named=True):
        rid = row.get(key) if key else None
        detail = {k: v for k, v in row.items() if k not in (key, column) and v is not None}
        out.append(Entry(stage.name, rid, "flagged", finding=row[column], detail=detail, text=texts.get(rid) if rid else None))
    return out


def _texts(stage: _Stage, ids: list[str]) -> dict[str, str | None]:
    """The rows' text as this stage wrote it (kept or dropped): scrubbed from the PII stage on."""
    if not ids:
        return {}
    out: dict[str, str | None] = {}
    for name in ("output.parquet", "dropped.parquet"):
        frame = _scan(stage.dir / name)
        if frame is not None and "id" in frame.collect_schema().names():
            out |= {r["id"]: _text(r) for r in frame.filter(pl.col("id").is_in(ids)).collect().iter_rows(named=True)}
    return {i: out.get(i, REMOVED) for i in ids}


# ---------------------------------------------------------------------------- quarantine and kept
def _quarantined(stage: _Stage, query: Query, limit: int) -> list[Entry]:
    if query.finding is not None or limit <= 0:
        return []
    frame = _scan(stage.dir / ("quarantine_full.parquet" if stage.name == "ingest" else "quarantine.parquet"))
    if frame is None and stage.name == "ingest":
        frame = _scan(stage.dir / "quarantine.parquet")
    if frame is None:
        return []
    if query.id is not None:
        frame = frame.filter(pl.col("id") == query.id)
    out = []
    for row in frame.head(limit).collect().iter_rows(named=True):
        where = {k: row[k] for k in ("source", "line") if row.get(k) is not None}
        raw = row.get("raw")
        out.append(Entry(stage.name, row["id"], "quarantined", reason=row["error"], detail=where, text=_clip(raw) if raw else None))
    return out


def _kept(stage: _Stage, row_id: str) -> list[Entry]:
    frame = _scan(stage.dir / "output.parquet")
    if frame is None or "id" not in frame.collect_schema().names():
        return []
    rows = frame.filter(pl.col("id") == row_id).head(1).collect()
    return [Entry(stage.name, row_id, "kept", text=_text(r)) for r in rows.iter_rows(named=True)]


# ---------------------------------------------------------------------------- text
def _text(row: dict[str, Any]) -> str | None:
    """The row's text columns as one string: ``text`` alone, else ``prompt: ... | completion: ...``."""
    parts = {c: row[c] for c in TEXT_COLUMNS if row.get(c) is not None}
    if not parts:
        return None
    if list(parts) == ["text"]:
        return _clip(str(parts["text"]))
    return _clip(" | ".join(f"{c}: {_value(v)}" for c, v in parts.items()))


def _value(value: Any) -> str:
    if isinstance(value, list):  # messages
        return " / ".join(f"{m.get('role')}: {m.get('content')}" if isinstance(m, dict) else str(m) for m in value)
    return str(value)


def _clip(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def to_json(run_dir: Path, entries: list[Entry]) -> str:
    return json.dumps({"run": str(run_dir), "rows": [e.as_json() for e in entries]}, indent=2, ensure_ascii=False, default=str)


def print_table(entries: list[Entry]) -> None:
    """A rich table on stdout: one line per entry, a duplicate's kept row beside it."""
    import sys

    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=True)
    columns: dict[str, list[str]] = {
        "stage": [e.stage for e in entries],
        "id": [e.id or "-" for e in entries],
        "status": [e.status for e in entries],
        "reason / finding": [e.reason or e.finding or "" for e in entries],
        "detail": [", ".join(f"{k}={v}" for k, v in e.detail.items()) for e in entries],
        "text": [_short(e.text) for e in entries],
        "duplicate of": [
            _short(f"{d['id']} (similarity {d['similarity']:g})\n{d['text']}") if (d := e.duplicate_of) else "" for e in entries
        ],
    }
    columns = {name: cells for name, cells in columns.items() if any(cells)}
    for name in columns:
        table.add_column(name, overflow="fold", no_wrap=name in ("stage", "status"))
    for row in zip(*columns.values(), strict=True):
        table.add_row(*row)
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def _short(text: str | None, limit: int = 300) -> str:
    if not text:
        return ""
    return text if len(text) <= limit else text[:limit] + "…"


__all__ = ["Entry", "Query", "known_values", "print_table", "show_rows", "to_json"]
