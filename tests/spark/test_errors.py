"""Spark that cannot start is a one-line error, as every user mistake is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.data.jsonl_files import write_jsonl

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),  # PySpark 3.5's collect leaves py4j sockets to the GC
]


def _run(tmp_path: Path, *spark_args: str) -> tuple[int, list[str], str]:
    write_jsonl(tmp_path / "data.jsonl", [{"text": "hello there", "label": "a"}])
    config = tmp_path / "pipeline.yaml"
    config.write_text("input: {path: data.jsonl, kind: classification}\nstages: [normalize]\n", encoding="utf-8")
    env = {**os.environ, "JAVA_HOME": str(tmp_path / "no-java"), "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "curation.cli", "run", str(config), "--out", str(tmp_path / "run"), "--engine", "spark", "-q"]
    done = subprocess.run([*cmd, *spark_args], capture_output=True, text=True, timeout=120, env=env)
    return done.returncode, [line for line in done.stderr.splitlines() if line.startswith("error:")], done.stderr


def test_no_java_is_one_line(tmp_path: Path) -> None:
    code, errors, stderr = _run(tmp_path, "--spark-master", "local[1]")
    assert code == 2 and len(errors) == 1 and "Traceback" not in stderr
    assert "could not start Spark (local[1])" in errors[0] and "java -version" in errors[0]


def test_unreachable_connect_server_is_one_line_at_once(tmp_path: Path) -> None:
    code, errors, stderr = _run(tmp_path, "--spark-remote", "sc://127.0.0.1:9")  # the discard port: nothing listens
    assert code == 2 and len(errors) == 1 and "Traceback" not in stderr
    assert "no Spark Connect server answers at 127.0.0.1:9" in errors[0]
