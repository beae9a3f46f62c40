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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curation.core.config import parse_config
from curation.core.ledger import Ledger
from curation.core.rundir import clean_sensitive, frame_fingerprint, read_manifest
from curation.core.runner import run_pipeline
from tests.data.jsonl_files import write_jsonl

GOOD = [{"text": f"ticket number {i} about billing", "label": "billing" if i % 3 else "technical", "source": "mail"} for i in range(12)]


def _stats(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((run_dir / "stages").glob("*/stats.json"))]


def test_books_balance_in_stats_and_manifest(make_run: Any) -> None:
    result = make_run([*GOOD, b"{oops", {"text": "", "label": "x"}, {"text": "\u200b\u200b", "label": "x"}], stages=["normalize"])
    manifest = read_manifest(result.run_dir)
    assert [s["name"] for s in manifest["stages"]] == ["ingest", "normalize"]
    for stats, entry in zip(_stats(result.run_dir), manifest["stages"], strict=True):
        b = stats["books"]
        assert b == entry["books"]
        assert b["rows_in"] == b["kept"] + b["dropped"] + b["quarantined"]
    assert manifest["stages"][1]["dropped_by_reason"] == {"empty_after_normalize": 1}
    assert manifest["quarantine"]["rows"] == 2 and manifest["dataset"]["rows"] == 12
    assert pl.read_parquet(result.run_dir / "dataset/data.parquet").columns == ["id", "text", "label"]
    assert "quarantine.parquet" in manifest["sensitive_paths"] and "dataset/data.parquet" in manifest["sensitive_paths"]


line = st.one_of(
    st.fixed_dictionaries({"text": st.text(max_size=30), "label": st.sampled_from(["a", "b", " A"])}),
    st.fixed_dictionaries({"text": st.one_of(st.integers(), st.none(), st.text(max_size=5))}),
    st.binary(max_size=30),
    st.text(max_size=30),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(line, min_size=1, max_size=25), as_csv=st.booleans())
def test_no_row_lost_or_duplicated_on_random_malformed_input(
    tmp_path_factory: pytest.TempPathFactory, rows: list[Any], as_csv: bool
) -> None:
    tmp = tmp_path_factory.mktemp("prop")
    if as_csv:
        lines = [b"text,label"] + [
            (r if isinstance(r, bytes) else str(r).encode("utf-8", "surrogatepass")).replace(b"\n", b" ").replace(b"\r", b" ") for r in rows
        ]
        path = tmp / "in.csv"
        path.write_bytes(b"\n".join(lines) + b"\n")
    else:
        path = write_jsonl(
            tmp / "in.jsonl",
            [r.replace(b"\n", b" ") if isinstance(r, bytes) else r.replace("\n", " ") if isinstance(r, str) else r for r in rows],
        )
    cfg = parse_config({"input": {"path": str(path), "kind": "classification"}, "stages": ["normalize"]})
    try:
        result = run_pipeline(cfg, out_dir=tmp / "run")
    except Exception as e:  # every row quarantined, or a blank file: the user gets a one-line error
        from curation.core.errors import InputError

        assert isinstance(e, InputError)
        return
    stats = _stats(result.run_dir)
    for s in stats:
        b = s["books"]
        assert b["rows_in"] == b["kept"] + b["dropped"] + b["quarantined"]
    quarantine = pl.read_parquet(result.run_dir / "quarantine.parquet")
    ingest_q = quarantine.filter(pl.col("stage") == "ingest")
    assert stats[0]["books"]["rows_in"] == ingest_q.height + stats[0]["books"]["kept"]
    assert ingest_q["line"].is_unique().all()
    out = pl.read_parquet(result.run_dir / "dataset/data.parquet")
    dropped = pl.read_parquet(result.run_dir / "stages/01-normalize/dropped.parquet")
    assert out["id"].is_unique().all()
    assert out.height + dropped.height == stats[0]["books"]["kept"]


def test_two_runs_same_fingerprint(make_run: Any, tmp_path: Path) -> None:
    rows = [*GOOD, {"text": "Dup  me", "label": "a"}, {"text": "Dup  me", "label": "a"}]
    a = make_run(rows, stages=["normalize"], name="a")
    b = make_run(rows, stages=["normalize"], name="b")
    assert a.dataset_fingerprint == b.dataset_fingerprint
    assert frame_fingerprint(pl.read_parquet(a.run_dir / "dataset/data.parquet")) == a.dataset_fingerprint


