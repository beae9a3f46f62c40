"""The gate on Spark (GX's Spark datasource) gives the pandas path's results: same expectations, verdict, lines and JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from checks.gate import run_checks
from curation.core.config import ChecksConfig
from curation.core.engines import LocalEngine
from curation.core.rundir import DATASET, read_manifest
from curation.spark.engine import SparkEngine
from tests.checks.checks_fixtures import classification_rows, copy_run, make_run, messages_rows, preference_rows
from tests.cli_helpers import one_line_error, run_cli

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),  # PySpark 3.5's collect leaves py4j sockets to the GC
]


def _results(run_dir: Path) -> dict[str, Any]:
    """GX's results.json without what differs between any two validations (random expectation ids, times)."""
    data = json.loads((run_dir / "checks/results.json").read_text())
    for r in data["results"]:
        r["expectation_config"].pop("id")
    data.pop("meta")
    return data


def _checked(run_dir: Path, engine: Any, config: ChecksConfig | None = None) -> tuple[Any, dict[str, Any], str, dict[str, Any]]:
    result = run_checks(run_dir, engine=engine, config=config)  # None: the run's engine, spark (on the active session: the fixture's)
    section = read_manifest(run_dir)["checks"]
    assert section["engine"] == (engine.name if engine else "spark")
    kept = {k: v for k, v in section.items() if k not in ("checked_at", "engine", "sha256")}
    return result, _results(run_dir), (run_dir / "checks/verdict.json").read_text(), kept


def _assert_same_gate(
    run_dir: Path, spark: Any = None, config: ChecksConfig | None = None, no_load: pytest.MonkeyPatch | None = None
) -> Any:
    """Check a run made with `engine: spark` on pandas (`LocalEngine`), then as `tuneprep check` does by default: on Spark.

    ``spark``: an engine for the Spark side (default: the run's, on the active session). ``no_load``: make the
    driver's ``load_dataset`` fail on the Spark side, proof that the rows are read by the workers only.
    """
    local = _checked(run_dir, LocalEngine(), config)
    shutil.rmtree(run_dir / "checks")
    if no_load is not None:
        no_load.setattr("checks.gate.load_dataset", _no_load)
    remote = _checked(run_dir, spark, config)
    assert local[0].lines == remote[0].lines
    assert local[0].outcomes == remote[0].outcomes
    assert local[1] == remote[1]  # every expectation's config, success and result
    assert local[2] == remote[2]  # verdict.json, byte for byte
    assert local[3] == remote[3]  # the manifest's checks section
    return remote[0]


def _no_load(run_dir: Path) -> Any:
    raise AssertionError("the driver loaded the dataset on the Spark path")


def _failing(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Label variants, 12 ids used twice (more than the 10 rows a sample names), an empty text, a null label."""
    df = pl.DataFrame(rows)
    ids = [f"r{i % 28}" for i in range(df.height)]
    texts = ["   " if i == 5 else t for i, t in enumerate(df["text"])]
    labels = ["Billing " if i % 4 == 1 else None if i == 7 else v for i, v in enumerate(df["label"])]
    return df.with_columns(id=pl.Series(ids), text=pl.Series(texts), label=pl.Series(labels, dtype=pl.String))


def test_gate_on_spark_matches_pandas_on_passing_and_failing_runs(spark: Any, tmp_path: Path) -> None:
    run = make_run(tmp_path, classification_rows(40), stages=["normalize"], run={"engine": "spark"})
    assert _assert_same_gate(run).verdict == "pass"

    bad = copy_run(run, tmp_path / "bad", _failing(classification_rows(40)))
    failed = _assert_same_gate(bad)
    assert failed.verdict == "fail"
    names = {o.name for o in failed.failures}
    assert {"unique_ids", "not_empty:text", "not_null:label", "label_variants"} <= names
    unique = next(o for o in failed.outcomes if o.name == "unique_ids")
    assert unique.observed["unexpected"] == 24 and unique.observed["ids"][:3] == ["r0", "r1", "r2"]  # dataset order, not shuffle order


def test_gate_on_spark_matches_pandas_on_float_columns(spark: Any, tmp_path: Path) -> None:
    rows = [{**r, "margin": 0.5 + i} for i, r in enumerate(preference_rows(12))]
    run = make_run(tmp_path, rows, kind="preference", run={"engine": "spark"})
    assert "column_types:margin" in {o.name for o in _assert_same_gate(run).outcomes}


def test_spark_options_on_a_local_run_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    local = make_run(tmp_path, classification_rows(20), name="local")
    code, _, err = run_cli(["check", str(local), "--spark-master", "local[2]"], capsys)
    assert code == 2 and "`--spark-master` and `--spark-remote` need `--engine spark`" in one_line_error(err)


def _in_row_groups(run_dir: Path, rows: int) -> None:
    """Rewrite the run's dataset with row groups of ``rows`` rows: the same rows, so the same fingerprint."""
    path = run_dir / DATASET
    pl.read_parquet(path).write_parquet(path, row_group_size=rows)


def _tokenizer(path: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "ticket": 1, "about": 2, "the": 3}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]").save_pretrained(path)
    return path


