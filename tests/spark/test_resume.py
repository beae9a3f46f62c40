"""A Spark run killed after its first stage resumes as a local run does: finished stages reused, same dataset, books balanced."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import curation.core.runner
from curation.core.config import load_config
from curation.core.rundir import read_manifest
from curation.core.runner import run_pipeline
from curation.spark.engine import SparkEngine
from tests.data.dedup_data import generate
from tests.data.jsonl_files import write_jsonl

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),  # PySpark 3.5's collect leaves py4j sockets to the GC
]

STAGES = ("00-ingest", "01-normalize", "02-dedup")


def _kill_after_first_stage(cmd: list[str], run_dir: Path) -> set[str]:
    """Start ``cmd``, SIGKILL it (the JVM and Python workers too) once normalize has finished; the stages done by then."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not (run_dir / "stages/01-normalize/_SUCCESS").is_file():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else "the run ended early"
            assert time.monotonic() < deadline, "normalize did not finish in 240 s"
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the JVM and the Python workers die with it
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    return {s for s in STAGES if (run_dir / "stages" / s / "_SUCCESS").is_file()}


def test_killed_spark_run_resumes_with_the_local_engines_result(spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs, _ = generate(80, seed=5)
    write_jsonl(tmp_path / "data.jsonl", [*docs.drop("id").to_dicts()[:40], b'{"text": oops', *docs.drop("id").to_dicts()[40:]])
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        "input: {path: data.jsonl, kind: text}\nstages: [normalize, {dedup: {boilerplate: {enabled: false}}}]\n", encoding="utf-8"
    )
    reference = run_pipeline(load_config(config), out_dir=tmp_path / "local", quiet=True)

    run_dir = tmp_path / "spark"
    cmd = [sys.executable, "-m", "curation.cli", "run", str(config), "--out", str(run_dir), "-q", "--engine", "spark"]
    done = _kill_after_first_stage([*cmd, "--spark-master", "local[2]"], run_dir)
    assert {"00-ingest", "01-normalize"} <= done and not (run_dir / "manifest.json").exists()

    normalize = json.loads((run_dir / "stages/01-normalize/stats.json").read_text())["metrics"]
    assert normalize["spark_io"] == "files"  # run.spark_io defaults to files: the workers wrote the stage's parts

    def no_frames(*_a: Any) -> Any:
        raise AssertionError("a resumed stage's rows were read back on the driver")

    monkeypatch.setattr(curation.core.runner, "_read_stage", no_frames)  # file mode checks finished stages by hashes and fingerprints
    cfg = load_config(config)
    resumed = run_pipeline(
        cfg.model_copy(update={"run": cfg.run.model_copy(update={"engine": "spark"})}), out_dir=run_dir, engine=SparkEngine(spark)
    )
    manifest = read_manifest(run_dir)
    assert [s["skipped"] for s in manifest["stages"]] == [s in done for s in STAGES]
    assert resumed.dataset_fingerprint == reference.dataset_fingerprint
    assert [s["books"] for s in manifest["stages"]] == [s["books"] for s in read_manifest(reference.run_dir)["stages"]]
    for stage in manifest["stages"]:
        books = stage["books"]
        assert books["rows_in"] == books["kept"] + books["dropped"] + books["quarantined"], stage["name"]
    assert manifest["stages"][0]["books"]["quarantined"] == 1 and resumed.quarantined == 1
    assert_frame_equal(pl.read_parquet(run_dir / "quarantine.parquet"), pl.read_parquet(reference.run_dir / "quarantine.parquet"))
    assert not list(run_dir.glob("**/.*.tmp")) and not list(run_dir.glob("stages/*/parts"))  # what the killed stage left is swept
