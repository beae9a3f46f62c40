"""The gate on Apache Spark: the same suite, evaluated by Great Expectations' Spark datasource.

``tuneprep check`` takes this path for a run made with ``engine: spark`` (or with
``--engine spark``). The derived columns come from the one polars ``checks.derive``, as on
the local path, so both validate the same values: computed by the Spark workers over the
file (``checks.spark_derive``, ``validate_spark_frame``), or, with ``run.spark_io: driver``,
on the driver and shipped in dataset order (Arrow blobs, ``validate_on_spark``). GX's Spark
execution engine computes every expectation on the cluster, classic or Spark Connect.

GX's Spark results differ from its pandas results in form only, and this module makes
them the same, so ``checks/results.json``, ``verdict.json`` and the failure lines do not
depend on the engine:

- type names: the suite says ``str``/``float64`` (pandas names); Spark is asked for
  ``StringType``/``DoubleType`` and its answers are given back under the pandas names;
- sampled rows: pandas names offending rows by position; here GX is asked for the ``id``
  of each, and the sample of a uniqueness check (whose Spark plan shuffles, so its first
  rows are not the dataset's first offending rows) is taken again in dataset order;
- unsigned integers (the ``_dup_key`` hash) travel as signed 64-bit and are shown unsigned;
- on an empty dataset a value-by-value check counts 0 unexpected rows (Spark's sum over no rows is null);
- results come back in suite order.

Nothing here imports PySpark at module import.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from checks.gx import (
    SAMPLE,
    RawResult,
    _exception,
    _store_and_build_docs,
    build_expectation,
    flat_frame,
    make_context,
    plain,
    scrub,
    validation_definition,
)
from checks.suites import Spec
from curation.core.masking import mask_value

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

POS = "_tuneprep_pos"  # dataset row number, only in the frame that re-samples a uniqueness check
BLOB_ROWS = 50_000  # rows per Arrow blob shipped to Spark
TO_SPARK_TYPE = {"str": "StringType", "float64": "DoubleType"}  # the suite's pandas type names, as Spark names them
TO_PANDAS_NAME = {
    "StringType": "str",
    "DoubleType": "float64",
    "FloatType": "float32",
    "LongType": "int64",
    "IntegerType": "int32",
    "ShortType": "int16",
    "ByteType": "int8",
    "BooleanType": "bool",
}
_DDL = {
    pl.String: "string",
    pl.Float64: "double",
    pl.Float32: "float",
    pl.Int64: "bigint",
    pl.Int32: "int",
    pl.Int16: "smallint",
    pl.Int8: "tinyint",
    pl.Boolean: "boolean",
}


def spark_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """The flat frame GX validates (as ``checks.gx.flat_frame``), in types Spark has.

    Unsigned integers become signed 64-bit (a ``UInt64`` hash reinterpreted, bit for bit);
    any other type Spark's Arrow reader lacks goes over as its string.
    """
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if dtype == pl.UInt64:
            exprs.append(col.reinterpret(signed=True))
        elif dtype.is_unsigned_integer():
            exprs.append(col.cast(pl.Int64))
        elif dtype.base_type() not in _DDL:
            exprs.append(col.cast(pl.String))
        else:
            exprs.append(col)
    return frame.select(exprs)


def spark_schema(frame: pl.DataFrame) -> str:
    """The DDL of ``frame`` (already ``spark_frame``) as Spark reads it."""
    return ", ".join(f"`{name}` {_DDL[dtype.base_type()]}" for name, dtype in frame.schema.items())


def to_spark(spark: SparkSession, frame: pl.DataFrame) -> DataFrame:
    """``frame`` (already ``spark_frame``) as a Spark DataFrame whose partitions keep the dataset's row order."""
    from curation.spark.session import ipc_bytes, unpack

    blobs = [(ipc_bytes(frame.slice(start, BLOB_ROWS)),) for start in range(0, max(frame.height, 1), BLOB_ROWS)]
    return unpack(spark.createDataFrame(blobs, "data binary"), spark_schema(frame))


def spark_spec(spec: Spec) -> Spec:
    """``spec`` as Spark must be asked: a pandas type name becomes Spark's."""
    type_name = spec.kwargs.get("type_") if spec.expectation == "ExpectColumnValuesToBeOfType" else None
    if not isinstance(type_name, str) or type_name not in TO_SPARK_TYPE:
        return spec
    return Spec(**{**spec.__dict__, "kwargs": {**spec.kwargs, "type_": TO_SPARK_TYPE[type_name]}})


