"""balance, label_audit and preferences on Spark equal the local stages: same rows, findings, stats and files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from curation.core.stage import StageContext, StageResult
from curation.spark.balance import spark_balance
from curation.spark.engine import SparkEngine
from curation.spark.label_audit import spark_label_audit
from curation.spark.preferences import spark_preferences
from curation.stages.balance.stage import BalanceConfig, balance
from curation.stages.label_audit.stage import LabelAuditConfig, label_audit
from curation.stages.preferences.stage import PreferencesConfig, preferences
from tests.data.alpaca_rows import alpaca_rows
from tests.data.label_data import generate as label_rows
from tests.data.preference_data import pairwise_ratings, score_ratings

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),  # PySpark 3.5's collect leaves py4j sockets to the GC
]


def _heavy(ctx: StageContext) -> dict[str, Any]:
    """The engines a local run built (Presidio for masking examples), without its embeddings: the Spark run must make its own."""
    return {k: v for k, v in ctx.engines.items() if not k.startswith(("encoder:", "embedding-cache:"))}


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
        {"embeddings": True, "max_embed": 24, "reference": "ref.parquet", "k_topics": 3},
    ],
)
def test_balance_matches_the_local_stage(spark: Any, tmp_path: Path, options: dict[str, Any]) -> None:
    df = _tickets(64)
    df.sample(30, seed=1).drop("id").with_columns(source=pl.lit("web")).write_parquet(tmp_path / "ref.parquet")
    cfg = BalanceConfig(**options)
    local_ctx = StageContext(kind="classification", config_dir=tmp_path)
    local = balance(df, cfg, local_ctx)
    ctx = StageContext(kind="classification", config_dir=tmp_path, engines=_heavy(local_ctx))
    remote = spark_balance(spark, df, cfg, ctx, batch_rows=25)
    assert local.findings.height > 0 and local.stats["lengths"]["outliers"]
    assert_same_result(local, remote)
    assert not any(k.startswith("encoder:") for k in ctx.engines)  # the sample was embedded on the cluster


def _answers(n: int) -> pl.DataFrame:
    rows = alpaca_rows(n, seed=2)
    prompts = [f"{r['instruction']}\n{r['input']}".strip() for r in rows]
    answers = [r["output"] for r in rows]
    for i in range(0, n, 7):
        answers[i] = answers[i][: len(answers[i]) // 2]  # cut off
    answers[1], answers[2], answers[4] = "", "I'm sorry, but I can't help with that.", prompts[4]
    return pl.DataFrame({"id": [f"a{i:03d}" for i in range(n)], "prompt": prompts, "completion": answers})


def test_label_audit_of_responses_matches_the_local_stage(spark: Any) -> None:
    df = _answers(60)
    cfg = LabelAuditConfig(actions={"response_truncated": "drop", "response_empty": "drop"})  # type: ignore[dict-item]
    local = label_audit(df, cfg, StageContext(kind="instruction"))
    ctx = StageContext(kind="instruction")
    assert SparkEngine(spark).where("label_audit", df, cfg, ctx) == "spark"
    remote = spark_label_audit(spark, df, cfg, ctx, batch_rows=16)
    assert local.dropped.height >= 5 and {"response_refusal", "response_echo"} <= set(local.findings["issue"])
    assert_same_result(local, remote)


def test_label_audit_with_embedding_features_matches_the_local_stage(spark: Any) -> None:
    df = _tickets(60)
    cfg = LabelAuditConfig(features="embeddings", folds=3, min_class_rows=4, actions={"label_conflict": "drop"})  # type: ignore[dict-item]
    local = label_audit(df, cfg, StageContext(kind="classification"))
    ctx = StageContext(kind="classification")
    engine = SparkEngine(spark)
    assert engine.where("label_audit", df, cfg, ctx) == "spark"
    assert engine.where("label_audit", df, LabelAuditConfig(), ctx) == "spark-driver"  # TF-IDF: one vocabulary over all rows
    remote = spark_label_audit(spark, df, cfg, ctx, batch_rows=16)
    assert local.stats["confident_learning"]["ran"] and local.findings.filter(pl.col("issue") == "label_mislabel").height > 0
    assert_same_result(local, remote)
    assert not any(k.startswith("encoder:") for k in ctx.engines)  # the rows were embedded on the cluster


H, A = "\n\nHuman: ", "\n\nAssistant: "


def _ratings(form: str) -> pl.DataFrame:
    if form == "scores":
        df = score_ratings(12, seed=3)[0].head(150)
        bad = pl.DataFrame(
            {"prompt": [None, "p-extra"], "response": ["r", "only one"], "score": [1.0, None]}, schema_overrides={"prompt": pl.String}
        )
        return pl.concat(
            [df, bad.with_columns([pl.lit(None, df.schema[c]).alias(c) for c in df.columns if c not in bad.columns])], how="diagonal"
        )
    if form == "pairwise":
        df = pairwise_ratings(10, seed=4)[0].head(120)
        return df.with_columns(winner=pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("maybe")).otherwise(pl.col("winner")))
    chosen = [f"{H}question {i % 9}{A}a careful answer number {i} with detail" for i in range(40)]
    rejected = [f"{H}question {i % 9}{A}{'a careful answer number' if i % 4 else 'meh'} {i + 1}" for i in range(40)]
    chosen[3], rejected[6] = "no markers at all", chosen[6]  # malformed; identical
    return pl.DataFrame({"chosen": chosen, "rejected": rejected, "annotator": [f"w{i % 3}" for i in range(40)]})


@pytest.mark.parametrize(
    ("form", "options"),
    [
        ("scores", {"max_pairs_per_prompt": 2, "strategy": "all_pairs", "min_margin": 0.2}),
        ("scores", {"strategy": "best_vs_random", "aggregate": "median"}),
        ("pairwise", {"min_agreement": 0.6}),
        ("transcripts", {"format": "conversational"}),
    ],
)
def test_preferences_matches_the_local_stage(spark: Any, form: str, options: dict[str, Any]) -> None:
    df = _ratings(form)
    df = df.with_columns(id=pl.format("r{}", pl.int_range(pl.len()))) if "id" not in df.columns else df
    cfg = PreferencesConfig(**options)
    local = preferences(df, cfg, StageContext(kind="ratings", seed=7))
    remote = spark_preferences(spark, df, cfg, StageContext(kind="ratings", seed=7), batch_rows=16)
    assert local.kept.height > 3 and local.dropped.height > 0 and local.findings.height > 0
    assert_same_result(local, remote)