def test_rerun_reuses_finished_stages_and_ledger_records(make_run: Any) -> None:
    first = make_run(GOOD, stages=["normalize"])
    mtime = (first.run_dir / "stages/01-normalize/output.parquet").stat().st_mtime_ns
    second = make_run(GOOD, stages=["normalize"])
    assert second.dataset_fingerprint == first.dataset_fingerprint
    assert (first.run_dir / "stages/01-normalize/output.parquet").stat().st_mtime_ns == mtime
    assert all(s["skipped"] for s in read_manifest(second.run_dir)["stages"])
    ledger = Ledger(first.run_dir.parent / "ledger.db")
    assert read_manifest(first.run_dir)["ledger"] is None  # the default: beside the run, wherever it moves
    assert [r["status"] for r in ledger.rows("runs")] == ["succeeded", "succeeded"]
    assert [r["status"] for r in ledger.rows("stages")] == ["done", "done", "skipped", "skipped"]


def test_changed_option_reruns_that_stage(make_run: Any) -> None:
    make_run(GOOD, stages=["normalize"])
    again = make_run(GOOD, stages=[{"normalize": {"unicode_form": "NFKC"}}])
    assert [s["skipped"] for s in read_manifest(again.run_dir)["stages"]] == [True, False]


def test_clean_removes_sensitive_files_keeps_audit_trail(make_run: Any) -> None:
    result = make_run(GOOD, stages=["normalize"])
    removed = clean_sensitive(result.run_dir)
    assert "quarantine.parquet" in removed and "stages/01-normalize/output.parquet" in removed
    assert (result.run_dir / "manifest.json").is_file() and (result.run_dir / "stages/01-normalize/stats.json").is_file()
    assert read_manifest(result.run_dir)["cleaned"]["removed"] == sorted(removed)