def index_column(frame: pl.DataFrame) -> list[str]:
    """The column GX names offending rows by (``unexpected_index_column_names``)."""
    return ["id"] if "id" in frame.columns else []


def as_pandas_result(
    spec: Spec, result: dict[str, Any], kwargs: dict[str, Any], frame: pl.DataFrame, redone: dict[str, Any] | None
) -> None:
    """One GX Spark result (``result`` and its expectation's ``kwargs``) in the pandas path's form, in place.

    ``redone``: fields computed again in the pandas form (``unique_sample``, ``string_type_result``).
    """
    for key in ("unexpected_index_query", "unexpected_index_column_names"):
        result.pop(key, None)
    if "unexpected_count" in result and result["unexpected_count"] is None and result.get("element_count") == 0:
        result["unexpected_count"] = 0  # Spark's sum over no rows is null; pandas counts 0
    if "type_" in kwargs:
        kwargs["type_"] = spec.kwargs.get("type_", kwargs["type_"])
        observed = result.get("observed_value")
        if isinstance(observed, str):
            result["observed_value"] = TO_PANDAS_NAME.get(observed, observed)
    column = kwargs.get("column")
    if redone is not None:
        result.update(redone)
        if "observed_value" in redone:  # a value-by-value result has none
            del result["observed_value"]
    if isinstance(column, str) and column in frame.columns and frame.schema[column] == pl.UInt64:
        _unsigned(result)
    if "partial_unexpected_index_list" in result:
        result["partial_unexpected_index_list"] = [
            {"id": mask_value(item.get("id"))} if isinstance(item, dict) else item for item in result["partial_unexpected_index_list"]
        ]


def _unsigned(result: dict[str, Any]) -> None:
    """Signed 64-bit values (how a ``UInt64`` column travels) shown as the unsigned values the pandas path shows."""
    fix = lambda v: v % (1 << 64) if isinstance(v, int) and not isinstance(v, bool) else v  # noqa: E731
    if "partial_unexpected_list" in result:
        result["partial_unexpected_list"] = [fix(v) for v in result["partial_unexpected_list"]]
    counts = [{**item, "value": fix(item["value"])} for item in result.get("partial_unexpected_counts", [])]
    if counts:
        result["partial_unexpected_counts"] = sorted(counts, key=lambda item: (-item["count"], item["value"]))


def _redone(spec: Spec, result: dict[str, Any], sdf: DataFrame) -> dict[str, Any] | None:
    """The result fields Spark's GX gives in another form than pandas', computed again as pandas gives them; None if none."""
    if spec.expectation == "ExpectColumnValuesToBeUnique" and result.get("unexpected_count"):
        return unique_sample(sdf, str(spec.column), sample=SAMPLE)
    column = str(spec.column)
    if spec.expectation == "ExpectColumnValuesToBeOfType" and column in sdf.columns and sdf.schema[column].dataType.typeName() == "string":
        return string_type_result(sdf, str(spec.column), expected_str=spec.kwargs.get("type_") == "str", sample=SAMPLE)
    return None


def string_type_result(sdf: DataFrame, column: str, *, expected_str: bool, sample: int) -> dict[str, Any]:
    """A type check on a string column as pandas reports it: value by value (pandas holds strings as ``object``).

    Every non-null value is a ``str``: none is unexpected when ``str`` is expected, all are otherwise.
    """
    from pyspark.sql import functions as F

    from curation.spark.session import to_polars

    counts = to_polars(sdf.agg(F.count(F.lit(1)).alias("n"), F.count(column).alias("nonnull")))
    n, nonnull = int(counts["n"][0]), int(counts["nonnull"][0])
    rows = pl.DataFrame({"id": [], "value": []}, schema={"id": pl.String, "value": pl.String})
    if not expected_str and nonnull:
        ids = F.col("id") if "id" in sdf.columns else F.lit(None).cast("string")
        rows = to_polars(sdf.where(F.col(column).isNotNull()).limit(sample).select(ids.alias("id"), F.col(column).alias("value")))
    unexpected = 0 if expected_str else nonnull
    values = rows["value"].to_list()
    missing, share = n - nonnull, (unexpected / nonnull * 100 if nonnull else None)
    return {
        "observed_value": None,
        "element_count": n,
        "unexpected_count": unexpected,
        "unexpected_percent": share,
        "partial_unexpected_list": values,
        "missing_count": missing,
        "missing_percent": missing / n * 100 if n else None,
        "unexpected_percent_total": unexpected / n * 100 if n else None,
        "unexpected_percent_nonmissing": share,
        "partial_unexpected_counts": counts_of(values, sample),
        "partial_unexpected_index_list": [{"id": i} for i in rows["id"].to_list()],
    }


