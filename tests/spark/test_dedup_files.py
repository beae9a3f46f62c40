"""File-mode dedup on Spark (``spark_dedup_files``) writes what the local stage gives: same rows, order, findings, stats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from curation.core import fidelity
from curation.core.config import parse_config
from curation.core.runner import run_pipeline
from curation.core.stage import StageContext, StageResult
from curation.spark.dedup import spark_dedup_files
from curation.spark.unit_files import units
from curation.stages.dedup.stage import DedupConfig, dedup
from tests.data.dedup_data import generate, generate_boilerplate
from tests.data.jsonl_files import write_jsonl
from tests.spark.test_parity import _boiler_messages

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),  # PySpark 3.5's collect leaves py4j sockets to the GC
]


def _same_files(
    df: pl.DataFrame, cfg: DedupConfig, ctx: StageContext, spark: Any, tmp: Path, *, batch_rows: int = 50
) -> tuple[StageResult, Any]:
    """Run both on ``df`` (written in row groups of 64 rows: units never cross one) and compare everything."""
    src, out = tmp / "input.parquet", tmp / "out"
    df.write_parquet(src, row_group_size=64)
    out.mkdir()
    local = dedup(df, cfg, ctx)
    got = spark_dedup_files(spark, src, out, cfg, ctx, batch_rows=batch_rows)
    assert sorted(p.name for p in out.iterdir()) == ["dropped.parquet", "findings.parquet", "output.parquet"]  # no scratch left
    assert_frame_equal(pl.read_parquet(out / "output.parquet"), local.kept, check_exact=True)
    assert_frame_equal(pl.read_parquet(out / "dropped.parquet"), local.dropped, check_exact=True)
    assert_frame_equal(pl.read_parquet(out / "findings.parquet"), local.findings, check_exact=True)
    assert {k: v for k, v in got.stats.items() if k != "spark"} == local.stats
    assert (got.kept, got.dropped, got.quarantined) == (local.kept.height, local.dropped.height, 0)
    assert got.dropped_by_reason == dict(sorted(local.dropped.group_by("reason").len().iter_rows()))
    assert got.fidelity == fidelity.measure(df, local.kept, ctx.kind)
    return local, got


FRAMES = {"text": lambda: generate(160, seed=1)[0], "boiler chat": lambda: _boiler_messages(200)}


@pytest.mark.parametrize(
    ("frame", "options"),
    [
        ("text", {"keep": "longest", "minhash": {"verify": "minhash", "num_perm": 64}, "boilerplate": {"enabled": False}}),
        ("text", {"near": False, "keep": "best"}),  # exact only; `best` with the PII counts of an earlier stage
        ("boiler chat", {"boilerplate": {"min_docs": 3}}),  # two parts (prompt turns, answer), each verified on its own
    ],
)
def test_file_dedup_matches_the_local_stage(spark: Any, tmp_path: Path, frame: str, options: dict[str, Any]) -> None:
    df = FRAMES[frame]()
    ctx = StageContext(kind="text" if frame == "text" else "instruction")
    if options.get("keep") == "best":
        pii = pl.DataFrame({"id": df["id"].gather(np.arange(0, df.height, 3)).to_list() * 2})
        ctx.artifacts["pii"] = StageResult(kept=df.clear(), dropped=df.clear(), findings=pii, stats={})
    local, _ = _same_files(df, DedupConfig.model_validate(options), ctx, spark, tmp_path)
    assert local.findings.height > 10


def test_file_dedup_with_boilerplate_against_an_earlier_run(spark: Any, tmp_path: Path) -> None:
    docs, _ = generate_boilerplate(240, seed=6)
    first = write_jsonl(tmp_path / "first.jsonl", docs.head(120).drop("id").to_dicts())
    cfg = parse_config({"input": {"path": str(first), "kind": "text"}, "stages": ["dedup"]}, base_dir=tmp_path)
    earlier = run_pipeline(cfg, out_dir=tmp_path / "first", quiet=True)
    local, _ = _same_files(
        docs.tail(120),
        DedupConfig.model_validate({"against": str(earlier.run_dir)}),
        StageContext(kind="text", config_dir=tmp_path),
        spark,
        tmp_path,
    )
    assert (local.findings["kept_from"] != "input").sum() > 0 and local.stats["boilerplate"]["pairs_discounted"] > 0
    assert local.stats["boilerplate"]["blocks"]


def test_file_dedup_caps_huge_buckets(spark: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = " ".join(f"w{i}" for i in range(40))
    df = pl.DataFrame({"id": [f"r{i}" for i in range(60)], "text": [f"{base} tail{int(k)}" for k in rng.integers(0, 10_000, 60)]})
    _, got = _same_files(df, DedupConfig.model_validate({"boilerplate": {"enabled": False}}), StageContext(kind="text"), spark, tmp_path)
    assert got.stats["spark"]["capped_buckets"] > 0 and got.stats["spark"]["largest_bucket"] > 33


@pytest.mark.parametrize("rows", [0, 150])
def test_file_dedup_runs_on_the_driver_when_it_rewrites_texts_or_has_no_rows(spark: Any, tmp_path: Path, rows: int) -> None:
    """``strip_boilerplate`` rewrites the kept texts (fidelity measures them): the stage runs over the frame read on the driver."""
    cfg = DedupConfig.model_validate({"strip_boilerplate": True, "boilerplate": {"min_docs": 3}})
    local, got = _same_files(generate_boilerplate(150, seed=4)[0].head(rows), cfg, StageContext(kind="text"), spark, tmp_path)
    assert local.stats["boilerplate"]["stripped_rows"] > 0 if rows else got.kept == 0
    assert got.fidelity is not None and got.fidelity["rows_rewritten"] == local.stats["boilerplate"].get("stripped_rows", 0)


def test_units_follow_the_row_groups(tmp_path: Path) -> None:
    pl.DataFrame({"x": range(150)}).write_parquet(tmp_path / "a.parquet", row_group_size=64)
    assert units(tmp_path / "a.parquet", 50) == [(0, 32), (32, 32), (64, 32), (96, 32), (128, 22)]  # even pieces within each group
