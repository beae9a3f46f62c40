"""File mode of the Spark engine (``run.spark_io: files``): workers read and write the run directory.

A stage's input is the previous stage's ``output.parquet``. The driver cuts it into work
units from the Parquet metadata alone (row counts, about ``batch_rows`` rows each, within
row groups) and sends Spark only the units: (unit, start, rows). Each task reads its unit
with polars (exact types), runs the unchanged stage function on it, checks that every
input id left the unit once, writes its kept, dropped, quarantined and findings rows as
``parts/<part>-<unit>.parquet`` under the stage's temporary folder (temporary name, then
``os.replace``: a retried task is harmless) and returns one small row of counts, stats and
its fidelity partial. The driver then streams the parts, one at a time and in unit order,
into the stage's ``output.parquet``, ``dropped.parquet``, ``findings.parquet`` (and
``quarantine.parquet``): the run directory and its row order are the local engine's, and
the driver holds one part at a time, never the dataset.

This needs the run directory on storage that every worker can read and write (``local[N]``,
a Databricks Volume, an EFS or FSx mount on EMR). Without it, ``run.spark_io: driver``
ships the rows from the driver instead (``curation.spark.rows``).

A file-mode stage is ``fn(spark, src, out_dir, options, ctx, *, batch_rows) -> FileStageResult``;
``FILE_STAGES`` lists them. Stages without one run through the runner's adapter
(``curation.core.filerun``): the input read on the driver, the engine's frame path.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from curation.core import fidelity
from curation.core.errors import RunError
from curation.core.registry import stage_function
from curation.core.schema import Kind
from curation.core.stage import StageContext, StageResult

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

POS = "_tuneprep_pos"  # row number within the unit, to keep the local engine's row order
PARTS = {"kept": "output.parquet", "dropped": "dropped.parquet", "quarantined": "quarantine.parquet", "findings": "findings.parquet"}
UNIT_SCHEMA = "unit long, start long, rows long"
RESULT_SCHEMA = (
    "unit long, rows_in long, kept long, dropped long, quarantined long, reasons string, stats string, fidelity string, kind string"
)
_RESULT_ARROW = pa.schema([(c.split()[0], pa.int64() if c.split()[1] == "long" else pa.string()) for c in RESULT_SCHEMA.split(", ")])
NOT_SHARED = "tuneprep-file-mode: a Spark worker cannot read"  # marks the worker's error, so the driver can say what to do
_WORKER_ENGINES: dict[str, Any] = {}  # per Python worker: Presidio analyzers and the like, built once


@dataclass(frozen=True)
class FileStageResult:
    """What a file-mode stage returns; its rows are in the files it wrote into ``out_dir``."""

    stats: dict[str, Any]  # the stage's metrics (StageResult.stats)
    kept: int
    dropped: int
    quarantined: int
    dropped_by_reason: dict[str, int]
    fidelity: dict[str, Any] | None  # the stage's fidelity stats as the runner stores them
    kind: str | None = None
    files: dict[str, str | bytes] = field(default_factory=dict)  # extra files, as StageResult.files


FileStage = Callable[..., FileStageResult | None]  # None: run the stage over a frame (the runner's adapter)
Keys = Callable[[pl.DataFrame, Any, Kind], pl.Series]  # per unit: values whose distinct count over all units is a stat


def plan_units(src: Path, batch_rows: int) -> list[tuple[int, int, int]]:
    """(unit, first row, rows) covering ``src``: about ``batch_rows`` rows each, none across a row group; from metadata only."""
    meta = pq.ParquetFile(src).metadata
    units: list[tuple[int, int, int]] = []
    start = 0
    for g in range(meta.num_row_groups):
        n = meta.row_group(g).num_rows
        pieces = max(1, -(-n // batch_rows))
        bounds = [start + n * i // pieces for i in range(pieces + 1)]
        units += [(len(units) + i, lo, hi - lo) for i, (lo, hi) in enumerate(itertools.pairwise(bounds)) if hi > lo]
        start += n
    return units


def per_row(
    spark: SparkSession,
    src: Path,
    out_dir: Path,
    options: Any,
    ctx: StageContext,
    *,
    batch_rows: int,
    name: str,
    distinct: tuple[str, Keys] | None = None,
) -> FileStageResult:
    """A per-row stage (``name``: normalize, pii) over ``src`` by units on the cluster, its files assembled in ``out_dir``.

    ``distinct``: (stat, keys) for a stat that counts distinct values over all rows (the PII
    stage's ``unique_texts``), not a sum over units: each unit writes its keys' hashes, Spark counts them.
    """
    src, parts = Path(src).resolve(), Path(out_dir).resolve() / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    units = plan_units(src, batch_rows)
    kernel = functools.partial(
        _unit_kernel,
        name=name,
        options=options,
        kind=ctx.kind,
        seed=ctx.seed,
        config_dir=ctx.config_dir,
        src=src,
        parts=parts,
        keys=distinct[1] if distinct else None,
    )
    sdf = spark.createDataFrame(units, UNIT_SCHEMA)
    sdf = sdf.repartition(len(units)) if len(units) > 1 else sdf
    try:
        rows = sorted(sdf.mapInArrow(kernel, RESULT_SCHEMA).collect(), key=lambda r: r["unit"])
    except Exception as e:
        if NOT_SHARED in str(e):
            raise RunError(
                f"Spark workers cannot read {src}: `run.spark_io: files` needs the run directory on storage every "
                "worker shares (local[N], a Databricks Volume, an EFS or FSx mount); set `run.spark_io: driver` to ship the rows instead"
            ) from None
        raise
    assert [r["unit"] for r in rows] == [u for u, _, _ in units], "a work unit is missing from the results"
    try:
        done = _assemble(rows, parts, Path(out_dir), row_group_size=batch_rows)
        if distinct is None:
            return done
        count = spark.read.parquet(*[str(parts / f"keys-{u:06d}.parquet") for u, _, _ in units]).distinct().count()
        return dataclasses.replace(done, stats={**done.stats, distinct[0]: count})
    finally:
        shutil.rmtree(parts, ignore_errors=True)  # the parts hold raw rows and raw replaced values


def _unit_kernel(
    batches: Iterator[pa.RecordBatch],
    *,
    name: str,
    options: Any,
    kind: Kind,
    seed: int,
    config_dir: Path,
    src: Path,
    parts: Path,
    keys: Keys | None,
) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: the stage over each unit of ``src``, its rows written as parts, one row of counts back."""
    ctx = StageContext(kind=kind, seed=seed, config_dir=config_dir, engines=_WORKER_ENGINES)
    fn = stage_function(name)
    for batch in batches:
        for unit, start, rows in zip(*(batch.column(i).to_pylist() for i in range(3)), strict=True):
            if not src.is_file():
                raise FileNotFoundError(f"{NOT_SHARED} {src}")
            frame = pl.scan_parquet(src).slice(start, rows).collect()
            result = fn(frame, options, ctx)
            if keys is not None:
                _write_part(parts / f"keys-{unit:06d}.parquet", _hashed(keys(frame, options, kind).unique()))
            yield pa.RecordBatch.from_pylist([_unit_done(unit, frame, result, kind, parts)], schema=_RESULT_ARROW)


def _unit_done(unit: int, frame: pl.DataFrame, result: StageResult, kind: Kind, parts: Path) -> dict[str, Any]:
    """Check the unit's books by id, write its parts, and say what it did."""
    from curation.core.runner import _check_ids, _dropped_by_reason

    _check_ids(frame, result, kind)
    pos = frame.select("id").with_row_index(POS)
    for part in PARTS:
        _write_part(parts / f"{part}-{unit:06d}.parquet", _in_order(getattr(result, part), pos))
    counts, diffs = fidelity.partial(frame, result.kept, kind, after_kind=result.kind)
    _write_part(parts / f"fidelity-{unit:06d}.parquet", diffs)
    return {
        "unit": unit,
        "rows_in": frame.height,
        "kept": result.kept.height,
        "dropped": result.dropped.height,
        "quarantined": result.quarantined.height,
        "reasons": json.dumps(_dropped_by_reason(result.dropped)),
        "stats": json.dumps(result.stats, default=str),
        "fidelity": json.dumps(counts),
        "kind": result.kind,
    }


def _hashed(values: pl.Series) -> pl.DataFrame:
    """Two 64-bit hashes per value (signed, as Spark reads them): what tells distinct values apart without them."""
    return pl.DataFrame({f"h{seed}": values.hash(seed=seed).reinterpret(signed=True) for seed in (1, 2)})


def _in_order(part: pl.DataFrame, pos: pl.DataFrame) -> pl.DataFrame:
    """Rows by input position (stable), as the driver path reassembles them."""
    if "id" not in part.columns or part.is_empty():
        return part
    joined = part.join(pos, on="id", how="left", maintain_order="left")
    return joined.sort(POS, maintain_order=True).drop(POS)


def _write_part(path: Path, frame: pl.DataFrame) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    frame.write_parquet(tmp, statistics=False)
    os.replace(tmp, path)  # a retried or speculative task writes the same part again: harmless


def _assemble(rows: list[Any], parts: Path, out_dir: Path, *, row_group_size: int) -> FileStageResult:
    """The stage's files from its parts, streamed in unit order; its stats, books and fidelity from the units' rows."""
    from curation.spark.rows import merge_stats

    units = [r["unit"] for r in rows]
    quarantined = sum(r["quarantined"] for r in rows)
    for part, name in PARTS.items():
        if part != "quarantined" or quarantined:
            concat_parquet([parts / f"{part}-{u:06d}.parquet" for u in units], out_dir / name, row_group_size=row_group_size)
    reasons: Counter[str] = Counter()
    for r in rows:
        reasons.update(json.loads(r["reasons"]))
    partials = [json.loads(r["fidelity"]) for r in rows]
    measured = fidelity.merge(partials, pl.scan_parquet([parts / f"fidelity-{u:06d}.parquet" for u in units]))
    return FileStageResult(
        stats=merge_stats([json.loads(r["stats"]) for r in rows]),
        kept=sum(r["kept"] for r in rows),
        dropped=sum(r["dropped"] for r in rows),
        quarantined=quarantined,
        dropped_by_reason=dict(sorted(reasons.items())),
        fidelity=measured,
        kind=rows[0]["kind"],
    )


def concat_parquet(paths: list[Path], out: Path, *, row_group_size: int) -> None:
    """``paths`` (same columns) into one file ``out``, one file in memory at a time; empty parts are left out unless all are empty."""
    paths = [p for p in paths if pq.ParquetFile(p).metadata.num_rows] or paths[:1]
    if len(paths) == 1:
        shutil.copyfile(paths[0], out)
        return
    schema = pq.read_schema(paths[0])
    with pq.ParquetWriter(out, schema, write_statistics=False) as writer:
        for path in paths:
            table = pq.read_table(path)
            writer.write_table(table if table.schema.equals(schema) else table.cast(schema), row_group_size=row_group_size)


def pii(spark: SparkSession, src: Path, out_dir: Path, options: Any, ctx: StageContext, *, batch_rows: int) -> FileStageResult:
    """The PII stage by units; its masked samples re-picked over all findings, as the stage picks them."""
    from curation.spark.engine import pii_samples

    done = per_row(spark, src, out_dir, options, ctx, batch_rows=batch_rows, name="pii", distinct=("unique_texts", _pii_texts))
    findings = pl.read_parquet(Path(out_dir) / "findings.parquet")  # findings are small: spans and masked shapes
    return dataclasses.replace(done, stats=pii_samples(done.stats, findings))


def _pii_texts(frame: pl.DataFrame, options: Any, kind: Kind) -> pl.Series:
    """The texts the PII stage scans in ``frame`` (it counts the distinct ones: ``unique_texts``)."""
    from curation.stages.pii.stage import _cells, scanned_fields

    return pl.Series([t for _, _, t in _cells(frame, scanned_fields(options, kind, frame.schema)) if t], dtype=pl.String)


def dedup(spark: SparkSession, src: Path, out_dir: Path, options: Any, ctx: StageContext, *, batch_rows: int) -> FileStageResult:
    """The dedup stage with its texts read by the workers (``curation.spark.dedup.spark_dedup_files``)."""
    from curation.spark.dedup import spark_dedup_files

    return spark_dedup_files(spark, src, out_dir, options, ctx, batch_rows=batch_rows)


def balance(spark: SparkSession, src: Path, out_dir: Path, options: Any, ctx: StageContext, *, batch_rows: int) -> FileStageResult:
    """The balance stage with its rows read by the workers (``curation.spark.balance.spark_balance_files``)."""
    from curation.spark.balance import spark_balance_files

    return spark_balance_files(spark, src, out_dir, options, ctx, batch_rows=batch_rows)


def label_audit(
    spark: SparkSession, src: Path, out_dir: Path, options: Any, ctx: StageContext, *, batch_rows: int
) -> FileStageResult | None:
    """The label audit's response checks by units (``curation.spark.label_audit.spark_label_audit_files``); None: classification."""
    from curation.spark.label_audit import spark_label_audit_files

    return spark_label_audit_files(spark, src, out_dir, options, ctx, batch_rows=batch_rows)


FILE_STAGES: dict[str, FileStage] = {
    "normalize": functools.partial(per_row, name="normalize"),
    "pii": pii,
    "dedup": dedup,
    "balance": balance,
    "label_audit": label_audit,
}
