"""balance, label_audit and preferences on Spark equal the local stages: same rows, findings, stats and files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from curation.core.stage import StageContext, StageResult
from curation.spark.balance import spark_balance
from curation.stages.balance.stage import BalanceConfig, balance
from tests.data.label_data import generate as label_rows

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),  # PySpark 3.5's collect leaves py4j sockets to the GC
]


def assert_same_result(local: StageResult, remote: StageResult) -> None:
    for part in ("kept", "dropped", "findings", "quarantined"):
        assert_frame_equal(getattr(local, part), getattr(remote, part), check_exact=True)
    assert local.stats == remote.stats
    assert local.files == remote.files
    assert local.kind == remote.kind


def _tickets(n: int) -> pl.DataFrame:
    df, _ = label_rows(n, seed=5, conflicts=4)
    sources = pl.Series([["mail", "chat", "phone", None, "mail"][i % 5] for i in range(df.height)])
    texts = df["text"].to_list()
    texts[3], texts[7] = "", "x " * 400  # an empty row and a long outlier
    return df.with_columns(source=sources, text=pl.Series(texts))


@pytest.mark.parametrize(
    "options",
    [
        {"embeddings": False, "facets": ["label", "source"], "reference": "ref.parquet", "target": {"rebalance": "down"}},
        {"embeddings": False, "min_count": 30, "target": {"shares": "uniform", "rebalance": "up"}},
        {"embeddings": True, "max_embed": 40, "reference": "ref.parquet", "k_topics": 3},
    ],
)
def test_balance_matches_the_local_stage(spark: Any, tmp_path: Path, options: dict[str, Any]) -> None:
    df = _tickets(96)
    df.sample(50, seed=1).drop("id").with_columns(source=pl.lit("web")).write_parquet(tmp_path / "ref.parquet")
    cfg = BalanceConfig(**options)
    local = balance(df, cfg, StageContext(kind="classification", config_dir=tmp_path))
    ctx = StageContext(kind="classification", config_dir=tmp_path)
    remote = spark_balance(spark, df, cfg, ctx, batch_rows=25)
    assert local.findings.filter(pl.col("finding") == "length_outlier").height > 0
    assert_same_result(local, remote)
    assert not any(k.startswith("encoder:") for k in ctx.engines)  # the sample was embedded on the cluster
