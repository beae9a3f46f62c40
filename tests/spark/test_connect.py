"""The same code path over Spark Connect: `tuneprep run --engine spark --spark-remote local[2]` equals the local engine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyspark
import pytest

from checks.gate import run_checks
from curation.core.config import load_config
from curation.core.engines import LocalEngine
from curation.core.rundir import read_manifest
from curation.core.runner import run_pipeline
from tests.checks.checks_fixtures import classification_rows, copy_run, make_run
from tests.data.dedup_data import generate
from tests.data.jsonl_files import write_jsonl
from tests.spark.test_gate import _failing as failing
from tests.spark.test_gate import _results as gx_results

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),  # PySpark 3.5's collect leaves py4j sockets to the GC
]


@pytest.mark.skipif(
    int(pyspark.__version__.split(".")[0]) < 4, reason="before PySpark 4 a local Connect server needs the spark-connect jar from Maven"
)
def test_cli_over_spark_connect_matches_local(tmp_path: Path) -> None:
    docs, _ = generate(60, seed=4)
    write_jsonl(tmp_path / "data.jsonl", docs.drop("id").to_dicts())
    config = tmp_path / "pipeline.yaml"
    config.write_text("input: {path: data.jsonl, kind: text}\nstages: [normalize, dedup]\n", encoding="utf-8")
    local = run_pipeline(load_config(config), out_dir=tmp_path / "local", quiet=True)
    cmd = [sys.executable, "-m", "curation.cli", "run", str(config), "--out", str(tmp_path / "connect"), "-q"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([*cmd, "--engine", "spark", "--spark-remote", "local[2]"], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(tmp_path / "connect")
    remote = read_manifest(tmp_path / "connect")
    assert remote["dataset"]["fingerprint"] == local.dataset_fingerprint
    assert [s["books"] for s in remote["stages"]] == [s["books"] for s in read_manifest(local.run_dir)["stages"]]
    stats = json.loads(next((tmp_path / "connect").glob("stages/*-dedup/stats.json")).read_text())
    assert stats["metrics"]["engine"] == "spark" and stats["metrics"]["boilerplate"]["enabled"]  # boilerplate on, over Connect


@pytest.mark.skipif(
    int(pyspark.__version__.split(".")[0]) < 4, reason="before PySpark 4 a local Connect server needs the spark-connect jar from Maven"
)
def test_check_over_spark_connect_matches_pandas(tmp_path: Path) -> None:
    """`tuneprep check RUN --engine spark --spark-remote local[2]`: GX's Spark datasource on a Connect DataFrame, read and
    derived by the server's workers, gives the pandas path's verdict.json byte for byte and the same GX results."""
    run = make_run(tmp_path, classification_rows(40), stages=["normalize"])
    bad = copy_run(run, tmp_path / "bad", failing(classification_rows(40)))
    local = run_checks(bad, engine=LocalEngine())
    verdict, results = (bad / "checks/verdict.json").read_text(), gx_results(bad)
    shutil.rmtree(bad / "checks")
    cmd = [sys.executable, "-m", "curation.cli", "check", str(bad), "--engine", "spark", "--spark-remote", "local[2]"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 1, done.stderr[-2000:]  # the failing run fails its checks, over Connect too
    printed = done.stderr.splitlines()
    assert local.lines and all(line in printed for line in local.lines)
    assert (bad / "checks/verdict.json").read_text() == verdict
    assert gx_results(bad) == results
    assert read_manifest(bad)["checks"]["engine"] == "spark"
