"""The report shows stage timings, kind-aware Clarify notes and topic keywords with masked examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from curation.report import assemble, build_report
from tests.curation.report.test_report import add_stage

ROWS = [{"text": f"ticket {i} about the billing page", "label": "billing" if i % 3 else "technical"} for i in range(12)]
PROMPTS = [{"prompt": f"how do I reset router {i}?", "completion": f"hold the button for {i} seconds"} for i in range(12)]


def _section(report: dict[str, Any], sid: str) -> dict[str, Any]:
    return next(s for s in report["sections"] if s["id"] == sid)


def test_flow_shows_each_stage_time(make_run: Any) -> None:
    run = Path(make_run(ROWS, stages=["normalize"]).run_dir)
    build_report(run)
    flow = _section(json.loads((run / "report/report.json").read_text()), "flow")
    for row, stage_dir in zip(flow["stages"], sorted((run / "stages").iterdir()), strict=True):
        stats = json.loads((stage_dir / "stats.json").read_text())
        assert (row["seconds"], row["cpu_seconds"]) == (stats["seconds"], stats["cpu_seconds"])
    html, md = (run / "report/report.html").read_text(), (run / "report/report.md").read_text()
    assert "<th class=num>Time</th>" in html and "s CPU)</td>" in html
    assert "| Quarantined | Time |" in md


def test_clarify_note_is_kind_aware(make_run: Any) -> None:
    skipped = {"skipped": "no `label` column: set `label` to the outcome column"}  # as older runs recorded it
    sft = Path(make_run(PROMPTS, kind="instruction", stages=["normalize"], name="sft").run_dir)
    add_stage(sft, "balance", {"facets": {}, "clarify": skipped})
    clarify = _section(assemble(sft), "balance")["clarify"]
    assert clarify["not_applicable"] and "instruction rows have no label" in clarify["skipped"]
    build_report(sft)
    html = (sft / "report/report.html").read_text()
    assert "set `label`" not in html and "set <code>label</code>" not in html and "Not applicable" in html
    cls = Path(make_run(ROWS, stages=["normalize"], name="cls").run_dir)
    add_stage(cls, "balance", {"facets": {}, "clarify": {"skipped": "no `outcome` column: set `label` to the outcome column"}})
    assert _section(assemble(cls), "balance")["clarify"] == {"skipped": "no `outcome` column: set `label` to the outcome column"}


def test_topics_show_keywords_and_masked_examples(make_run: Any) -> None:
    run = Path(make_run(ROWS, stages=["normalize"]).run_dir)
    topics = [
        {
            "topic": 0,
            "dataset_share": 0.5,
            "keywords": ["invoice", "refund"],
            "examples": ["Call Jane Doe at 555-123-4567 about the invoice refund"],
        },
        {"topic": 1, "dataset_share": 0.5, "keywords": ["router", "reset"], "examples": ["my router needs a reset"]},
    ]
    add_stage(run, "balance", {"facets": {}, "embeddings": {"vendi": 1.5, "topics": topics, "lacking_topics": []}})
    build_report(run)
    table = _section(json.loads((run / "report/report.json").read_text()), "balance")["embeddings"]["topic_table"]
    assert [t["keywords"] for t in table] == [["invoice", "refund"], ["router", "reset"]]
    assert table[1]["examples"] == ["my router needs a reset"]
    html = (run / "report/report.html").read_text()
    assert "invoice, refund" in html and "my router needs a reset" in html
    assert "Jane" not in html and "555-123-4567" not in html and "<PERSON>" in table[0]["examples"][0]
