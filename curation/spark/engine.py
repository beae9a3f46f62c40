"""The Spark engine: which stages run distributed, and how the rest run on the driver.

- ``normalize`` and ``pii``: the stage's kernel per Arrow batch in ``mapInArrow``
  (``curation.spark.rows``). PII numbers people per distinct value across the whole
  dataset (``<PERSON_1>``) when a person column is scanned; that numbering needs every
  row at once, so such a run does its PII on the driver.
- ``dedup``: hashing, boilerplate phrase counts, LSH buckets, candidate pairs and their
  verification on the cluster, the keeper rule on the driver over the verified edges
  (``curation.spark.dedup``, ``curation.spark.boilerplate``).
- ``balance``: per-row numbers in ``mapInArrow``, counts and histograms by ``groupBy``, the
  embedding sample encoded on the cluster; the decisions and metrics on the driver
  (``curation.spark.balance``).
- ``label_audit``: the response audit per batch, or with ``features: embeddings`` the rows'
  embeddings on the cluster and the fits on the driver (``curation.spark.label_audit``).
  ``features: tfidf`` fits one vocabulary over all rows: on the driver.
- ``preferences``: rows grouped by prompt (``repartition`` by a key), the stage's
  prompt-wise kernel per partition, the cross-prompt diagnostics and books on the driver
  (``curation.spark.preferences``).
- Stages with nothing to distribute run on the driver, over the collected frame, as the
  local engine runs them; their stats say ``engine: spark-driver``.

The runner keeps the books, fingerprints and run directory exactly as for the local engine.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow.parquet as pq

from curation.core.errors import RunError
from curation.core.registry import stage_function
from curation.core.stage import StageContext, StageResult
from curation.spark.session import open_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from curation.spark.files import FileStageResult

DISTRIBUTED = ("normalize", "pii", "dedup", "balance", "label_audit", "preferences")


class SparkEngine:
    """Runs stages on a Spark session; the session starts on the first stage that needs it."""

    name = "spark"

    def __init__(
        self, spark: SparkSession | None = None, *, master: str | None = None, remote: str | None = None, batch_rows: int = 5000
    ) -> None:
        self._spark, self._owned = spark, False
        self._master, self._remote = master, remote
        self.batch_rows = batch_rows  # rows per shipped blob: the unit of work of one task

    @classmethod
    def connect(cls, *, master: str | None = None, remote: str | None = None) -> SparkEngine:
        return cls(master=master, remote=remote)

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            try:
                self._spark, self._owned = open_session(master=self._master, remote=self._remote)
            except Exception as e:  # no JVM, a bad master URL, an unreachable Connect server
                first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
                where = self._remote or self._master or "the default session"
                raise RunError(
                    f"could not start Spark ({where}): {first}; check Java 17 (`java -version`) and the master or Connect URL"
                ) from None
        return self._spark

    def run_stage(self, name: str, df: pl.DataFrame, options: Any, ctx: StageContext) -> StageResult:
        where = self.where(name, df, options, ctx)
        if where == "spark-driver":
            result: StageResult = stage_function(name)(df, options, ctx)
        elif name == "dedup":
            from curation.spark.dedup import spark_dedup

            result = spark_dedup(self.spark, df, options, ctx, batch_rows=self.batch_rows)
        elif name == "balance":
            from curation.spark.balance import spark_balance

            result = spark_balance(self.spark, df, options, ctx, batch_rows=self.batch_rows)
        elif name == "label_audit":
            from curation.spark.label_audit import spark_label_audit

            result = spark_label_audit(self.spark, df, options, ctx, batch_rows=self.batch_rows)
        elif name == "preferences":
            from curation.spark.preferences import spark_preferences

            result = spark_preferences(self.spark, df, options, ctx, batch_rows=self.batch_rows)
        else:
            from curation.spark.rows import run_per_row

            result = run_per_row(self.spark, name, df, _per_worker(name, options), ctx, batch_rows=self.batch_rows)
            result = _pii_samples(result, df, options, ctx) if name == "pii" else result
        return dataclasses.replace(result, stats={**result.stats, "engine": where})

    def run_in_files(self, name: str, src: Path, out_dir: Path, options: Any, ctx: StageContext) -> FileStageResult | None:
        """File mode: the stage over ``src``, its files written into ``out_dir`` by the workers, when it has a
        file-mode function for these options (``curation.spark.files``); None: run it over a frame instead."""
        from curation.spark.files import FILE_STAGES

        rows = pq.ParquetFile(src).metadata.num_rows
        if name not in FILE_STAGES or rows == 0 or self._numbers_people(name, pl.Schema(pl.read_parquet_schema(src)), options, ctx):
            return None
        done = FILE_STAGES[name](self.spark, src, out_dir, _per_worker(name, options), ctx, batch_rows=self.batch_rows)
        if done is None:  # not by files with these options (label_audit of classification rows)
            return None
        return dataclasses.replace(done, stats={**done.stats, "engine": "spark", "spark_io": "files"})

    @staticmethod
    def _numbers_people(name: str, schema: pl.Schema, options: Any, ctx: StageContext) -> bool:
        if name != "pii":
            return False
        from curation.stages.pii.stage import scanned_fields

        return bool(set(options.person_columns) & set(scanned_fields(options, ctx.kind, schema)))

    def where(self, name: str, df: pl.DataFrame, options: Any, ctx: StageContext) -> str:
        """``spark`` when the stage has a distributed path for these options, else ``spark-driver``."""
        if name not in DISTRIBUTED or df.is_empty():
            return "spark-driver"
        if self._numbers_people(name, pl.Schema(df.schema), options, ctx):
            return "spark-driver"  # numbered placeholders count people across all rows
        if name == "label_audit":
            from curation.spark.label_audit import distributed

            if not distributed(df, options, ctx):
                return "spark-driver"  # TF-IDF fits one vocabulary over all rows; other kinds have nothing to audit
        return "spark"

    def close(self) -> None:
        if self._spark is not None and self._owned:
            self._spark.stop()
        self._spark = None


def _per_worker(name: str, options: Any) -> Any:
    """Options for one Spark task: PII analyses in the task's own process (Spark runs the tasks in parallel)."""
    return options.model_copy(update={"workers": 1}) if name == "pii" else options


def _pii_samples(result: StageResult, df: pl.DataFrame, options: Any, ctx: StageContext) -> StageResult:
    """Masked samples and distinct texts over all rows, not summed over batches."""
    from curation.spark.files import _pii_texts

    stats = {**pii_samples(result.stats, result.findings), "unique_texts": _pii_texts(df, options, ctx.kind).n_unique()}
    return dataclasses.replace(result, stats=stats)


def pii_samples(stats: dict[str, Any], findings: pl.DataFrame) -> dict[str, Any]:
    """The PII stage's masked samples, re-picked over all findings as the stage picks them (first three per entity)."""
    samples: dict[str, list[str]] = {}
    found = findings.filter(~pl.col("residual"))
    for entity, masked in found.select("entity_type", "masked").iter_rows():
        if masked not in samples.setdefault(entity, []) and len(samples[entity]) < 3:
            samples[entity].append(masked)
    stats = {**stats, "samples_by_entity": dict(sorted(samples.items()))}
    stats["rows_with_pii"] = found["id"].n_unique()
    return stats
