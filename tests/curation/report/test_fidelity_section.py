"""The report's fidelity section: per-stage rewrite shares and masked before/after examples, in json, md and html."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from curation.core.rundir import write_json
from curation.report import build_report
from curation.report.sections.fidelity import is_shape
from tests.curation.report.test_report import _section, _Text, json_numbers, numbers_in

NAME = "Quintanilla"  # the value the stage rewrites: it must never reach the report
DIRTY = "Quin\u200btanilla"  # with a zero-width space inside, which any normalize removes


def _rows() -> list[dict[str, Any]]:
    return [{"text": f"order {i} for {DIRTY if i % 2 else NAME} arrived late", "label": ["billing", "technical"][i % 2]} for i in range(20)]


@pytest.fixture
def run(make_run: Any) -> Path:
    return Path(make_run(_rows(), stages=["normalize", "dedup"], checks={"fidelity": {"max_rewrite_share": {"normalize": 0.3}}}).run_dir)


def test_shares_trace_to_the_stage_stats_and_the_gate_threshold(run: Path) -> None:
    build_report(run)
    report = json.loads((run / "report/report.json").read_text(encoding="utf-8"))
    section = _section(report, "fidelity")
    stats = json.loads((run / "stages/01-normalize/stats.json").read_text(encoding="utf-8"))["fidelity"]
    normalize, dedup = section["stages"]
    assert (normalize["stage"], normalize["rows_compared"], normalize["rows_rewritten"]) == ("normalize", 20, 10)
    assert normalize["rows_rewritten"] == stats["rows_rewritten"] and normalize["chars_changed"] == stats["chars_changed"]
    assert (normalize["share_pct"], normalize["max_share_pct"], normalize["above_threshold"]) == (50.0, 30.0, True)
    assert (dedup["stage"], dedup["rows_rewritten"], dedup["share_pct"], dedup["max_share_pct"]) == ("dedup", 0, 0.0, 20.0)
    assert section["values"] == [{"stage": "normalize", "before": "Qxxx<U+200B>txxxxxx", "after": "Qxxxxxxxxxx", "rows": 10}]
    assert section["examples"] == [
        {
            "stage": "normalize",
            "field": "text",
            "before": "oxxxx ## fxx ⟦Qxxx<U+200B>txxxxxx⟧ axxxxxx lxxx",
            "after": "oxxxx ## fxx ⟦Qxxxxxxxxxx⟧ axxxxxx lxxx",
        }
    ]


def test_pages_show_the_shares_and_masked_examples_never_the_value(run: Path) -> None:
    html = build_report(run).read_text(encoding="utf-8")
    md = (run / "report/report.md").read_text(encoding="utf-8")
    report_json = (run / "report/report.json").read_text(encoding="utf-8")
    for text in (html, md, report_json):
        assert NAME not in text and "Quin" not in text
    assert "Text rewritten by the stages" in html and "⟦Qxxx&lt;U+200B&gt;txxxxxx⟧" in html
    assert "| 1 | normalize | 20 | 10 | 50.0% | 30.0% |" in md and "`Qxxx<U+200B>txxxxxx`" in md
    parser = _Text()
    parser.feed(html)
    assert numbers_in(" ".join(parser.parts)) <= json_numbers(json.loads(report_json))  # every number shown is in report.json


def test_a_value_that_is_not_masked_is_left_off_the_page(run: Path) -> None:
    path = run / "stages/01-normalize/stats.json"
    stats = json.loads(path.read_text(encoding="utf-8"))
    stats["fidelity"]["top_replaced"].insert(0, {"before": NAME, "after": "<PERSON>", "rows": 99, "is_value": True})
    stats["fidelity"]["examples"].insert(0, {"field": "text", "before": f"call ⟦{NAME}⟧", "after": "call ⟦<PERSON>⟧"})
    write_json(path, stats)
    html = build_report(run).read_text(encoding="utf-8")
    assert NAME not in html and NAME not in (run / "report/report.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("value", "masked"),
    [("Jxxx Dxx", True), ("<PERSON> axx Sxxxx", True), ("###-####", True), ("⏎··", True), ("Jane", False), ("555-0199", False)],
)
def test_is_shape(value: str, masked: bool) -> None:
    assert is_shape(value) is masked
