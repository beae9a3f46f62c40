"""File mode's pieces for dedup (``curation.spark.dedup.spark_dedup_files``): units read by the workers, kept/dropped parts.

The work units are file mode's (``curation.spark.files.plan_units``: row ranges of the
stage's input file, from the Parquet metadata, within one row group); a Spark task reads
its units with polars (``read_unit``), so no row travels through the driver. The kept and
dropped rows are written by the workers as one part file per unit (``write_parts``) and put
together in unit order, one part at a time (``files.concat_parquet``): the output files
hold the rows in input order.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow as pa

from curation.core import fidelity
from curation.core.schema import Kind
from curation.spark.files import concat_parquet, plan_units
from curation.spark.session import to_polars

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


UNIT_SCHEMA = "unit long, start long, rows long"


def units(src: Path, rows: int) -> list[tuple[int, int]]:
    """``(start, rows)`` of each work unit of ``src`` (``files.plan_units``: about ``rows`` rows, never across a row group)."""
    return [(start, n) for _, start, n in plan_units(src, rows)]


def units_frame(spark: SparkSession, spans: list[tuple[int, int]]) -> DataFrame:
    """The units as a Spark DataFrame (``unit``, ``start``, ``rows``), spread one or so per task."""
    sdf = spark.createDataFrame([(i, s, n) for i, (s, n) in enumerate(spans)], UNIT_SCHEMA)
    return sdf.repartition(len(spans)) if len(spans) > 1 else sdf


def unit_rows(batches: Iterator[pa.RecordBatch]) -> Iterator[tuple[int, int, int]]:
    """In a worker: each ``(unit, start, rows)`` of the unit batches a task was given."""
    for batch in batches:
        yield from zip(*(batch.column(i).to_pylist() for i in range(3)), strict=True)


def read_unit(src: str, start: int, rows: int, columns: list[str] | None = None) -> pl.DataFrame:
    """Rows ``start .. start + rows - 1`` of ``src`` (``columns`` of them, default all)."""
    scan = pl.scan_parquet(src)
    return (scan.select(columns) if columns is not None else scan).slice(start, rows).collect()


def _split_kernel(batches: Iterator[pa.RecordBatch], *, src: str, drop: str, parts: str, fields: list[str]) -> Iterator[pa.RecordBatch]:
    """In a worker: each unit's rows split by the dropped rows' file (``row``, ``reason``) into two part files;
    per unit the counts and the characters of the kept rows' ``fields`` (what ``fidelity`` compares)."""
    for unit, start, rows in unit_rows(batches):
        frame = read_unit(src, start, rows)
        gone = pl.scan_parquet(drop).filter(pl.col("row").is_between(start, start + rows - 1)).collect()
        mask = np.zeros(rows, bool)
        mask[gone["row"].to_numpy() - start] = True
        kept = frame.filter(pl.Series(~mask))
        frame.filter(pl.Series(mask)).with_columns(gone["reason"]).write_parquet(f"{parts}/dropped-{unit:06d}.parquet", statistics=False)
        kept.write_parquet(f"{parts}/kept-{unit:06d}.parquet", statistics=False)
        lengths = fidelity._digests(kept, fields).select(pl.sum_horizontal(f"{f}__chars" for f in fields)) if fields else None
        chars = int(lengths.to_series().sum()) if lengths is not None else 0
        yield pa.RecordBatch.from_pylist([{"unit": unit, "kept": kept.height, "dropped": int(mask.sum()), "chars": chars}])


def write_parts(units: DataFrame, src: Path, drop: pl.DataFrame, out_dir: Path, work: Path, kind: Kind) -> dict[str, Any]:
    """``output.parquet`` and ``dropped.parquet`` (with ``reason``) in ``out_dir``: the rows of ``src`` without and
    with the ``drop`` rows (``row``, ``reason``, by row), written per unit by the workers, then put together here.

    Returns the counts and the unchanged kept rows' ``fidelity`` (the stage rewrote nothing)."""
    (work / "parts").mkdir(parents=True, exist_ok=True)
    drop.write_parquet(work / "drop.parquet", row_group_size=65_536)  # by row, with statistics: a unit reads its groups only
    schema = pl.read_parquet_schema(src)
    before = pl.DataFrame(schema=schema)
    base = fidelity.measure(before, before, kind)  # None, or the fields compared and nothing rewritten
    fields = base["fields"] if base is not None else []
    kernel = functools.partial(_split_kernel, src=str(src), drop=str(work / "drop.parquet"), parts=str(work / "parts"), fields=fields)
    counts = to_polars(units.mapInArrow(kernel, "unit long, kept long, dropped long, chars long")).sort("unit")
    for name, part in (("output.parquet", "kept"), ("dropped.parquet", "dropped")):
        concat_parquet(
            [work / "parts" / f"{part}-{u:06d}.parquet" for u in counts["unit"].to_list()], out_dir / name, row_group_size=65_536
        )
    kept = int(counts["kept"].sum())
    if base is not None:
        base |= {"rows_compared": kept, "chars_compared": int(counts["chars"].sum())}
    return {"kept": kept, "dropped": int(counts["dropped"].sum()), "fidelity": base}
