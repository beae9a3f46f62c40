"""spark_fingerprint equals file_fingerprint, and both are the same for a polars file and Spark's copies in any layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from curation.core.fingerprint import file_fingerprint, frame_fingerprint
from curation.spark.fingerprint import spark_fingerprint

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),  # PySpark 3.5's collect leaves py4j sockets to the GC
]


def _chat_rows(n: int) -> pl.DataFrame:
    """Chat-kind rows with the awkward values: floats NaN/inf/null/-0.0 (nested too), unsigned ints, newlines."""
    special = [None, float("nan"), float("inf"), float("-inf"), -0.0, 0.1]
    return pl.DataFrame(
        {
            "id": [f"c{(i * 37) % n:04d}" for i in range(n)],
            "messages": [
                [{"role": "user", "content": f"question {i}\nsecond line é"}, {"role": "assistant", "content": f"answer {i}"}]
                for i in range(n)
            ],
            "score": [special[i % 6] for i in range(n)],
            "weights": [[1.5, special[i % 6]] for i in range(n)],
            "votes": pl.Series([i % 9 for i in range(n)], dtype=pl.UInt8),
            "flag": [i % 3 == 0 for i in range(n)],
        }
    )


def test_polars_file_and_spark_copies_in_any_layout_share_one_fingerprint(spark: Any, tmp_path: Path) -> None:
    from pyspark.sql import functions as F

    df = _chat_rows(240)
    df.write_parquet(tmp_path / "polars.parquet", row_group_size=50)
    expected = file_fingerprint(tmp_path / "polars.parquet")
    assert expected == frame_fingerprint(df)
    sdf = spark.read.parquet(str(tmp_path / "polars.parquet"))
    layouts = {"p2": sdf.repartition(2), "p7": sdf.repartition(7), "shuffled": sdf.orderBy(F.rand(seed=3)).coalesce(3)}
    for name, layout in layouts.items():
        layout.write.parquet(str(tmp_path / name))
        assert file_fingerprint(tmp_path / name) == expected, name
    assert spark_fingerprint(spark.read.parquet(str(tmp_path / "p7"))) == expected
    assert spark_fingerprint(spark.read.parquet(str(tmp_path / "shuffled")).repartition(5)) == expected


def test_spark_fingerprint_orders_repeated_ids_and_rows_without_ids_by_digest(spark: Any, tmp_path: Path) -> None:
    df = pl.DataFrame({"id": ["b", "a", "a", None, "a", None], "x": [1.0, float("nan"), None, 2.0, -0.0, 3.0], "t": list("uvwxyz")})
    df.write_parquet(tmp_path / "dup.parquet")
    df.drop("id").write_parquet(tmp_path / "noid.parquet")
    for name in ("dup", "noid"):
        path = tmp_path / f"{name}.parquet"
        assert spark_fingerprint(spark.read.parquet(str(path)).repartition(3)) == file_fingerprint(path), name


def test_spark_fingerprint_of_no_rows_and_of_a_changed_row(spark: Any, tmp_path: Path) -> None:
    df = _chat_rows(20)
    df.head(0).write_parquet(tmp_path / "empty.parquet")
    assert spark_fingerprint(spark.read.parquet(str(tmp_path / "empty.parquet"))) == frame_fingerprint(df.head(0))
    df.write_parquet(tmp_path / "d.parquet")
    sdf = spark.read.parquet(str(tmp_path / "d.parquet"))
    from pyspark.sql import functions as F

    edited = sdf.withColumn("flag", F.when(F.col("id") == "c0005", ~F.col("flag")).otherwise(F.col("flag")))
    assert spark_fingerprint(edited) != spark_fingerprint(sdf) == frame_fingerprint(df)
