"""The same code path over Spark Connect: `tuneprep run --engine spark --spark-remote local[2]` equals the local engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyspark
import pytest

from curation.core.config import load_config
from curation.core.rundir import read_manifest
from curation.core.runner import run_pipeline
from tests.data.dedup_data import generate
from tests.data.jsonl_files import write_jsonl

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
