"""File-mode label_audit on Spark (``spark_label_audit_files``): the response audit's files, stats and fidelity are the local stage's.

Classification rows need all rows' features at once: the file-mode function declines and the
runner's adapter runs the stage over the frame read on the driver, as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from curation.core import fidelity
from curation.core.config import parse_config
from curation.core.runner import _dropped_by_reason, run_pipeline
from curation.core.stage import StageContext
from curation.spark.engine import SparkEngine
from curation.spark.label_audit import spark_label_audit_files
from curation.stages.label_audit.stage import LabelAuditConfig, label_audit
from tests.data.jsonl_files import write_jsonl
from tests.spark.test_files import _no_shipping, _stats
from tests.spark.test_parity import _assert_same_run
from tests.spark.test_stage_parity import _answers, _tickets

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),  # PySpark 3.5's collect leaves py4j sockets to the GC
]

DROPS = {"response_truncated": "drop", "response_empty": "drop", "response_refusal": "drop"}


def _chats(df: pl.DataFrame) -> pl.DataFrame:
    """The same exchanges in the ``messages`` form, a system turn and an extra column in front."""
    turns = [
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": p}, {"role": "assistant", "content": c}]
        for p, c in zip(df["prompt"], df["completion"], strict=True)
    ]
    return df.select("id", source=pl.lit("chat"), messages=pl.Series(turns))


@pytest.mark.parametrize(
    ("form", "actions"), [("completion", DROPS), ("completion", {}), ("messages", DROPS)], ids=["drops", "flags only", "messages"]
)
def test_file_label_audit_of_responses_matches_the_local_stage(spark: Any, tmp_path: Path, form: str, actions: dict[str, str]) -> None:
    df = _answers(60) if form == "completion" else _chats(_answers(60))
    src, out = tmp_path / "input.parquet", tmp_path / "out"
    df.write_parquet(src, row_group_size=25)  # units never cross a row group: several units, uneven
    out.mkdir()
    cfg = LabelAuditConfig.model_validate({"actions": actions})
    ctx = StageContext(kind="instruction")
    local = label_audit(df, cfg, ctx)
    got = spark_label_audit_files(spark, src, out, cfg, ctx, batch_rows=10)
    assert got is not None
    assert sorted(p.name for p in out.iterdir()) == ["dropped.parquet", "findings.parquet", "output.parquet"]  # no scratch left
    assert_frame_equal(pl.read_parquet(out / "output.parquet"), local.kept, check_exact=True)
    assert_frame_equal(pl.read_parquet(out / "dropped.parquet"), local.dropped, check_exact=True)
    assert_frame_equal(pl.read_parquet(out / "findings.parquet"), local.findings, check_exact=True)
    assert got.stats == local.stats
    assert (got.kept, got.dropped, got.quarantined, got.kind) == (local.kept.height, local.dropped.height, 0, None)
    assert got.dropped_by_reason == _dropped_by_reason(local.dropped)
    assert got.fidelity == fidelity.measure(df, local.kept, ctx.kind)
    assert {"response_refusal", "response_echo", "response_truncated"} <= set(local.findings["issue"])
    assert local.dropped.height >= 5 if actions else local.dropped.is_empty()


def test_classification_is_left_to_the_adapter(spark: Any, tmp_path: Path) -> None:
    """TF-IDF and embedding fits need every row's features: None, so the runner reads the input on the driver."""
    src = tmp_path / "input.parquet"
    _tickets(30).write_parquet(src)
    got = spark_label_audit_files(spark, src, tmp_path, LabelAuditConfig(), StageContext(kind="classification"), batch_rows=10)
    assert got is None and sorted(p.name for p in tmp_path.iterdir()) == ["input.parquet"]


def _run(tmp: Path, kind: str, name: str, engine: Any = None) -> Any:
    if kind == "instruction":
        rows = _answers(40).with_columns(completion=pl.col("completion").replace("", "ok")).drop("id").to_dicts()
    else:
        rows = _tickets(40).select("text", "label").to_dicts()
    data = write_jsonl(tmp / f"{kind}.jsonl", rows)
    stages = ["normalize", {"label_audit": {"actions": DROPS, "folds": 3, "min_class_rows": 4}}]
    cfg = parse_config({"input": {"path": str(data), "kind": kind}, "stages": stages}, base_dir=tmp)
    return run_pipeline(cfg, out_dir=tmp / name, quiet=True, engine=engine)


def test_pipeline_in_file_mode_equals_the_local_engine(spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = {kind: _run(tmp_path, kind, f"local-{kind}") for kind in ("instruction", "classification")}
    spark_io = {}
    for kind in ("instruction", "classification"):
        with monkeypatch.context() as mp:
            if kind == "instruction":
                _no_shipping(mp)  # the instruction audit's rows never travel through the driver
            remote = _run(tmp_path, kind, f"files-{kind}", SparkEngine(spark, batch_rows=7))
        _assert_same_run(local[kind].run_dir, remote.run_dir)  # every parquet file, books and fingerprints
        assert _stats(local[kind].run_dir, "label_audit") == _stats(remote.run_dir, "label_audit"), kind
        metrics = json.loads(next(remote.run_dir.glob("stages/*-label_audit/stats.json")).read_text())["metrics"]
        spark_io[kind] = metrics.get("spark_io")
    assert spark_io == {"instruction": "files", "classification": None}  # classification: the adapter, the frame on the driver
    books = json.loads(next(local["instruction"].run_dir.glob("stages/*-label_audit/stats.json")).read_text())["books"]
    assert books["dropped"] >= 2