def test_spark_workers_read_and_derive_the_dataset_in_units(spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Six units of 7 rows, one task each: the whole-dataset columns (label counts, every weight 0) and GX's samples
    in dataset order equal the pandas path's, with a tokenizer shipped to the workers, and the driver never loads the rows."""
    run = make_run(tmp_path, classification_rows(40), stages=["normalize"], run={"engine": "spark"})
    df = _failing(classification_rows(40))
    # 23 of 40 rows billing: the largest share, which polars computes as 23 * (1/40), one bit off 23/40
    df = df.with_columns(label=pl.when(pl.int_range(pl.len()).is_in([3, 11, 15])).then(pl.lit("billing")).otherwise(pl.col("label")))
    # the first unit's weights are all 0 (not the dataset's: no "every weight is 0" there), one negative, one repeat of 0
    weights = [0.0 if i < 7 else -1.0 if i == 20 else 1.0 for i in range(df.height)]
    df = df.with_columns(sample_weight=pl.Series(weights), repeat=pl.Series([0 if i == 30 else 1 for i in range(df.height)]))
    bad = copy_run(run, tmp_path / "bad", df)
    zero = copy_run(run, tmp_path / "zero", df.with_columns(sample_weight=pl.lit(0.0)))
    for run_dir in (bad, zero):
        _in_row_groups(run_dir, 7)
    engine = SparkEngine(spark, batch_rows=5)
    config = ChecksConfig(tokenizer=str(_tokenizer(tmp_path / "tok")))
    with monkeypatch.context() as m:
        failed = _assert_same_gate(bad, engine, config, no_load=m)
    names = {o.name for o in failed.failures + failed.warnings}
    assert {"unique_ids", "label_variants", "balance_columns"} <= names
    issues = next(o for o in failed.outcomes if o.name == "balance_columns")
    assert issues.observed["unexpected"] == 2  # the negative weight and the repeat of 0, not the first unit's zeros
    with monkeypatch.context() as m:
        zeros = _assert_same_gate(zero, engine, config, no_load=m)
    assert next(o for o in zeros.outcomes if o.name == "balance_columns").observed["unexpected"] == 40


def test_gate_on_spark_matches_pandas_on_messages(spark: Any, tmp_path: Path) -> None:
    rows = messages_rows(12)
    rows[3]["messages"] = [{"role": "assistant", "content": "no question"}]
    run = make_run(tmp_path, rows, kind="instruction", run={"engine": "spark"})
    issue = next(o for o in _assert_same_gate(run).outcomes if o.name == "messages_roles")
    assert not issue.success


def test_driver_path_ships_the_derived_frame_with_the_same_results(spark: Any, tmp_path: Path) -> None:
    """`run.spark_io: driver` (the run directory out of the workers' reach): the driver derives and ships the frame."""
    from checks.derive import derive
    from checks.gx import validate
    from checks.suites import build_suite

    df = _failing(classification_rows(40))
    frame = derive(df, "classification", residual_pii=None)
    specs = build_suite("classification", df.columns, ChecksConfig(), pii_ran=False, rewrites=[])
    names = {"text_columns": ["text"], "suite_name": "tuneprep_classification"}
    local, _ = validate(frame, specs, docs_dir=tmp_path / "local", **names)
    shipped, _ = validate(frame, specs, docs_dir=tmp_path / "spark", spark=spark, **names)
    assert shipped == local
    assert not local["unique_ids"].success


def test_gate_on_spark_matches_pandas_on_an_empty_dataset(spark: Any, tmp_path: Path) -> None:
    run = make_run(tmp_path, classification_rows(20), stages=["normalize"], run={"engine": "spark"})
    empty = copy_run(run, tmp_path / "empty", pl.read_parquet(run / DATASET).clear())
    assert _assert_same_gate(empty, SparkEngine(spark)).verdict == "fail"  # no rows: min_rows fails, on both engines
