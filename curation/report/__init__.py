"""The compliance report: one self-contained page a reviewer can sign off, plus a dataset card.

``build_report(run_dir)`` reads the run's files (manifest, config, stage stats, charts,
checks results; never the rows) and writes ``RUN/report/``:

- ``report.json``: everything the page shows, assembled by ``model`` and ``sections``;
- ``report.html``: one file, inline CSS and SVG, no script, no network request;
- ``report.md``: the same in Markdown;
- ``dataset_card.md``: a Hugging Face dataset card with YAML metadata, pre-filled.

The renderers format report.json and compute nothing, so every number on the page is
in report.json, and every number there comes from the stage stats or the manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curation.core.rundir import write_bytes, write_json
from curation.report.model import REPORT_FORMAT, load_run

REPORT_DIR = "report"


def assemble(run_dir: Path) -> dict[str, Any]:
    """The report as a dict (what report.json holds)."""
    from curation.report import sections

    src = load_run(run_dir)
    built = [sections.build_section(mod, src) for mod in sections.modules()]
    broken = [s["title"] for s in built if s.get("error")]
    for s in built:
        if s["id"] == "verdict" and s.get("ran"):
            s["incomplete_sections"] = broken
    run = src.manifest
    return {
        "report_format": REPORT_FORMAT,
        "title": "Dataset compliance report",
        "generated_by": {"name": "tuneprep", "version": run.get("versions", {}).get("tuneprep", "unknown")},
        "run": {
            "run_id": run.get("run_id"),
            "kind": run.get("kind"),
            "created": run.get("created"),
            "dataset_fingerprint": src.dataset_fingerprint,
        },
        "sections": built,
    }


def build_report(run_dir: Path) -> Path:
    """Write ``RUN/report/`` (report.json, report.html, report.md, dataset_card.md); return report.html.

    The same run files give byte-identical output (no timestamps of its own).

    Raises:
        RunError: ``run_dir`` is not a finished run directory.
    """
    from curation.report.card import render_card
    from curation.report.html import render_html
    from curation.report.markdown import render_markdown

    out = Path(run_dir) / REPORT_DIR
    report = assemble(Path(run_dir))
    write_json(out / "report.json", report)
    write_bytes(out / "report.md", render_markdown(report).encode("utf-8"))
    write_bytes(out / "dataset_card.md", render_card(report).encode("utf-8"))
    write_bytes(out / "report.html", render_html(report).encode("utf-8"))
    return out / "report.html"
