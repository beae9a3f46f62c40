"""The gate's fidelity check through the CLI: a stage that rewrote too many rows, or one value too often.

The rewriting stage is `normalize` on text with zero-width characters inside a word: any
normalize removes them, so the test measures what the stage does without depending on how.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from curation.cli import main
from curation.core.rundir import read_manifest
from tests.checks.checks_fixtures import LABELS, TOPICS, make_run

DIRTY = "tic\u200bket"  # `ticket` with a zero-width space inside


def _rows(n: int = 20, *, dirty: int = 10) -> list[dict[str, Any]]:
    """``n`` rows; the first ``dirty`` have a zero-width space inside the word `ticket`."""
    return [
        {
            "id": f"f{i:02d}",
            "text": f"{DIRTY if i < dirty else 'ticket'} {i} about the {TOPICS[i % len(TOPICS)]} needs a careful look",
            "label": LABELS[i % 2],
        }
        for i in range(n)
    ]


def _check(run: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(["check", str(run)])
    lines = capsys.readouterr().err.strip().splitlines()
    return code, [line for line in lines if not line.startswith("note: the verdict is unsigned")]  # tested in test_cli_integrity


def test_runner_records_what_each_stage_rewrote(tmp_path: Path) -> None:
    run = make_run(tmp_path, _rows(), name="rec", stages=["normalize", "dedup"])
    stats = json.loads((run / "stages/01-normalize/stats.json").read_text(encoding="utf-8"))
    f = stats["fidelity"]
    assert (f["rows_compared"], f["rows_rewritten"], f["share"], f["chars_changed"]) == (20, 10, 0.5, 10 * len(DIRTY))
    assert f["top_replaced"] == [{"before": "txx<U+200B>kxx", "after": "txxxxx", "rows": 10, "is_value": True}]
    assert f["examples"][0]["before"] == "⟦txx<U+200B>kxx⟧ # axxxx txx rxxxxx nxxx…"
    entries = {e["name"]: e for e in read_manifest(run)["stages"]}
    assert entries["normalize"]["fidelity"] == {
        "rows_compared": 20,
        "rows_rewritten": 10,
        "share": 0.5,
        "chars_changed": 70,
        "rows_diffed": 10,
    }
    assert entries["dedup"]["fidelity"]["rows_rewritten"] == 0 and entries["ingest"]["fidelity"] is None


def test_a_stage_rewriting_more_rows_than_allowed_warns_naming_the_stage_and_share(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run(tmp_path, _rows(), name="warn", stages=["normalize"], checks={"severity": {"residual_pii": "off"}})
    code, err = _check(run, capsys)
    assert code == 0
    assert err == [
        "WARN [warning] fidelity:normalize: expected normalize rewrites at most 20% of the rows it keeps; observed 0.5 (50.0%: 10 of 20 rows)"
    ]


def test_fidelity_made_critical_fails_the_gate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checks = {"severity": {"fidelity": "critical", "residual_pii": "off"}}
    run = make_run(tmp_path, _rows(), name="crit", stages=["normalize"], checks=checks)
    code, err = _check(run, capsys)
    assert code == 1
    assert err[0].startswith(
        "FAIL [critical] fidelity:normalize: expected normalize rewrites at most 20% of the rows it keeps; observed 0.5"
    )
    assert err[-1].startswith("error: checks fail: 1 critical failed")


def test_thresholds_per_stage_and_for_repeated_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checks = {"fidelity": {"max_rewrite_share": {"normalize": 0.6}, "max_repeated_value_rows": 5}, "severity": {"residual_pii": "off"}}
    run = make_run(tmp_path, _rows(), name="repeats", stages=["normalize"], checks=checks)
    code, err = _check(run, capsys)
    assert code == 0
    assert err == [
        "WARN [warning] fidelity:normalize:repeats: expected no word or number replaced by normalize in more than 5 rows; "
        "observed 10 ('txx<U+200B>kxx' -> 'txxxxx')"
    ]


def test_a_stage_within_its_share_passes_silently(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path, _rows(dirty=2), name="quiet", stages=["normalize"], checks={"severity": {"residual_pii": "off"}})
    code, err = _check(run, capsys)
    assert code == 0 and err == []
    verdict = json.loads((run / "checks/verdict.json").read_text(encoding="utf-8"))
    assert {o["name"] for o in verdict["outcomes"] if o["check"] == "fidelity"} == {"fidelity:normalize", "fidelity:normalize:repeats"}


def test_a_damaged_stage_stats_file_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path, _rows(), name="damaged", stages=["normalize"])
    (run / "stages/01-normalize/stats.json").write_text("{bad\n", encoding="utf-8")
    code, err = _check(run, capsys)
    assert code == 2 and len(err) == 1 and "01-normalize/stats.json' is not valid JSON" in err[0]