def _final_files_are_whole(run_dir: Path) -> None:
    for path in run_dir.rglob("*"):
        if any(part.startswith(".") for part in path.relative_to(run_dir).parts):
            continue  # temporary names are allowed to be partial
        if path.suffix == ".parquet":
            pl.read_parquet(path)
        elif path.suffix == ".json" or path.name == "_SUCCESS":
            json.loads(path.read_text())
    for stage in (run_dir / "stages").glob("[0-9]*"):
        assert (stage / "_SUCCESS").is_file(), f"{stage.name} visible without _SUCCESS"


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_gives_same_fingerprint(tmp_path: Path) -> None:
    rows = [{"text": f"row {i} " + "word " * (i % 50) + "\u00a0 end", "label": "ab"[i % 2]} for i in range(150_000)]
    data = write_jsonl(tmp_path / "in.jsonl", rows)
    (tmp_path / "p.yaml").write_text(
        f"input: {{path: {data}, kind: classification}}\nstages: [normalize, {{normalize: {{unicode_form: NFKC}}}}]\n"
    )
    cmd = [sys.executable, "-m", "curation.cli", "run", str(tmp_path / "p.yaml"), "--quiet", "--out"]
    reference = subprocess.run([*cmd, str(tmp_path / "ref")], capture_output=True, text=True, check=True)
    assert reference.stdout.strip().endswith("ref")
    killed_dir = tmp_path / "killed"
    for delay in (1.0, 2.5, 4.0):  # mid-ingest, mid-stage, mid-write (whichever each lands in)
        proc = subprocess.Popen([*cmd, str(killed_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if killed_dir.exists():
            _final_files_are_whole(killed_dir)
    subprocess.run([*cmd, str(killed_dir)], capture_output=True, check=True)
    assert read_manifest(killed_dir)["dataset"]["fingerprint"] == read_manifest(tmp_path / "ref")["dataset"]["fingerprint"]


def test_configured_ledger_is_recorded_in_manifest(make_run: Any, tmp_path: Path) -> None:
    result = make_run(GOOD, stages=["normalize"], run={"ledger": "audit/ledger.db"})
    assert read_manifest(result.run_dir)["ledger"] == str((tmp_path / "audit/ledger.db").resolve())
    assert [r["status"] for r in Ledger(tmp_path / "audit/ledger.db").rows("runs")] == ["succeeded"]


def test_rerun_after_clean_recomputes_the_removed_stage_files(make_run: Any) -> None:
    first = make_run(GOOD, stages=["normalize"])
    clean_sensitive(first.run_dir)
    assert not (first.run_dir / "stages/00-ingest/output.parquet").exists()
    again = make_run(GOOD, stages=["normalize"])
    assert again.dataset_fingerprint == first.dataset_fingerprint
    assert [s["skipped"] for s in read_manifest(again.run_dir)["stages"]] == [False, False]
    assert (again.run_dir / "stages/01-normalize/output.parquet").is_file()


def test_unreadable_stage_file_is_recomputed_not_trusted(make_run: Any) -> None:
    first = make_run(GOOD, stages=["normalize"])
    (first.run_dir / "stages/01-normalize/dropped.parquet").write_text("garbage")
    again = make_run(GOOD, stages=["normalize"])
    assert [s["skipped"] for s in read_manifest(again.run_dir)["stages"]] == [True, False]
    assert again.dataset_fingerprint == first.dataset_fingerprint


def test_missing_hash_salt_fails_before_any_work(make_run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from curation.core.errors import ConfigError

    monkeypatch.delenv("TUNEPREP_PII_SALT", raising=False)
    with pytest.raises(ConfigError, match="`hash` needs a salt"):
        make_run(GOOD, stages=["normalize", {"pii": {"operator": "hash"}}])
    assert not (tmp_path / "runs" / "run").exists()


ANNOTATED = [{**r, "annotator": f"Jane Roe {i % 2}"} for i, r in enumerate(GOOD)]


def test_stages_before_pii_are_sensitive_and_cleaned(make_run: Any) -> None:
    stages = ["normalize", "dedup", {"balance": {"facets": ["label"]}}, {"label_audit": {"min_class_rows": 2, "folds": 2}}, "pii"]
    result = make_run(ANNOTATED, stages=stages)
    manifest = read_manifest(result.run_dir)
    sensitive = set(manifest["sensitive_paths"])
    for stage in ("03-balance", "04-label_audit"):
        assert {f"stages/{stage}/output.parquet", f"stages/{stage}/dropped.parquet"} <= sensitive
    assert "stages/05-pii/dropped.parquet" in sensitive and "stages/05-pii/output.parquet" not in sensitive
    assert "dataset/data.parquet" not in sensitive and not any(p.endswith("findings.parquet") for p in sensitive)
    assert [s["sensitive"] for s in manifest["stages"]] == [True, True, True, True, True, False]
    clean_sensitive(result.run_dir)
    assert not (result.run_dir / "stages/03-balance/output.parquet").exists()
    assert not (result.run_dir / "stages/04-label_audit/dropped.parquet").exists()
    assert (result.run_dir / "dataset/data.parquet").is_file()


RATINGS = [
    {"prompt": f"question {p}", "response": f"answer {r} to {p}", "score": float(r + 1), "annotator": f"Jane Roe {a}"}
    for p in range(4)
    for r in range(3)
    for a in range(2)
] + [{"prompt": "lonely question", "response": "the only answer", "score": 1.0}]


def test_run_without_pii_marks_every_output_sensitive_and_clean_removes_them(make_run: Any) -> None:
    result = make_run(RATINGS, kind="ratings", stages=["normalize", "preferences"])
    manifest = read_manifest(result.run_dir)
    assert all(s["sensitive"] for s in manifest["stages"])
    data_files = {
        str(p.relative_to(result.run_dir))
        for p in result.run_dir.rglob("*.parquet")
        if p.name != "findings.parquet" and not p.is_relative_to(result.run_dir / "report")
    }
    assert data_files <= set(manifest["sensitive_paths"])
    assert "stages/02-preferences/dropped.parquet" in data_files and "dataset/data.parquet" in data_files
    clean_sensitive(result.run_dir)
    assert not any((result.run_dir / f).exists() for f in data_files)


def test_kind_changing_stage_books_reconcile_on_rows(make_run: Any) -> None:
    result = make_run(RATINGS, kind="ratings", stages=["normalize", "preferences"])
    prefs = read_manifest(result.run_dir)["stages"][2]
    books, stats = prefs["books"], _stats(result.run_dir)[2]
    assert books == stats["books"] and books["kept"] == stats["metrics"]["rows_used"]
    assert books["rows_in"] == books["kept"] + books["dropped"] + books["quarantined"]
    assert books["rows_out"] == result.rows_out == stats["metrics"]["pairs"] != books["kept"]
    dropped = sum(s["books"]["dropped"] for s in result.stages)
    assert result.summary() == (
        f"{result.rows_in} rows in: {books['kept']} used, {dropped} dropped, {result.quarantined} quarantined; "
        f"{books['rows_out']} preference rows made from them: {result.rows_out} curated"
    )
    assert result.rows_in == books["kept"] + dropped + result.quarantined


def test_summary_line_reconciles_rows(make_run: Any) -> None:
    result = make_run([*GOOD, GOOD[0], b"{oops"], stages=["dedup"])
    assert result.summary() == f"{len(GOOD) + 2} rows in: {len(GOOD)} curated, 1 dropped, 1 quarantined"
