"""The demo run's report end to end: headless Chromium, no leak of injected PII, a valid card.

One small demo run (the shipped classification config, plus the PII stage when the
config lacks it) with known personal data injected into its input, curated, checked
and reported through the CLI. Chromium is Debian's ``chromium`` (``make test`` installs it).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from curation.cli import main
from curation.demo import write_demo
from curation.report.card import validate_card_metadata
from tests.curation.report.chromium_cdp import load_page
from tests.curation.report.test_report import _Text, json_numbers, numbers_in

pytestmark = pytest.mark.slow

PII = {
    "name": "Zelda Quintanilla",
    "email": "zelda.quintanilla@example.org",
    "phone": "(415) 555-0199",
    "ssn": "078-05-1120",
    "card": "4111 1111 1111 1111",
    "iban": "DE89370400440532013000",
    "ip": "203.0.113.77",
}
LEAK_FORMS = [*PII.values(), "Quintanilla", "4111111111111111", "5550199", "078051120"]


def _inject(data: Path) -> None:
    """Known personal data in free text, in a metadata column and in a malformed line."""
    p = PII
    rows = [
        {
            "text": f"Hi, this is {p['name']}. I cannot log in, write to {p['email']} or call {p['phone']}.",
            "label": "account",
            "source": "email",
            "language": "en",
        },
        {
            "text": f"My SSN is {p['ssn']} and my card {p['card']} was charged twice. {p['name']}",
            "label": "billing",
            "source": "chat",
            "language": "en",
        },
        {
            "text": f"Refund to IBAN {p['iban']} please, my server is {p['ip']}. Thanks, {p['name']}",
            "label": "billing",
            "source": p["email"],
            "language": "en",
        },
    ]
    lines = [json.dumps(r).encode() for r in rows] + [f'{{"text": "broken {p["email"]} {p["phone"]}'.encode()]
    with data.open("ab") as f:
        f.write(b"\n".join(lines) + b"\n")


def _with_pii_stage(config: Path) -> None:
    """Make sure the run scrubs PII: add the stage after normalize when the demo config lacks it."""
    cfg = yaml.safe_load(config.read_text())
    names = [s if isinstance(s, str) else next(iter(s)) for s in cfg["stages"]]
    if (
        "pii" not in names
        and importlib.util.find_spec("curation.stages.pii.stage")
        and hasattr(importlib.import_module("curation.stages.pii.stage"), "pii")
    ):
        cfg["stages"].insert(names.index("normalize") + 1 if "normalize" in names else 0, "pii")
        config.write_text(yaml.safe_dump(cfg, sort_keys=False))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    config = write_demo(out, kinds=("classification",), scale=0.1)["classification"]
    _inject(out / "data" / "classification.jsonl")
    _with_pii_stage(config)
    run_dir = out / "runs" / "classification"
    assert main(["run", str(config), "--out", str(run_dir), "--quiet"]) == 0
    assert main(["check", str(run_dir)]) in (0, 1)  # the verdict is the report's business, not this test's
    assert main(["report", str(run_dir)]) == 0
    return run_dir


def test_report_renders_in_headless_chromium_without_errors_or_requests(demo_run: Path, tmp_path: Path) -> None:
    page = demo_run / "report" / "report.html"
    load = load_page(page.resolve().as_uri(), tmp_path / "profile")
    assert load.requests == [page.resolve().as_uri()]  # the page itself, nothing else
    assert [c for c in load.console if c["level"] in ("error", "warning")] == []
    assert load.exceptions == []
    assert load.screenshot.startswith(b"\x89PNG") and len(load.screenshot) > 50_000
    assert load.print_screenshot.startswith(b"\x89PNG") and load.pdf.startswith(b"%PDF")
    keep = os.environ.get("TUNEPREP_SCREENSHOTS")  # set it to look at the page yourself
    for name, data in (("report.png", load.screenshot), ("report-print.png", load.print_screenshot), ("report.pdf", load.pdf)):
        (tmp_path / name).write_bytes(data)
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(tmp_path / name, Path(keep) / name)


def test_no_injected_pii_under_report_or_checks(demo_run: Path) -> None:
    files = [p for folder in ("report", "checks") for p in (demo_run / folder).rglob("*") if p.is_file()]
    assert any(p.name == "report.html" for p in files) and any(p.parent.name == "checks" for p in files)
    leaks = [(str(p.relative_to(demo_run)), v) for p in files for v in LEAK_FORMS if v.encode() in p.read_bytes()]
    assert leaks == []
    # the raw values did go in: they are in the (sensitive) ingest output, so the test is not vacuous
    raw = (demo_run / "quarantine.parquet").read_bytes() + (demo_run / "stages/00-ingest/output.parquet").read_bytes()
    assert PII["email"].encode() in raw


def test_demo_report_numbers_and_card(demo_run: Path) -> None:
    report = json.loads((demo_run / "report/report.json").read_text())
    manifest = json.loads((demo_run / "manifest.json").read_text())
    sections = {s["id"]: s for s in report["sections"]}
    assert all("error" not in s for s in sections.values()), [s["id"] for s in sections.values() if "error" in s]
    assert sections["verdict"]["summary"]["records_curated"] == manifest["dataset"]["rows"]
    assert sections["validation"]["validated"] and sections["validation"]["status"] == manifest["checks"]["verdict"]
    for row, entry in zip(sections["flow"]["stages"], manifest["stages"], strict=True):
        stats: dict[str, Any] = json.loads((demo_run / entry["dir"] / "stats.json").read_text())
        assert {k: row[k] for k in ("rows_in", "kept", "dropped", "quarantined")} == stats["books"]
    assert validate_card_metadata((demo_run / "report/dataset_card.md").read_text()) == []
    page = _Text()
    page.feed((demo_run / "report/report.html").read_text())
    assert numbers_in(" ".join(page.parts)) <= json_numbers(report)
