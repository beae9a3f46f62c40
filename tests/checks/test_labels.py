"""Label hygiene at the gate, whatever stages ran: variants, one-row labels, the declared set (through the CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from curation.cli import main
from tests.checks.checks_fixtures import TOPICS, make_run

# 30 rows: `billing` in four spellings, `shipping` in two, `technical` clean
SPELLINGS = (
    ["billing"] * 8 + ["Billing"] * 2 + ["billing "] * 2 + ["BILLING"] * 2 + ["shipping"] * 6 + [" shipping"] * 2 + ["technical"] * 8
)


def _rows(labels: list[str]) -> list[dict[str, Any]]:
    return [
        {"id": f"l{i}", "text": f"ticket {i} is about the {TOPICS[i % len(TOPICS)]} and needs a careful look", "label": label}
        for i, label in enumerate(labels)
    ]


def _check(run: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(["check", str(run)])
    lines = capsys.readouterr().err.strip().splitlines()
    return code, [line for line in lines if not line.startswith("note: the verdict is unsigned")]  # tested in test_cli_integrity


def test_label_variants_fail_the_gate_without_label_audit_and_pass_after_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path, _rows(SPELLINGS), name="raw", stages=["normalize"])
    code, err = _check(run, capsys)
    assert code == 1
    failed = [line for line in err if line.startswith("FAIL")]
    assert failed == [
        "FAIL [critical] label_variants: expected no two labels differ only in case or spacing; observed 4 "
        "(variants: 'bxxxxxx' 8, 'BXXXXXX' 2, 'Bxxxxxx' 2, 'bxxxxxx ' 2; 'sxxxxxxx' 6, ' sxxxxxxx' 2)"
    ]
    assert not any(raw in line for line in err for raw in ("billing", "Billing", "shipping"))  # labels are named by shape only

    folded = make_run(tmp_path, _rows(SPELLINGS), name="folded", stages=["normalize", "label_audit"])
    code, err = _check(folded, capsys)
    assert code == 0 and not [line for line in err if line.startswith("FAIL")]


def test_a_label_with_one_row_fails_and_is_named_by_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path, _rows(["billing"] * 6 + ["technical"] * 6 + ["Refund"]), name="single")
    code, err = _check(run, capsys)
    assert code == 1
    assert [line for line in err if line.startswith("FAIL")] == [
        "FAIL [critical] label_singletons: expected every label has at least 2 rows; observed 1 (one row each: 'Rxxxxx')"
    ]


def test_declared_labels_are_enforced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _rows(["billing"] * 6 + ["technical"] * 6 + ["shipping"] * 3)
    run = make_run(tmp_path, rows, name="declared", checks={"labels": ["billing", "technical"]})
    code, err = _check(run, capsys)
    assert code == 1
    line = next(line for line in err if line.startswith("FAIL"))
    assert line.startswith(
        "FAIL [critical] label_set: expected labels are in ['billing', 'technical']; 3 of 15 rows violate it (ids: l12, l13, l14)"
    )
    assert line.endswith("; outside the set: 'sxxxxxxx' 3")
    recorded = [run / "checks/verdict.json", run / "checks/results.json", run / "manifest.json", *(run / "checks").rglob("*.html")]
    assert not [p for p in recorded if "shipping" in p.read_text(encoding="utf-8")]  # GX's unexpected values by shape too

    allowed = make_run(tmp_path, rows, name="allowed", checks={"labels": ["billing", "shipping", "technical"]})
    assert _check(allowed, capsys)[0] == 0


def test_label_hygiene_can_be_made_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checks = {"severity": {"label_variants": "warning", "label_singletons": "off"}}
    run = make_run(tmp_path, _rows([*SPELLINGS, "Refund"]), name="warn", checks=checks)
    code, err = _check(run, capsys)
    assert code == 0
    assert [line.split(": ", 1)[0] for line in err] == ["WARN [warning] label_variants", "WARN [warning] residual_pii"]
