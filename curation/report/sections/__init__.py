"""The report's sections, in page order.

Each section is one module here with ``ID``, ``TITLE``, optionally ``STAGE`` (the curation
stage it reports on), ``build(src) -> dict`` (its part of report.json, computed from the
run's files) and ``html(data) -> str`` / ``markdown(data) -> str`` (formatting only).
A new stage adds its section by adding a module and one name to ``SECTIONS``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from curation.report.model import RunFiles
from curation.report.safety import scrub_value

SECTIONS = (
    "verdict",
    "lineage",
    "flow",
    "fidelity",
    "dedup",
    "pii",
    "label_audit",
    "balance",
    "preferences",
    "validation",
    "art10",
    "signoff",
)


def modules() -> list[ModuleType]:
    return [importlib.import_module(f"curation.report.sections.{name}") for name in SECTIONS]


def build_section(mod: ModuleType, src: RunFiles) -> dict[str, Any]:
    """One section's data; a stage section whose stage did not run says so and nothing more.

    A section that cannot read a stage's stats (an older or newer stats layout) records
    the error in its data instead of failing the whole report; the verdict then says
    the report is incomplete.
    """
    head: dict[str, Any] = {"id": mod.ID, "title": mod.TITLE}
    stage = getattr(mod, "STAGE", None)
    if stage and src.stage(stage) is None:
        return {**head, "ran": False, "note": f"The `{stage}` stage is not in this run's `stages:` list, so there is nothing to report."}
    try:
        return {**head, **mod.build(src), "ran": True}
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        return {**head, "ran": True, "error": scrub_value(f"could not read this section's inputs: {type(e).__name__}: {e}")}


def html(mod: ModuleType, data: dict[str, Any]) -> str:
    from curation.report.render import esc, note

    if not data.get("ran", True):
        return note(data["note"])
    if data.get("error"):
        return f"<p class=error>{esc(data['error'])}</p>"
    return str(mod.html(data))


def markdown(mod: ModuleType, data: dict[str, Any]) -> str:
    if not data.get("ran", True):
        return f"_{data['note']}_"
    if data.get("error"):
        return f"**Error:** {data['error']}"
    return str(mod.markdown(data))
