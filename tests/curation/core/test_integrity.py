"""Fingerprints that tell floats apart, HMAC signatures, the run lock, interrupted runs and verified reuse."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from curation.core.errors import ConfigError, RunError
from curation.core.integrity import LOCK, acquire_lock, lock_holder, signature_status, signed, signing_key, this_process
from curation.core.ledger import Ledger
from curation.core.rundir import frame_fingerprint, read_manifest, stale_temporaries

KEY = "unit-test-signing-key-0123456789"
GOOD = [{"text": f"ticket number {i} about billing", "label": "billing" if i % 3 else "technical"} for i in range(12)]


# ---------------------------------------------------------------------------- fingerprints
@pytest.mark.parametrize("dtype", [pl.Float64, pl.Float32])
def test_fingerprint_tells_nan_infinities_null_and_negative_zero_apart(dtype: pl.DataType) -> None:
    values = [None, float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1.5]
    fps = {frame_fingerprint(pl.DataFrame({"m": [v]}, schema={"m": dtype})) for v in values}
    assert len(fps) == len(values)


def test_fingerprint_tells_nested_nan_from_null() -> None:
    def fp(v: float | None) -> str:
        return frame_fingerprint(pl.DataFrame({"l": [[1.0, v]], "s": [{"x": v, "y": "a"}]}))

    assert len({fp(None), fp(float("nan")), fp(float("inf"))}) == 3


def test_fingerprint_is_stable_and_ignores_column_and_row_order() -> None:
    df = pl.DataFrame({"a": [1.0, None, float("nan")], "b": ["x", "y", "z"]})
    assert frame_fingerprint(df) == frame_fingerprint(df.select("b", "a")) == frame_fingerprint(df.clone())
    assert frame_fingerprint(df) == frame_fingerprint(df.reverse())  # v4: the rows count, not their order
    assert frame_fingerprint(df) != frame_fingerprint(df.with_columns(pl.col("b").reverse()))


# ---------------------------------------------------------------------------- signatures
def test_signature_detects_any_edit_and_another_key() -> None:
    key = KEY.encode()
    doc = signed({"dataset": {"fingerprint": "abc"}, "checks": {"verdict": "pass"}}, key)
    assert signature_status(doc, key) == "valid"
    assert signature_status({**doc, "dataset": {"fingerprint": "abd"}}, key) == "invalid"
    assert signature_status(doc, b"another-key-of-sixteen-bytes") == "other_key"
    assert signature_status({k: v for k, v in doc.items() if k != "signature"}, key) == "unsigned"
    assert signature_status(doc, None) == "no_key"
    assert "signature" not in signed(doc, None)


def test_key_comes_from_the_environment_or_a_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNEPREP_SIGNING_KEY", raising=False)
    monkeypatch.delenv("TUNEPREP_SIGNING_KEY_FILE", raising=False)
    assert signing_key() is None
    (tmp_path / "key").write_text(KEY + "\n")
    monkeypatch.setenv("TUNEPREP_SIGNING_KEY_FILE", str(tmp_path / "key"))
    assert signing_key() == KEY.encode()
    monkeypatch.setenv("TUNEPREP_SIGNING_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="cannot read the key file"):
        signing_key()
    monkeypatch.setenv("TUNEPREP_SIGNING_KEY", "short")
    with pytest.raises(ConfigError, match="at least 16 bytes, got 5") as e:
        signing_key()
    assert "short" not in str(e.value)  # the key is never echoed


def test_rerun_does_not_sign_an_edited_verdict(make_run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from checks.gate import run_checks

    monkeypatch.setenv("TUNEPREP_SIGNING_KEY", KEY)
    first = make_run(GOOD, stages=["normalize"])
    run_checks(first.run_dir)
    manifest = read_manifest(first.run_dir)
    manifest["checks"]["verdict"] = "pass "  # any edit, then a rerun: the edited section is dropped, not re-signed
    (first.run_dir / "manifest.json").write_text(json.dumps(manifest))
    make_run(GOOD, stages=["normalize"])
    again = read_manifest(first.run_dir)
    assert "checks" not in again and signature_status(again, KEY.encode()) == "valid"


def test_edited_stage_marker_is_recomputed_with_a_key(make_run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEPREP_SIGNING_KEY", KEY)
    first = make_run(GOOD, stages=["normalize"])
    marker_path = first.run_dir / "stages/01-normalize/_SUCCESS"
    marker = json.loads(marker_path.read_text())
    marker["sensitive_files"] = []  # e.g. hide raw files from `clean`
    marker_path.write_text(json.dumps(marker))
    logged: list[str] = []
    from curation.core.config import parse_config
    from curation.core.runner import run_pipeline

    cfg = parse_config(
        {"input": {"path": str(first.run_dir.parents[1] / "data/run.jsonl"), "kind": "classification"}, "stages": ["normalize"]}
    )
    run_pipeline(cfg, out_dir=first.run_dir, log=logged.append)
    assert "01-normalize: not reused, its _SUCCESS was edited; recomputing" in logged
    assert [s["skipped"] for s in read_manifest(first.run_dir)["stages"]] == [True, False]


def test_output_edited_consistently_with_its_marker_still_changes_the_chain(make_run: Any) -> None:
    """Without a key a marker can be rewritten too; the next stage's input fingerprint is the new output's, so it recomputes."""
    first = make_run(GOOD, stages=["normalize", "dedup"])
    stage = first.run_dir / "stages/01-normalize"
    df = pl.read_parquet(stage / "output.parquet").head(6)
    df.write_parquet(stage / "output.parquet")
    from curation.core.rundir import file_sha256

    marker = json.loads((stage / "_SUCCESS").read_text())
    marker["output_fingerprint"] = frame_fingerprint(df)
    marker["sha256"]["output.parquet"] = file_sha256(stage / "output.parquet")
    (stage / "_SUCCESS").write_text(json.dumps(marker))
    again = make_run(GOOD, stages=["normalize", "dedup"])
    assert [s["skipped"] for s in read_manifest(again.run_dir)["stages"]] == [True, True, False]
    assert again.dataset_fingerprint != first.dataset_fingerprint  # the manifest names what the data now is


# ---------------------------------------------------------------------------- the lock
def test_lock_is_exclusive_and_a_dead_holder_is_taken_over(tmp_path: Path) -> None:
    lock = acquire_lock(tmp_path)
    held = json.loads((tmp_path / LOCK).read_text())
    assert held["pid"] == os.getpid() and held["host"] == this_process()["host"] and held["started"] > 0
    with pytest.raises(RunError, match=f"in use by another `tuneprep run` \\(pid {os.getpid()} on "):
        acquire_lock(tmp_path)
    lock.release()
    assert not (tmp_path / LOCK).exists() and lock_holder(tmp_path) is None
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    (tmp_path / LOCK).write_text(json.dumps({"pid": int(dead.stdout), "host": this_process()["host"], "started": 0}))
    assert lock_holder(tmp_path) is None
    lock = acquire_lock(tmp_path)
    assert lock.stale is not None and lock.stale["pid"] == int(dead.stdout)
    lock.release()


def test_lock_of_a_reused_pid_is_stale(tmp_path: Path) -> None:
    """Same pid, another process start time: the process that took the lock is gone."""
    (tmp_path / LOCK).write_text(json.dumps({**this_process(), "proc_start": "1", "started": 0}))
    assert lock_holder(tmp_path) is None


def test_lock_held_on_another_host_is_respected(tmp_path: Path) -> None:
    (tmp_path / LOCK).write_text(json.dumps({"pid": 1, "host": "elsewhere.invalid", "started": 0}))
    with pytest.raises(RunError, match="pid 1 on elsewhere.invalid"):
        acquire_lock(tmp_path)


# ---------------------------------------------------------------------------- the ledger
def test_mark_interrupted_only_touches_dead_processes(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    host = this_process()["host"]
    ledger.start_run("killed", tmp_path / "a", kind="text", config_fp="c", process={"pid": int(dead.stdout), "host": host})
    ledger.start_run("alive", tmp_path / "b", kind="text", config_fp="c", process=this_process())
    ledger.start_run("remote", tmp_path / "c", kind="text", config_fp="c", process={"pid": 1, "host": "elsewhere.invalid"})
    ledger.start_run("old", tmp_path / "d", kind="text", config_fp="c")
    assert ledger.mark_interrupted() == 1
    assert {r["run_id"]: r["status"] for r in ledger.rows("runs")} == {
        "killed": "interrupted",
        "alive": "running",
        "remote": "running",
        "old": "running",
    }


def test_ledger_made_by_an_older_tuneprep_gains_the_process_columns(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "ledger.db")
    db.execute(
        "CREATE TABLE runs (run_id TEXT NOT NULL, run_dir TEXT NOT NULL, started REAL NOT NULL, finished REAL, status TEXT NOT NULL, "
        "kind TEXT, config_fp TEXT, dataset_fp TEXT, rows_in INTEGER, rows_out INTEGER, PRIMARY KEY (run_id, started))"
    )
    db.execute("INSERT INTO runs (run_id, run_dir, started, status) VALUES ('old', '/x', 1.0, 'running')")
    db.commit()
    db.close()
    ledger = Ledger(tmp_path / "ledger.db")
    ledger.start_run("new", tmp_path, kind="text", config_fp="c", process=this_process())
    assert [(r["run_id"], r["pid"]) for r in ledger.rows("runs")] == [("old", None), ("new", os.getpid())]


# ---------------------------------------------------------------------------- temporaries
def test_stale_temporaries_are_found_at_any_depth(tmp_path: Path) -> None:
    (tmp_path / "stages/.02-dedup.abc.tmp/sub").mkdir(parents=True)
    (tmp_path / "stages/.02-dedup.old").mkdir()
    (tmp_path / ".manifest.json.x.tmp").write_text("{}")
    (tmp_path / "training/.ckpt.tmp").mkdir(parents=True)
    (tmp_path / "stages/01-normalize").mkdir()
    (tmp_path / "stages/01-normalize/output.parquet").write_text("kept")
    assert stale_temporaries(tmp_path, skip=("training",)) == [".manifest.json.x.tmp", "stages/.02-dedup.abc.tmp", "stages/.02-dedup.old"]
    assert "training/.ckpt.tmp" in stale_temporaries(tmp_path)
