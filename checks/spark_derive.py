"""The gate's dataset on Spark: read and derived on the cluster, never held by the driver.

The workers read ``RUN/dataset/data.parquet`` themselves, unit by unit (whole row groups,
about ``unit_rows`` rows each, planned from the file's metadata), with polars, so every
column has the type the local gate sees; each unit gets the per-row derived columns from
the one ``checks.derive`` (``per_row=True``) inside ``mapInArrow``. What counts over the
whole dataset is then a Spark aggregate joined back by label (``_class_rows``,
``_class_share``, ``_label_variants``, ``_label_rows``) or one number (every weight 0).
The aggregates are small (one row per label) and broadcast, so the rows never shuffle and
keep the dataset's order (unit ``i`` is task ``i``), which GX's samples of offending rows follow.

The workers must see the run directory's path (one machine, ``local[N]``, a Connect server
on the same machine, or storage shared with the cluster); when they cannot, one line says so.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from checks.derive import LABEL_KEY, WEIGHT_ZERO, WHOLE, derive
from checks.fidelity import StageRewrite
from checks.gx import RawResult, flat_frame
from checks.results import LabelCounts
from checks.spark_gx import spark_frame, spark_schema, validate_spark_frame
from checks.suites import Spec
from curation.core.balance_rules import ALL_ZERO
from curation.core.errors import RunError
from curation.core.schema import Kind

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

UNREADABLE = "tuneprep-gate: cannot read"  # a worker's message the driver turns into one line
UNIT_ROWS = 50_000  # rows per unit of work (whole row groups) unless the engine says (`batch_rows`)


@dataclass(frozen=True)
class Derivation:
    """What ``derive`` needs besides the rows: the same for every unit."""

    kind: Kind
    residual_pii: int | None
    tokenizer: Any
    rewrites: list[StageRewrite]

    def of(self, frame: pl.DataFrame, *, per_row: bool) -> pl.DataFrame:
        return derive(frame, self.kind, residual_pii=self.residual_pii, tokenizer=self.tokenizer, rewrites=self.rewrites, per_row=per_row)


@dataclass
class SparkDataset:
    """The derived dataset as GX validates it on Spark, and what the gate's lines need.

    Attributes:
        sdf: the flat derived rows (``spark_frame`` types) in dataset order; cached until ``close``.
        schema: an empty polars frame with the derived columns' local types (``checks.derive``).
        labels: rows per label for label checks' lines, or None (no non-empty string ``label``).
    """

    sdf: DataFrame
    schema: pl.DataFrame
    labels: LabelCounts | None
    _cached: DataFrame

    def close(self) -> None:
        self._cached.unpersist()


def validate_run_on_spark(
    engine: Any, path: Path, how: Derivation, specs: list[Spec], *, docs_dir: Path, text_columns: list[str], suite_name: str
) -> tuple[dict[str, RawResult], dict[str, Any], LabelCounts | None]:
    """The gate's validation of the dataset at ``path`` on ``engine``'s Spark session, the driver holding no rows.

    Returns:
        ``checks.gx.validate``'s results and GX JSON (the same as the local path's), and the label counts for the lines.
    """
    data = derive_on_spark(engine.spark, path, how, unit_rows=getattr(engine, "batch_rows", UNIT_ROWS))
    try:
        raw, gx_json = validate_spark_frame(
            data.sdf, data.schema, specs, docs_dir=docs_dir, text_columns=text_columns, suite_name=suite_name
        )
    finally:
        data.close()
    return raw, gx_json, data.labels


def units(path: Path, unit_rows: int) -> list[tuple[int, int]]:
    """(first row, rows) of each unit: consecutive whole row groups of at least ``unit_rows`` rows (the last may be fewer)."""
    meta = pq.ParquetFile(path).metadata
    out, start, rows = [], 0, 0
    for i in range(meta.num_row_groups):
        rows += meta.row_group(i).num_rows
        if rows >= unit_rows:
            out.append((start, rows))
            start, rows = start + rows, 0
    return [*out, (start, rows)] if rows or not out else out


def _derive_kernel(
    batches: Iterator[pa.RecordBatch], *, path: str, plan: list[tuple[int, int]], how: Derivation
) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: each unit (by its number in ``plan``) read with polars, with its per-row derived columns."""
    from curation.spark.session import arrow_batches

    for batch in batches:
        for start, rows in (plan[i] for i in batch.column(0).to_pylist()):
            if not Path(path).is_file():
                raise FileNotFoundError(f"{UNREADABLE} '{path}' on this worker")
            frame = pl.scan_parquet(path).slice(start, rows).collect()
            yield from arrow_batches(spark_frame(flat_frame(how.of(frame, per_row=True))))


