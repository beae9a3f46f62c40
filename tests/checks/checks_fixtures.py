"""Helpers for the checks tests: real runs on tiny inline data, and edited copies of them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl

from curation.core.config import parse_config
from curation.core.rundir import DATASET, frame_fingerprint, update_manifest, write_parquet
from curation.core.runner import run_pipeline

LABELS = ("billing", "technical")
TOPICS = ("refund", "router", "invoice", "firmware", "password", "parcel", "upgrade", "warranty", "cable", "login")


def text_of(i: int) -> str:
    return f"ticket {i} asks about the {TOPICS[i % len(TOPICS)]} problem in some detail"


def classification_rows(n: int = 20) -> list[dict[str, Any]]:
    return [{"id": f"r{i}", "text": text_of(i), "label": LABELS[i % 2]} for i in range(n)]


def preference_rows(n: int = 12) -> list[dict[str, Any]]:
    return [
        {
            "id": f"p{i}",
            "prompt": f"question {i} about {TOPICS[i % len(TOPICS)]}",
            "chosen": f"a helpful answer {i}",
            "rejected": f"a poor answer {i}",
        }
        for i in range(n)
    ]


def messages_rows(n: int = 12) -> list[dict[str, Any]]:
    return [
        {
            "id": f"m{i}",
            "messages": [
                {"role": "user", "content": f"question {i} about {TOPICS[i % len(TOPICS)]}"},
                {"role": "assistant", "content": f"answer number {i}"},
            ],
        }
        for i in range(n)
    ]


def make_run(
    root: Path,
    rows: list[dict[str, Any]],
    *,
    kind: str = "classification",
    name: str = "run",
    stages: list[Any] | None = None,
    **sections: Any,
) -> Path:
    """Run the real pipeline on ``rows`` written as JSONL; return the run directory."""
    data = root / "data" / f"{name}.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = parse_config({"input": {"path": str(data), "kind": kind}, "stages": stages or [], **sections}, base_dir=root)
    return run_pipeline(cfg, out_dir=root / "runs" / name, quiet=True).run_dir


def copy_run(run_dir: Path, dest: Path, df: pl.DataFrame | None = None) -> Path:
    """A copy of ``run_dir`` at ``dest``, optionally with its dataset replaced by ``df`` (as if the run had made it)."""
    shutil.copytree(run_dir, dest)
    if df is not None:
        write_parquet(dest / DATASET, df)
        manifest = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
        update_manifest(dest, dataset={**manifest["dataset"], "fingerprint": frame_fingerprint(df), "rows": df.height})
    return dest


def add_pii_stats(run_dir: Path, residual_total: int) -> None:
    """Record a PII stage in the manifest with the given residual count, as the pii stage writes it."""
    stage_dir = run_dir / "stages" / "09-pii"
    stage_dir.mkdir(parents=True)
    stats = {
        "stage": "pii",
        "books": {"rows_in": 0, "kept": 0, "dropped": 0, "quarantined": 0},
        "dropped_by_reason": {},
        "config": {},
        "metrics": {"residual_total": residual_total},
    }
    (stage_dir / "stats.json").write_text(json.dumps(stats), encoding="utf-8")
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    update_manifest(run_dir, stages=[*manifest["stages"], {"index": 9, "name": "pii", "dir": "stages/09-pii", "books": stats["books"]}])


def failure_names(lines: list[str]) -> set[str]:
    """The expectation names of FAIL/ERROR lines (``FAIL [critical] name: ...``)."""
    return {line.split("] ", 1)[1].split(": ", 1)[0] for line in lines if line.startswith(("FAIL", "ERROR"))}
