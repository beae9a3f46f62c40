"""Per-row stages (normalize, pii) on Spark: the stage's own polars kernel inside ``mapInArrow``.

The input is shipped as Arrow IPC blobs of rows (every polars type survives); each blob
runs through the unchanged stage function in a Python worker; heavy engines (Presidio, spaCy) are built once per worker and kept in
``_WORKER_ENGINES`` across tasks. A batch's result (kept, dropped, quarantined, findings,
stats) comes back as one row of Arrow IPC blobs, so any column types survive; the driver
puts the pieces back in input order and merges the stats.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from curation.core.registry import stage_function
from curation.core.schema import Kind
from curation.core.stage import StageContext, StageResult
from curation.spark.session import BLOB_ROWS, ipc_bytes, ship, to_polars

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

POS = "_tuneprep_pos"  # input row number, to restore the local engine's row order
PARTS = ("kept", "dropped", "quarantined", "findings")
BLOB_SCHEMA = "kept binary, dropped binary, quarantined binary, findings binary, stats string"
_WORKER_ENGINES: dict[str, Any] = {}  # per Python worker: Presidio analyzers and the like, built once


def _batch_kernel(
    batches: Iterator[pa.RecordBatch], *, name: str, options: Any, kind: Kind, seed: int, config_dir: Path
) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: the stage over each shipped blob of rows, its result as IPC blobs."""
    ctx = StageContext(kind=kind, seed=seed, config_dir=config_dir, engines=_WORKER_ENGINES)
    fn = stage_function(name)
    for batch in batches:
        for blob in batch.column(0).to_pylist():
            frame = pl.read_ipc(io.BytesIO(blob))
            pos = frame.select("id", POS)
            res = fn(frame.drop(POS), options, ctx)
            blobs = {p: ipc_bytes(_with_pos(getattr(res, p), pos)) for p in PARTS}
            yield pa.RecordBatch.from_pylist([{**blobs, "stats": json.dumps(res.stats, default=str)}])


def _with_pos(part: pl.DataFrame, pos: pl.DataFrame) -> pl.DataFrame:
    if "id" not in part.columns:
        return part
    return part.join(pos, on="id", how="left", maintain_order="left")


def run_per_row(
    spark: SparkSession, name: str, df: pl.DataFrame, options: Any, ctx: StageContext, *, batch_rows: int = BLOB_ROWS
) -> StageResult:
    """``stage(df, options, ctx)`` on blobs of ``batch_rows`` rows on the cluster, reassembled in input order."""
    sdf = ship(spark, df.with_row_index(POS).with_columns(pl.col(POS).cast(pl.Int64)), rows=batch_rows)
    kernel = functools.partial(_batch_kernel, name=name, options=options, kind=ctx.kind, seed=ctx.seed, config_dir=ctx.config_dir)
    out = to_polars(sdf.mapInArrow(kernel, BLOB_SCHEMA))
    parts = {p: [pl.read_ipc(io.BytesIO(b)) for b in out[p].to_list()] for p in PARTS}
    frames = {p: _in_order(frames) for p, frames in parts.items()}
    stats = merge_stats([json.loads(s) for s in out["stats"].to_list()])
    return StageResult(
        kept=frames["kept"], dropped=frames["dropped"], findings=frames["findings"], stats=stats, quarantined=frames["quarantined"]
    )


def _in_order(frames: list[pl.DataFrame]) -> pl.DataFrame:
    frame = pl.concat(frames, how="vertical")
    return frame.sort(POS, maintain_order=True).drop(POS) if POS in frame.columns else frame


def merge_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-batch stats as one: numbers summed, mappings merged key by key, anything else the first batch's.

    Stages whose stats are not sums over rows recompute them on the driver (see ``curation.spark.engine``).
    """
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key not in out:
                out[key] = value
            elif isinstance(value, dict) and isinstance(out[key], dict):
                out[key] = merge_stats([out[key], value])
            elif isinstance(value, int | float) and not isinstance(value, bool):
                out[key] += value
    return out
