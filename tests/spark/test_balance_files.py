"""File-mode balance on Spark (``spark_balance_files``) writes what the local stage gives: rows, order, weights, findings, stats, charts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from curation.core import fidelity
from curation.core.errors import ConfigError
from curation.core.stage import StageContext
from curation.spark.balance import _decide, _sample, spark_balance_files
from curation.stages.balance.representativeness import seeded_sample
from curation.stages.balance.stage import BalanceConfig, balance
from tests.spark.test_stage_parity import _heavy, _tickets

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),  # PySpark 3.5's collect leaves py4j sockets to the GC
]


@pytest.mark.parametrize(
    "options",
    [
        {"embeddings": False, "facets": ["label", "source"], "reference": "ref.parquet", "target": {"rebalance": "down"}},  # drops rows
        {"embeddings": False, "min_count": 30, "target": {"shares": "uniform", "rebalance": "up"}},  # `repeat` and `sample_weight`
    ],
)
def test_file_balance_matches_the_local_stage(spark: Any, tmp_path: Path, options: dict[str, Any]) -> None:
    df = _tickets(64)
    df.sample(30, seed=1).drop("id").with_columns(source=pl.lit("web")).write_parquet(tmp_path / "ref.parquet")
    src, out = tmp_path / "input.parquet", tmp_path / "out"
    df.write_parquet(src, row_group_size=32)  # units of 25 rows never cross a row group: several per group
    out.mkdir()
    cfg = BalanceConfig(**options)
    local_ctx = StageContext(kind="classification", config_dir=tmp_path)
    local = balance(df, cfg, local_ctx)
    ctx = StageContext(kind="classification", config_dir=tmp_path, engines=_heavy(local_ctx))
    got = spark_balance_files(spark, src, out, cfg, ctx, batch_rows=25)
    assert sorted(p.name for p in out.iterdir()) == ["dropped.parquet", "findings.parquet", "output.parquet"]  # no scratch left
    assert_frame_equal(pl.read_parquet(out / "output.parquet"), local.kept, check_exact=True)
    assert_frame_equal(pl.read_parquet(out / "dropped.parquet"), local.dropped, check_exact=True)
    assert_frame_equal(pl.read_parquet(out / "findings.parquet"), local.findings, check_exact=True)
    assert got.stats == local.stats and got.files == local.files
    assert (got.kept, got.dropped, got.quarantined) == (local.kept.height, local.dropped.height, 0)
    assert got.dropped_by_reason == ({"rebalance": local.dropped.height} if local.dropped.height else {})
    assert got.fidelity == fidelity.measure(df, local.kept, ctx.kind)
    assert "sample_weight" in local.kept.columns and local.findings.height > 0 and local.stats["lengths"]["outliers"]
    assert ("repeat" in local.kept.columns) == (cfg.target is not None and cfg.target.rebalance == "up")
    assert local.dropped.height == (56 if cfg.target and cfg.target.rebalance == "down" else 0)


@pytest.mark.parametrize("target", [None, {"rebalance": "down"}])
def test_the_embedding_sample_is_the_local_stages(tmp_path: Path, target: dict[str, Any] | None) -> None:
    """With embeddings the driver reads only the kept rows ``embedding_stats`` embeds: the local stage's seeded sample
    (whose own seeded sample is then all of it). The embedding on the cluster is ``test_stage_parity``'s."""
    df = _tickets(64)
    df.write_parquet(tmp_path / "input.parquet", row_group_size=32)
    cfg, ctx = BalanceConfig(max_embed=10, target=target), StageContext(kind="classification", seed=3)  # type: ignore[arg-type]
    verdicts, kept_ids, _ = _decide(tmp_path / "input.parquet", df.clear(), cfg, ctx)
    kept_rows = verdicts.filter(pl.col("reason").is_null())["_tuneprep_row"].to_numpy()
    sample = _sample(tmp_path / "input.parquet", kept_rows, kept_ids, cfg, ctx)
    kept = balance(df, cfg.model_copy(update={"embeddings": False}), ctx).kept
    assert kept.height > cfg.max_embed == sample.height
    assert_frame_equal(sample, df.filter(pl.col("id").is_in(kept["id"].implode())).gather(seeded_sample(kept.height, 10, 3, kept["id"])))
    assert seeded_sample(sample.height, cfg.max_embed, ctx.seed, sample["id"]).tolist() == list(range(sample.height))


def test_file_balance_reports_a_missing_target_facet_as_locally(spark: Any, tmp_path: Path) -> None:
    df = _tickets(8)
    df.write_parquet(tmp_path / "input.parquet")
    cfg = BalanceConfig(embeddings=False, target={"facet": "tier"})  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as local:
        balance(df, cfg, StageContext(kind="classification"))
    with pytest.raises(ConfigError) as remote:
        spark_balance_files(spark, tmp_path / "input.parquet", tmp_path, cfg, StageContext(kind="classification"), batch_rows=4)
    assert str(remote.value) == str(local.value)