def derive_on_spark(spark: SparkSession, path: Path, how: Derivation, *, unit_rows: int) -> SparkDataset:
    """The dataset at ``path`` with every derived column, computed on the cluster (see the module docstring).

    Raises:
        RunError: the Spark workers cannot read ``path``.
    """
    from pyspark.sql import functions as F

    empty = pl.DataFrame(schema=pl.scan_parquet(path).collect_schema())
    per_row = spark_frame(flat_frame(how.of(empty, per_row=True)))
    whole = how.of(empty, per_row=False)
    plan = units(path, unit_rows)
    kernel = functools.partial(_derive_kernel, path=str(path.resolve()), plan=plan, how=how)
    # one task per unit; `range` partitions hold consecutive numbers in order, so the rows keep the file's order
    rows = spark.range(0, len(plan), 1, len(plan)).mapInArrow(kernel, spark_schema(per_row)).cache()
    try:
        total = pq.ParquetFile(path).metadata.num_rows
        sdf = _with_whole(rows, per_row.columns, whole.columns, total)
        if WEIGHT_ZERO in per_row.columns and _all_zero(rows):
            sdf = sdf.withColumn("_balance_issue", F.lit(ALL_ZERO))
        labels = _label_counts(rows, total) if "label" in whole.columns and whole.schema["label"] == pl.String else None
    except Exception as e:
        rows.unpersist()
        if UNREADABLE in str(e):
            raise RunError(
                f"the Spark workers cannot read '{path}': run the check where the run directory is on storage "
                "every Spark worker reads (one machine, a shared mount, a Volume), or with `--engine local`"
            ) from None
        raise
    return SparkDataset(sdf.select(*spark_frame(flat_frame(whole)).columns), whole, labels, rows)


def _with_whole(rows: DataFrame, have: list[str], want: list[str], total: int) -> DataFrame:
    """``rows`` plus the ``WHOLE`` columns ``want`` has, by aggregates broadcast back (no shuffle of the rows)."""
    from pyspark.sql import functions as F

    out = rows
    if "_class_rows" in want:
        counts = rows.groupBy("label").agg(F.count(F.lit(1)).alias("_class_rows"))
        # polars divides by a scalar as a product with its reciprocal (23 * (1/40) != 23/40 in the last bit): so here too
        share = F.col("_class_rows") * F.lit(1.0 / total if total else 0.0)
        out = _join(out, counts, "label").withColumn("_class_share", share)
    if "_label_rows" in want:
        # polars' n_unique counts a null label as one value: a null key groups only null labels
        variants = F.when(F.col("_k").isNull(), F.lit(1)).otherwise(F.count_distinct("label")).cast("bigint")
        keys = (
            rows.withColumnRenamed(LABEL_KEY, "_k")
            .groupBy("_k")
            .agg(variants.alias("_label_variants"), F.count(F.lit(1)).alias("_label_rows"))
        )
        out = _join(out, keys.withColumnRenamed("_k", LABEL_KEY), LABEL_KEY)
    assert set(want) - set(have) <= set(WHOLE), "a derived column the Spark gate does not compute"
    return out


def _join(rows: DataFrame, small: DataFrame, key: str) -> DataFrame:
    """``rows`` left-joined with the broadcast ``small`` on ``key``, null matching null (as polars' ``over`` groups nulls)."""
    from pyspark.sql import functions as F

    other = small.withColumnRenamed(key, "_join_key")
    return rows.join(F.broadcast(other), F.col(key).eqNullSafe(F.col("_join_key")), "left").drop("_join_key")


def _all_zero(rows: DataFrame) -> bool:
    from pyspark.sql import functions as F

    from curation.spark.session import to_polars

    out = to_polars(rows.agg(F.min(F.col(WEIGHT_ZERO).cast("int")).alias("z")))
    return bool(out["z"][0] == 1)


def _label_counts(rows: DataFrame, total: int) -> LabelCounts | None:
    from pyspark.sql import functions as F

    from curation.spark.session import to_polars

    if not total:
        return None
    counts = to_polars(rows.groupBy("label").agg(F.count(F.lit(1)).alias("len")))
    return LabelCounts(counts.with_columns(pl.col("label").cast(pl.String)), total)
