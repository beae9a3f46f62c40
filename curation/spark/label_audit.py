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
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from curation.core.stage import StageContext, StageResult
from curation.spark.features import prefetch_embeddings
from curation.spark.session import arrow_batches, ship, to_polars
from curation.stages.label_audit import stage as la
from curation.stages.label_audit.response_audit import ResponseAuditConfig, response_findings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

FOUND_SCHEMA = "id string, issue string, score double, detail string"


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
