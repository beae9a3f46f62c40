"""URI inputs (`file://` here; `s3://`, `hdfs://`... on a cluster) are read by Spark and ingested exactly as local files."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from curation.core.config import parse_config
from curation.core.masking import mask_path
from curation.core.rundir import read_manifest
from curation.core.runner import run_pipeline
from curation.spark.engine import SparkEngine
from tests.cli_helpers import one_line_error, run_cli
from tests.data.jsonl_files import write_jsonl

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),  # PySpark 3.5's collect leaves py4j sockets to the GC
]

ROWS = [{"text": f"ticket {i} about the printer on floor {i % 4}", "label": "ab"[i % 2]} for i in range(12)]


def _write(folder: Path, fmt: str) -> Path:
    if fmt == "jsonl":  # a bad line, a wrong type, a missing field: each quarantined with its error and line
        return write_jsonl(folder / "data.jsonl", [*ROWS[:4], b'{"text": oops', {"text": 7, "label": "a"}, {"label": "b"}, *ROWS[4:]])
    if fmt == "csv":
        with (folder / "data.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerows([["text", "label"], *[[r["text"], r["label"]] for r in ROWS[:5]], ["too", "many", "fields"]])
            writer.writerows([[r["text"], r["label"]] for r in ROWS[5:]])
        return folder / "data.csv"
    pl.DataFrame([*ROWS, {"text": None, "label": "a"}]).write_parquet(folder / "data.parquet")
    return folder / "data.parquet"


def _run(path: str, tmp: Path, name: str, engine: Any = None) -> Any:
    cfg = parse_config({"input": {"path": path, "kind": "classification"}, "stages": ["normalize"]}, base_dir=tmp)
    return run_pipeline(cfg, out_dir=tmp / name, quiet=True, engine=engine)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_uri_input_is_ingested_as_the_local_file(spark: Any, tmp_path: Path, fmt: str) -> None:
    path = _write(tmp_path, fmt)
    local = _run(str(path), tmp_path, "local")
    remote = _run(path.as_uri(), tmp_path, "spark", SparkEngine(spark))
    assert remote.dataset_fingerprint == local.dataset_fingerprint and remote.quarantined == local.quarantined >= 1
    lm, rm = read_manifest(local.run_dir), read_manifest(remote.run_dir)
    assert [s["books"] for s in rm["stages"]] == [s["books"] for s in lm["stages"]]
    quarantined = [pl.read_parquet(r.run_dir / "quarantine.parquet") for r in (local, remote)]
    assert_frame_equal(quarantined[0].drop("source"), quarantined[1].drop("source"))  # same errors, lines, ids, raw
    assert set(quarantined[1]["source"]) == {f"file:{path}"}  # named by the URI Spark read, not a local copy
    assert rm["inputs"] == [{"path": mask_path(f"file:{path}"), "sha256": lm["inputs"][0]["sha256"]}]
    if fmt == "jsonl":  # the input fingerprint names the URI, not the temporary copy: a rerun reuses every stage
        again = _run(path.as_uri(), tmp_path, "spark", SparkEngine(spark))
        assert all(s["skipped"] for s in read_manifest(again.run_dir)["stages"])


def test_missing_uri_is_one_input_error(spark: Any, tmp_path: Path) -> None:
    from curation.core.errors import InputError

    with pytest.raises(InputError, match=r"cannot be read by Spark \(PATH_NOT_FOUND\)"):
        _run((tmp_path / "nothing.jsonl").as_uri(), tmp_path, "spark", SparkEngine(spark))


def test_uri_with_the_local_engine_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", ROWS)
    config = tmp_path / "pipeline.yaml"
    config.write_text(f"input: {{path: '{data.as_uri()}', kind: classification}}\nstages: [normalize]\n", encoding="utf-8")
    code, _, err = run_cli(["run", str(config), "--out", str(tmp_path / "run")], capsys)
    line = one_line_error(err)
    assert code == 2 and "file:// URI, which only the Spark engine reads" in line and "`--engine spark`" in line
    assert not (tmp_path / "run").exists()


def test_a_killed_runs_input_copies_are_swept_by_the_next_fetch(tmp_path: Path) -> None:
    import subprocess
    import sys

    from curation.spark.inputs import PREFIX, sweep_stale_copies

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    stale = tmp_path / f"{PREFIX}{gone.stdout.strip()}-abc"  # its process has exited: a killed run's copy
    live = tmp_path / f"{PREFIX}{os.getpid()}-def"  # this process's own copy
    for folder in (stale, live):
        (folder / "00000").mkdir(parents=True)
        (folder / "00000" / "data.jsonl").write_text('{"text": "raw"}\n')
    assert sweep_stale_copies(tmp_path) == [stale]
    assert not stale.exists() and (live / "00000" / "data.jsonl").is_file()