def unique_sample(sdf: DataFrame, column: str, *, sample: int) -> dict[str, Any]:
    """The first ``sample`` rows (in dataset order) whose non-null ``column`` value occurs more than once.

    What the pandas path reports for ``ExpectColumnValuesToBeUnique``: GX's Spark plan
    counts values over a window, which shuffles, so its own first rows are not these.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from curation.spark.session import to_polars

    ordered = sdf.select(
        F.monotonically_increasing_id().alias(POS), F.col("id") if "id" in sdf.columns else F.lit(None).alias("id"), column
    )
    counted = ordered.where(F.col(column).isNotNull()).withColumn("_n", F.count(F.lit(1)).over(Window.partitionBy(column)))
    rows = to_polars(counted.where(F.col("_n") > 1).orderBy(POS).limit(sample).select("id", F.col(column).alias("value")))
    values = rows["value"].to_list()
    return {
        "partial_unexpected_list": values,
        "partial_unexpected_index_list": [{"id": i} for i in rows["id"].to_list()],
        "partial_unexpected_counts": counts_of(values, sample),
    }


def counts_of(values: list[Any], sample: int) -> list[dict[str, Any]]:
    """GX's ``partial_unexpected_counts`` of a sample: most common first, ties by value."""
    ranked = sorted(Counter(values).most_common(sample), key=lambda kv: (-kv[1], kv[0]))
    return [{"value": v, "count": n} for v, n in ranked]


def validate_on_spark(
    spark: SparkSession, frame: pl.DataFrame, specs: list[Spec], *, docs_dir: Path, text_columns: list[str], suite_name: str
) -> tuple[dict[str, RawResult], dict[str, Any]]:
    """``checks.gx.validate`` with GX's Spark datasource for a derived ``frame`` the driver holds: shipped in row order."""
    sdf = to_spark(spark, spark_frame(flat_frame(frame))).cache()
    try:
        return validate_spark_frame(sdf, frame.clear(), specs, docs_dir=docs_dir, text_columns=text_columns, suite_name=suite_name)
    finally:
        sdf.unpersist()


def validate_spark_frame(
    sdf: DataFrame, schema: pl.DataFrame, specs: list[Spec], *, docs_dir: Path, text_columns: list[str], suite_name: str
) -> tuple[dict[str, RawResult], dict[str, Any]]:
    """``checks.gx.validate`` with GX's Spark datasource: the same results, computed by Spark.

    ``sdf``: the flat derived dataset in ``spark_frame`` types and dataset order; ``schema``:
    an empty polars frame with the derived columns' local types.
    """
    expectations = [build_expectation(spark_spec(s)) for s in specs]
    context = make_context(docs_dir)
    definition = validation_definition(context, context.data_sources.add_spark("dataset"), suite_name, expectations)
    result_format = {
        "result_format": "SUMMARY",
        "partial_unexpected_count": SAMPLE,
        "unexpected_index_column_names": index_column(schema),
    }
    validation = definition.run(batch_parameters={"dataframe": sdf}, result_format=result_format)
    by_name = {s.name: s for s in specs}
    raw: dict[str, RawResult] = {}
    for r in validation.results:  # GX orders them by column, whatever the engine
        spec = by_name[r.expectation_config.meta["tuneprep"]]
        as_pandas_result(spec, r.result, r.expectation_config.kwargs, schema, _redone(spec, r.result, sdf))
        column = r.expectation_config.kwargs.get("column")
        scrub(r.result, column, free_text=column in text_columns)
        raw[spec.name] = RawResult(bool(r.success), plain(dict(r.result)), _exception(r.exception_info or {}))
    _store_and_build_docs(context, validation, docs_dir)
    return raw, validation.to_json_dict()
