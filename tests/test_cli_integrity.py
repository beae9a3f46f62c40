"""Integrity through the CLI: verified stage reuse, NaN-aware fingerprints, signed manifests,
the run lock, interrupted runs in the ledger, stale temporaries and what `runs` shows."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from curation.core.integrity import LOCK, this_process
from curation.core.ledger import Ledger
from curation.core.rundir import read_manifest
from tests.cli_helpers import one_line_error as _one_line
from tests.cli_helpers import run_cli as _run
from tests.data.jsonl_files import write_jsonl

KEY = "a-test-signing-key-of-32-bytes!!"
EMAILS = ["jane.roe@northwind-mail.com", "omar.haddad@contoso-support.org"]


def _preference_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    rows = [
        {"prompt": f"question {i} about the billing page", "chosen": f"a helpful answer {i} with steps", "rejected": f"no {i}"}
        | {"margin": None if i % 3 == 0 else float(i)}
        for i in range(30)
    ]
    write_jsonl(tmp_path / "p.jsonl", rows)
    (tmp_path / "p.yaml").write_text("input: {path: p.jsonl, kind: preference}\nstages: [normalize]\n")
    run_dir = tmp_path / "runs" / "pref"
    assert _run(["run", str(tmp_path / "p.yaml"), "--out", str(run_dir), "-q"], capsys)[0] == 0
    assert _run(["check", str(run_dir)], capsys)[0] == 0
    return run_dir


# ---------------------------------------------------------------------------- stage reuse verifies
TICKETS = [
    {"text": f"ticket {i}: please call me back, write to {EMAILS[i % 2]} about invoice {i}", "label": ["billing", "access"][i % 2]}
    for i in range(24)
]


def test_swapped_stage_output_is_detected_on_rerun(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl(tmp_path / "t.jsonl", TICKETS)
    (tmp_path / "p.yaml").write_text(
        "input: {path: t.jsonl, kind: classification}\nstages: [normalize, pii, {label_audit: {min_class_rows: 2, folds: 2}}]\n"
    )
    run_dir = tmp_path / "runs" / "t"
    argv = ["run", str(tmp_path / "p.yaml"), "--out", str(run_dir)]
    assert _run(argv, capsys)[0] == 0
    first = read_manifest(run_dir)["dataset"]["fingerprint"]
    shutil.copy(run_dir / "stages/01-normalize/output.parquet", run_dir / "stages/03-label_audit/output.parquet")

    code, _, err = _run(argv, capsys)
    assert code == 0
    assert "03-label_audit: not reused, output.parquet changed since the stage wrote it; recomputing" in err
    assert [s["skipped"] for s in read_manifest(run_dir)["stages"]] == [True, True, True, False]
    dataset = pl.read_parquet(run_dir / "dataset/data.parquet")
    assert not any(e in t for t in dataset["text"] for e in EMAILS)  # the raw rows did not become the dataset
    assert read_manifest(run_dir)["dataset"]["fingerprint"] == first


def test_check_refuses_a_dataset_the_run_did_not_make(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _preference_run(tmp_path, capsys)
    raw = pl.read_parquet(run_dir / "stages/00-ingest/output.parquet").select(pl.read_parquet(run_dir / "dataset/data.parquet").columns)
    raw.with_columns(prompt=pl.col("prompt") + " (edited)").write_parquet(run_dir / "dataset/data.parquet")
    code, _, err = _run(["check", str(run_dir)], capsys)
    assert code == 1 and "is not the dataset `tuneprep run` made" in _one_line(err)


# ---------------------------------------------------------------------------- NaN is not null
def test_nan_in_place_of_null_is_refused_by_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _preference_run(tmp_path, capsys)
    path = run_dir / "dataset/data.parquet"
    df = pl.read_parquet(path)
    assert df["margin"].null_count() == 10
    df.with_columns(margin=pl.col("margin").fill_null(float("nan"))).write_parquet(path)
    code, _, err = _run(["export", str(run_dir), "--format", "hf"], capsys)
    assert code == 1 and "changed since it was validated" in _one_line(err)


# ---------------------------------------------------------------------------- signed manifest
def test_check_says_the_verdict_is_unsigned_without_a_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _preference_run(tmp_path, capsys)
    code, out, err = _run(["check", str(run_dir)], capsys)
    assert code == 0 and out.startswith("checks pass")
    assert [line for line in err.splitlines() if "unsigned" in line] == [
        "note: the verdict is unsigned; set `TUNEPREP_SIGNING_KEY` or `TUNEPREP_SIGNING_KEY_FILE` to make the manifest and verdict tamper-evident"
    ]


@pytest.mark.parametrize("command", [["export", "--format", "hf"], ["train", "--max-steps", "1"]])
def test_edited_manifest_is_refused_with_a_key(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNEPREP_SIGNING_KEY", KEY)
    run_dir = _preference_run(tmp_path, capsys)
    manifest = read_manifest(run_dir)
    assert manifest["signature"]["alg"] == "hmac-sha256" and KEY not in (run_dir / "manifest.json").read_text()
    # the attack: change the data, then record its fingerprint as the validated one
    df = pl.read_parquet(run_dir / "dataset/data.parquet").head(20)
    df.write_parquet(run_dir / "dataset/data.parquet")
    from curation.core.rundir import frame_fingerprint

    manifest["dataset"]["fingerprint"] = manifest["checks"]["dataset_fingerprint"] = frame_fingerprint(df)
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = _run([command[0], str(run_dir), *command[1:]], capsys)
    assert code == 1 and "does not match its signature: it was edited after tuneprep wrote it" in _one_line(err)


def test_signed_run_passes_the_gate_and_an_edited_verdict_file_does_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    monkeypatch.setenv("TUNEPREP_SIGNING_KEY_FILE", str(key_file))
    run_dir = _preference_run(tmp_path, capsys)
    assert "unsigned" not in _run(["check", str(run_dir)], capsys)[2]
    assert _run(["export", str(run_dir), "--format", "hf"], capsys)[0] == 0  # export re-signs what it adds
    verdict = run_dir / "checks/verdict.json"
    verdict.write_text(verdict.read_text().replace('"pass"', '"pass" '))
    code, _, err = _run(["export", str(run_dir), "--format", "parquet"], capsys)
    assert code == 1 and "verdict.json' changed since `tuneprep check` wrote it" in _one_line(err)
    monkeypatch.setenv("TUNEPREP_SIGNING_KEY", "another-key-of-enough-bytes-0001")
    code, _, err = _run(["check", str(run_dir)], capsys)
    assert code == 1 and "was signed with another key" in _one_line(err)


# ---------------------------------------------------------------------------- the run lock
def _text_config(tmp_path: Path, rows: int = 20) -> Path:
    write_jsonl(tmp_path / "x.jsonl", [{"text": f"line {i} of the corpus"} for i in range(rows)])
    (tmp_path / "x.yaml").write_text("input: {path: x.jsonl, kind: text}\nstages: [normalize]\n")
    return tmp_path / "x.yaml"


def test_second_run_into_a_locked_folder_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, run_dir = _text_config(tmp_path), tmp_path / "runs" / "x"
    run_dir.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        proc = Path(f"/proc/{holder.pid}/stat").read_text()
        start = proc[proc.rfind(")") + 2 :].split()[19]
        lock = {"pid": holder.pid, "host": this_process()["host"], "proc_start": start, "started": time.time()}
        (run_dir / LOCK).write_text(json.dumps(lock))
        code, _, err = _run(["run", str(config), "--out", str(run_dir), "-q"], capsys)
        line = _one_line(err)
        assert code == 2 and f"run folder '{run_dir}' is in use by another `tuneprep run` (pid {holder.pid}" in line
        assert "pass another `--out`" in line and not (run_dir / "stages").exists()
        code, _, err = _run(["clean", str(run_dir)], capsys)
        assert code == 2 and "in use by another `tuneprep run`" in _one_line(err)
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is stale and the next run takes it over
    code, _, err = _run(["run", str(config), "--out", str(run_dir)], capsys)
    assert code == 0 and f"lock of pid {holder.pid}" in err and "is stale (process gone); taken over" in err
    assert not (run_dir / LOCK).exists()  # released at the end of the run


def test_concurrent_run_is_refused_while_one_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, run_dir = _text_config(tmp_path, rows=200_000), tmp_path / "runs" / "x"
    first = subprocess.Popen([sys.executable, "-m", "curation.cli", "run", str(config), "--out", str(run_dir), "-q"])
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / LOCK).exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert first.poll() is None, "the first run finished before the second could start; give it a longer input"
        code, _, err = _run(["run", str(config), "--out", str(run_dir), "-q"], capsys)
        assert code == 2 and f"pid {first.pid}" in _one_line(err)
    finally:
        first.wait(timeout=300)
    assert first.returncode == 0


# ---------------------------------------------------------------------------- killed runs
def _kill_while_running(cmd: list[str], run_dir: Path) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (run_dir / "stages").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _runs_table(root: Path, capsys: pytest.CaptureFixture[str]) -> list[list[str]]:
    code, out, _ = _run(["runs", "--root", str(root)], capsys)
    assert code == 0
    return [line.split() for line in out.strip().splitlines()[1:]]  # date, time, run_id, status, kind, in, out, checks, fp, dir


def test_killed_run_is_interrupted_then_resumed_run_succeeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, run_dir = _text_config(tmp_path, rows=200_000), tmp_path / "runs" / "x"
    _kill_while_running([sys.executable, "-m", "curation.cli", "run", str(config), "--out", str(run_dir), "-q"], run_dir)
    assert [r["status"] for r in Ledger(run_dir.parent / "ledger.db").rows("runs")] == ["running"]
    assert [r[3] for r in _runs_table(run_dir.parent, capsys)] == ["interrupted"]  # `runs` detects it
    assert _run(["run", str(config), "--out", str(run_dir), "-q"], capsys)[0] == 0
    assert [r[3] for r in _runs_table(run_dir.parent, capsys)] == ["interrupted", "succeeded"]


def test_next_start_marks_a_killed_run_interrupted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, run_dir = _text_config(tmp_path, rows=200_000), tmp_path / "runs" / "x"
    _kill_while_running([sys.executable, "-m", "curation.cli", "run", str(config), "--out", str(run_dir), "-q"], run_dir)
    small = _text_config(tmp_path / "other")
    assert _run(["run", str(small), "--out", str(tmp_path / "runs" / "y"), "-q"], capsys)[0] == 0
    statuses = [r["status"] for r in Ledger(run_dir.parent / "ledger.db").rows("runs")]
    assert statuses == ["interrupted", "succeeded"]


def test_runs_shows_the_verdict_of_the_dataset_after_a_rerun(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _preference_run(tmp_path, capsys)
    assert _run(["run", str(tmp_path / "p.yaml"), "--out", str(run_dir), "-q"], capsys)[0] == 0  # all reused, same dataset
    rows = _runs_table(run_dir.parent, capsys)
    assert [(r[3], r[7]) for r in rows] == [("succeeded", "pass"), ("succeeded", "pass")]
    lines = (tmp_path / "p.jsonl").read_text().splitlines()
    (tmp_path / "p.jsonl").write_text("\n".join(lines[:-1]) + "\n")  # one row fewer: another dataset
    assert _run(["run", str(tmp_path / "p.yaml"), "--out", str(run_dir), "-q"], capsys)[0] == 0
    assert _runs_table(run_dir.parent, capsys)[-1][7] == "-"  # a new dataset is not validated by the old check


# ---------------------------------------------------------------------------- temporaries
def test_stale_temporaries_are_listed_sensitive_swept_by_rerun_and_cleaned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, run_dir = _text_config(tmp_path), tmp_path / "runs" / "x"
    argv = ["run", str(config), "--out", str(run_dir)]
    assert _run(argv, capsys)[0] == 0
    stale = [run_dir / "stages/.01-normalize.k1ll3d.tmp", run_dir / ".checks.x1.tmp", run_dir / "dataset/.data.parquet.abc.tmp"]
    stale[0].mkdir()
    pl.read_parquet(run_dir / "stages/00-ingest/output.parquet").write_parquet(stale[0] / "output.parquet")
    stale[1].mkdir()
    stale[2].write_bytes(b"partial")
    assert _run(["check", str(run_dir)], capsys)[0] == 0  # any manifest write lists them
    listed = read_manifest(run_dir)["sensitive_paths"]
    assert {"stages/.01-normalize.k1ll3d.tmp", ".checks.x1.tmp", "dataset/.data.parquet.abc.tmp"} <= set(listed)
    code, _, err = _run(argv, capsys)
    assert code == 0 and "removed 3 temporary files or folders left by an interrupted run" in err
    assert not any(p.exists() for p in stale) and not any(".tmp" in p for p in read_manifest(run_dir)["sensitive_paths"])
    stale[1].mkdir()
    assert _run(["clean", str(run_dir)], capsys)[0] == 0 and not stale[1].exists()


def _raw_values_in(run_dir: Path, values: list[str]) -> list[str]:
    """Every file under ``run_dir`` holding one of ``values`` (parquet files read, not their compressed bytes)."""
    hits = []
    for path in run_dir.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            df = pl.read_parquet(path)
            text = df.select(pl.all().cast(pl.String, strict=False)).write_ndjson() if df.width else ""
        else:
            text = path.read_bytes().decode("utf-8", "replace")
        hits += [f"{path.relative_to(run_dir)}: {v}" for v in values if v in text]
    return hits


@pytest.mark.slow
def test_clean_after_a_kill_mid_write_leaves_no_raw_text(tmp_path: Path) -> None:
    rows = [{"text": f"ticket {i}: " + "word " * (i % 40) + f"reach me at {EMAILS[i % 2]}", "label": "ab"[i % 2]} for i in range(150_000)]
    data = write_jsonl(tmp_path / "in.jsonl", rows)
    (tmp_path / "p.yaml").write_text(
        f"input: {{path: {data}, kind: classification}}\nstages: [normalize, {{normalize: {{unicode_form: NFKC}}}}]\n"
    )
    run_dir = tmp_path / "runs" / "killed"
    cmd = [sys.executable, "-m", "curation.cli", "run", str(tmp_path / "p.yaml"), "--quiet", "--out", str(run_dir)]
    left: list[Path] = []
    for _ in range(3):  # each try resumes further; stop once a kill lands inside a stage's temporary folder
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and not (left := [p for p in (run_dir / "stages").glob(".*.tmp") if (p / "output.parquet").exists()]):
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if any(p.exists() for p in left):
            break
    assert any(p.exists() for p in left), "no kill landed while a stage wrote its temporary folder"
    assert subprocess.run([sys.executable, "-m", "curation.cli", "clean", str(run_dir)], capture_output=True).returncode == 0
    assert not [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]
    assert _raw_values_in(run_dir, EMAILS) == []
