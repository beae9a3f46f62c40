"""The label_audit stage on Spark: per-row features on the cluster, the fits and decisions on the driver.

- ``instruction`` rows: the response audit (``response_findings``, per row: code parsing of
  answers that look cut off, refusal patterns, ratios) runs per shipped blob in
  ``mapInArrow``; the actions and books are the local stage's (``audit_instruction``),
  whose findings are sorted by issue, score and id, so blob order does not matter.
- ``classification`` rows with ``features: embeddings``: the sentence embeddings of every
  row are computed on the cluster (``curation.spark.features``, the same vectors as here);
  the out-of-fold logistic regressions, confident learning, conflicts and agreement then
  run on the driver, as the local stage runs them. They need every row's features at once
  (a few hundred floats a row).
- ``features: tfidf`` (the default) fits one vocabulary and IDF over all texts: that stage
  runs on the driver (``spark-driver``), as do kinds the audit does not apply to.

File mode (``run.spark_io: files``, ``spark_label_audit_files``): for ``instruction`` rows the
workers read their units of the input and return the findings with each row's number; the
driver, which never reads the input's rows, decides the actions (``audit_instruction``'s
decision part) over those findings, writes ``findings.parquet`` and the dropped rows'
``(row, reason)``, and the workers split their units into kept and dropped parts
(``unit_files.write_parts``), put together in input order. ``classification`` needs every
row's features for its fits (TF-IDF vocabulary, out-of-fold models, conflicts): it returns
None and the runner's adapter reads the input on the driver and runs ``spark_label_audit``;
so do the kinds the audit does not apply to.
"""

from __future__ import annotations

import functools
import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from curation.core.stage import StageContext, StageResult
from curation.spark import unit_files as uf
from curation.spark.features import prefetch_embeddings
from curation.spark.files import FileStageResult
from curation.spark.session import arrow_batches, ship, to_polars
from curation.stages.label_audit import stage as la
from curation.stages.label_audit.response_audit import ResponseAuditConfig, response_findings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

FOUND_SCHEMA = "id string, issue string, score double, detail string"
ROW_FOUND_SCHEMA = "row long, " + FOUND_SCHEMA


def distributed(df: pl.DataFrame, cfg: la.LabelAuditConfig, ctx: StageContext) -> bool:
    """Whether the stage has per-row work for the cluster with these options."""
    if ctx.kind == "instruction":
        return True
    return ctx.kind == "classification" and cfg.features == "embeddings" and la.feature_texts(df, cfg) is not None


def spark_label_audit(
    spark: SparkSession, df: pl.DataFrame, cfg: la.LabelAuditConfig, ctx: StageContext, *, batch_rows: int
) -> StageResult:
    """``label_audit(df, cfg, ctx)`` with the per-row work on the cluster."""
    if ctx.kind == "instruction":
        kernel = functools.partial(_response_kernel, cfg=cfg.response)
        found = to_polars(ship(spark, df, rows=batch_rows).mapInArrow(kernel, FOUND_SCHEMA))
        return la.audit_instruction(df, cfg, found.with_columns(pl.col("score").cast(pl.Float64)))
    texts = la.feature_texts(df, cfg)
    if texts is not None and cfg.features == "embeddings":
        prefetch_embeddings(spark, texts, ctx)
    return la.label_audit(df, cfg, ctx)


def _response_kernel(batches: Iterator[pa.RecordBatch], *, cfg: ResponseAuditConfig) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: the response audit's findings for each shipped blob."""
    for batch in batches:
        for blob in batch.column(0).to_pylist():
            yield from arrow_batches(response_findings(pl.read_ipc(io.BytesIO(blob)), cfg))


def spark_label_audit_files(
    spark: SparkSession, src: Path, out_dir: Path, cfg: la.LabelAuditConfig, ctx: StageContext, *, batch_rows: int
) -> FileStageResult | None:
    """``label_audit`` from ``src`` into ``out_dir`` for ``instruction`` rows, the rows read and written by the workers
    (module docstring); None for the other kinds: the runner's adapter runs ``spark_label_audit`` over the frame."""
    if ctx.kind != "instruction":
        return None
    src, out_dir = Path(src).resolve(), Path(out_dir).resolve()
    units = uf.units_frame(spark, uf.units(src, batch_rows))
    columns: list[str] = [c for c in ("id", "prompt", "completion", "messages") if c in pl.read_parquet_schema(src)]  # what the audit reads
    kernel = functools.partial(_unit_findings_kernel, src=str(src), columns=columns, cfg=cfg.response)
    found = to_polars(units.mapInArrow(kernel, ROW_FOUND_SCHEMA)).cast(
        {"row": pl.Int64, "id": pl.String, "issue": pl.String, "score": pl.Float64, "detail": pl.String}
    )
    findings = la.instruction_findings(found.drop("row"), cfg)
    rows = found.select("row", "id").unique("row")
    drop = rows.join(la.dropping(findings), on="id").select("row", "reason").sort("row")
    work = out_dir / "_label_audit_work"  # scratch of the stage's own: the drop list and the parts
    try:
        written = uf.write_parts(units, src, drop, out_dir, work, ctx.kind)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the parts hold raw rows
    findings.write_parquet(out_dir / "findings.parquet", statistics=False)
    rows_in = written["kept"] + written["dropped"]
    by_reason = dict(drop.group_by("reason").len().sort("reason").iter_rows())
    return FileStageResult(
        stats=la.instruction_stats(rows_in, findings, drop["reason"], cfg),
        kept=written["kept"],
        dropped=written["dropped"],
        quarantined=0,
        dropped_by_reason={str(k): int(v) for k, v in by_reason.items()},
        fidelity=written["fidelity"],
    )


def _unit_findings_kernel(
    batches: Iterator[pa.RecordBatch], *, src: str, columns: list[str], cfg: ResponseAuditConfig
) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: the response audit's findings for each unit of ``src``, with each row's number in ``src``."""
    for _, start, n in uf.unit_rows(batches):
        frame = uf.read_unit(src, start, n, columns)
        rows = frame.select("id").with_row_index("row", offset=start).with_columns(pl.col("row").cast(pl.Int64))
        found = rows.join(response_findings(frame, cfg), on="id", how="inner").select("row", "id", "issue", "score", "detail")
        if found.height:
            yield from arrow_batches(found)
