"""`tuneprep show`: why a row was dropped, flagged or quarantined, through the CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from curation.cli import main
from curation.core.config import parse_config
from curation.core.runner import run_pipeline
from tests.data.jsonl_files import write_jsonl

EMAIL = "john.smith@example.com"


def _text(i: int) -> str:
    rng = random.Random(i)
    return "ticket about " + " ".join(f"w{rng.randrange(100_000)}" for _ in range(14))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("show")
    rows: list[Any] = [{"id": f"r{i}", "text": _text(i), "label": "billing"} for i in range(12)]
    rows.append({"id": "dup1", "text": _text(3) + " again", "label": "billing"})
    rows.append({"id": "mail1", "text": f"please write to {EMAIL} about my refund", "label": "billing"})
    rows.append(b"{broken json")
    data = write_jsonl(tmp / "in.jsonl", rows)
    cfg = parse_config({"input": {"path": str(data), "kind": "classification"}, "stages": ["normalize", "dedup", "pii"]}, base_dir=tmp)
    return run_pipeline(cfg, out_dir=tmp / "run").run_dir


def _show(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["show", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _json(args: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    code, out, _ = _show([*args, "--json"], capsys)
    assert code == 0
    rows: list[dict[str, Any]] = json.loads(out)["rows"]
    return rows


def test_dedup_dropped_row_names_what_it_duplicated(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (entry,) = _json([str(run), "--reason", "near_duplicate"], capsys)
    assert entry["stage"] == "dedup" and entry["id"] == "dup1" and entry["status"] == "dropped"
    dup = entry["duplicate_of"]
    assert dup["id"] == "r3" and 0.5 < dup["similarity"] < 1
    assert entry["text"] == _text(3) + " again" and dup["text"] == _text(3)
    code, out, _ = _show([str(run), "--id", "dup1"], capsys)  # the table, side by side
    assert code == 0 and "near_duplicate" in out and f"r3 (similarity {dup['similarity']:g})" in out


def test_pii_finding_shows_entity_type_masked_value_and_scrubbed_text(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _show([str(run), "--finding", "email_address", "--json"], capsys)
    assert code == 0 and EMAIL not in out
    (entry,) = json.loads(out)["rows"]
    assert entry["id"] == "mail1" and entry["status"] == "flagged" and entry["finding"] == "EMAIL_ADDRESS"
    assert entry["detail"]["masked"] == "j***@e******.com"
    assert entry["text"] == "please write to <EMAIL_ADDRESS> about my refund"


def test_quarantined_line_shows_its_error_and_file_line(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (entry,) = _json([str(run), "--stage", "ingest"], capsys)
    assert entry["status"] == "quarantined" and entry["reason"].startswith("invalid JSON")
    assert entry["detail"]["line"] == 15 and entry["detail"]["source"].endswith("in.jsonl")


def test_id_follows_a_row_through_the_stages(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    entries = _json([str(run), "--id", "mail1"], capsys)
    assert [(e["stage"], e["status"]) for e in entries] == [
        ("ingest", "kept"),
        ("normalize", "kept"),
        ("dedup", "kept"),
        ("pii", "flagged"),
    ]
    assert EMAIL in entries[0]["text"]  # before the PII stage the stage's own files hold the raw text


def test_default_lists_everything_up_to_the_limit(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    entries = _json([str(run)], capsys)
    assert {e["status"] for e in entries} == {"quarantined", "dropped", "flagged"}
    assert len(_json([str(run), "--limit", "1"], capsys)) == 1


def test_no_match_names_what_the_run_holds(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _show([str(run), "--reason", "nope"], capsys)
    assert code == 0 and out == ""
    assert "no rows match; drop reasons in this run: near_duplicate; findings: EMAIL_ADDRESS" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--id", "a", "--reason", "b"], "pass at most one of `--id`, `--reason`, `--finding`"),
        (["--stage", "nope"], "`--stage nope`: no such stage in this run; use one of ingest, normalize, dedup, pii"),
    ],
)
def test_usage_errors_are_one_line(run: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, _, err = _show([str(run), *args], capsys)
    assert code == 2 and err.strip() == f"error: {message}"


def test_after_clean_the_duplicate_relation_remains(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    assert main(["clean", str(copy)]) == 0
    capsys.readouterr()
    (entry,) = _json([str(copy), "--reason", "near_duplicate"], capsys)
    assert entry["duplicate_of"]["id"] == "r3" and "not available" in entry["text"]
