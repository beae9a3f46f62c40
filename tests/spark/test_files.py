"""File mode (`run.spark_io: files`, the default): workers read and write the run directory, the driver never ships rows.

The per-row stages give the local engine's files, fingerprints and stats.json; `run.spark_io: driver`
still ships the rows; a worker that cannot see the run directory is a one-line error.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import curation.spark.rows
import curation.spark.session
from curation.core import fidelity
from curation.core.config import parse_config
from curation.core.errors import RunError
from curation.core.rundir import read_manifest
from curation.core.runner import run_pipeline
from curation.core.stage import StageContext
from curation.spark import files
from curation.spark.engine import SparkEngine
from curation.stages.normalize.stage import NormalizeConfig
from tests.data.jsonl_files import write_jsonl
from tests.spark.test_parity import _assert_same_run

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),  # PySpark 3.5's collect leaves py4j sockets to the GC
]

PEOPLE = [("Maria Lopez", "maria.lopez@example.com"), ("Ken Adams", "ken.adams@example.org"), ("Ana Silva", "ana@silva.net")]


def _text(i: int) -> str:
    name, mail = PEOPLE[i % 3]
    text = f"\u200bthe refund for order {i} has not arrived  \t "
    return text + (f" Contact {name} at {mail} or 415-555-01{i:02d}." if i % 4 == 0 else "")


def _rows(kind: str) -> list[Any]:
    if kind == "text":
        rows: list[Any] = [{"text": _text(i), "source": "mail"} for i in range(22)]
        rows.append({"text": "\u200b\u200b"})  # empty after normalize: dropped
    else:
        rows = [
            {"messages": [{"role": "user", "content": "  help me\u200b "}, {"role": "assistant", "content": _text(i)}]} for i in range(20)
        ]
    return [*rows, b"{oops"]  # quarantined at ingest


def _run(tmp: Path, kind: str, name: str, engine: Any = None, **run: Any) -> Any:
    data = write_jsonl(tmp / f"{kind}.jsonl", _rows(kind))
    stages = ["normalize", {"pii": {"workers": 1}}]
    cfg = parse_config({"input": {"path": str(data), "kind": kind}, "stages": stages, "run": run}, base_dir=tmp)
    return run_pipeline(cfg, out_dir=tmp / name, quiet=True, engine=engine)


def _stats(run_dir: Path, stage: str) -> dict[str, Any]:
    """A stage's stats.json without what differs by engine and by run: timings, and where it ran."""
    stats = json.loads(next(run_dir.glob(f"stages/*-{stage}/stats.json")).read_text(encoding="utf-8"))
    for key in ("seconds", "cpu_seconds"):
        stats.pop(key)
    for key in ("engine", "spark_io"):
        stats["metrics"].pop(key, None)
    return stats


def _no_shipping(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shipping rows from the driver fails the test: file mode must not collect or ship the per-row stages' rows."""

    def refuse(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the driver shipped rows to Spark")

    monkeypatch.setattr(curation.spark.session, "ship", refuse)
    monkeypatch.setattr(curation.spark.rows, "ship", refuse)
    monkeypatch.setattr(curation.spark.rows, "run_per_row", refuse)


@pytest.mark.parametrize("kind", ["text", "instruction"])
def test_per_row_stages_in_file_mode_equal_the_local_engine(spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    local = _run(tmp_path, kind, "local")
    _no_shipping(monkeypatch)
    remote = _run(tmp_path, kind, "files", SparkEngine(spark, batch_rows=5))  # several units per stage
    _assert_same_run(local.run_dir, remote.run_dir)  # every parquet file, books and fingerprints
    for stage in ("normalize", "pii"):
        assert _stats(local.run_dir, stage) == _stats(remote.run_dir, stage), stage
        metrics = json.loads(next(remote.run_dir.glob(f"stages/*-{stage}/stats.json")).read_text())["metrics"]
        assert (metrics["engine"], metrics["spark_io"]) == ("spark", "files")
    manifest = read_manifest(remote.run_dir)
    assert manifest["stages"][1]["fidelity"]["rows_rewritten"] > 10 and _stats(remote.run_dir, "pii")["fidelity"]["top_replaced"]
    assert manifest["stages"][1]["books"]["dropped"] == (kind == "text")  # the zero-width-only text
    assert pl.read_parquet(remote.run_dir / "stages/02-pii/findings.parquet").height >= 5
    assert not list(remote.run_dir.glob("stages/**/parts")) and not list(remote.run_dir.glob("**/.*.tmp"))


def test_driver_io_ships_the_rows_and_equals_the_local_engine(spark: Any, tmp_path: Path) -> None:
    local = _run(tmp_path, "text", "local")
    shipped: list[int] = []
    real_ship = curation.spark.rows.ship

    def counting(*a: Any, **k: Any) -> Any:
        shipped.append(1)
        return real_ship(*a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(curation.spark.rows, "ship", counting)
        remote = _run(tmp_path, "text", "driver", SparkEngine(spark, batch_rows=5), spark_io="driver")
    _assert_same_run(local.run_dir, remote.run_dir)
    assert len(shipped) == 2  # normalize and pii, each shipped from the driver
    assert "spark_io" not in json.loads(next(remote.run_dir.glob("stages/*-normalize/stats.json")).read_text())["metrics"]


def test_a_worker_that_cannot_see_the_run_directory_is_a_one_line_error(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "plan_units", lambda _src, _rows: [(0, 0, 5)])  # as if the driver saw a file the workers do not
    with pytest.raises(RunError) as err:
        files.per_row(
            spark, tmp_path / "gone.parquet", tmp_path / "out", NormalizeConfig(), StageContext(kind="text"), batch_rows=5, name="normalize"
        )
    assert "`run.spark_io: driver`" in str(err.value) and "\n" not in str(err.value)


def test_fidelity_merged_over_batches_equals_the_whole_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(1)
    words = ["alpha", "beta", "Jane", "Doe", "415-555-0199", "  ", "x"]
    ids = [f"r{i}" for i in range(600)]
    before = pl.DataFrame(
        {
            "id": ids,
            "prompt": [" ".join(rng.choices(words, k=8)) for _ in ids],
            "completion": [" ".join(rng.choices(words, k=5)) for _ in ids],
        }
    )
    after = before.with_columns(pl.col("prompt").str.replace("Jane", "<PERSON>"), pl.col("completion").str.replace_all("  ", " "))
    after = after.filter(pl.col("id") != "r5")
    monkeypatch.setattr(fidelity, "MAX_DIFF_ROWS", 70)  # the sample by id hash spans batches
    whole = fidelity.measure(before, after, "instruction")
    parts = [
        fidelity.partial(before.slice(s, 90), after.filter(pl.col("id").is_in(ids[s : s + 90])), "instruction") for s in range(0, 600, 90)
    ]
    merged = fidelity.merge([p for p, _ in parts], pl.concat([d for _, d in parts]).lazy())
    assert whole is not None and whole["rows_diffed"] == 70 and whole["top_replaced"]
    assert merged == whole
