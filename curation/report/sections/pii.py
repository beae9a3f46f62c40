"""Personal data: what the PII stage found per entity type, how it treated it, what it still finds.

The stage's stats hold counts and masked samples only; this section shows counts per
entity (found, operator, residual after treatment) and the evaluation status of the
PII configuration (was it measured against labelled data, and how well it did).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from curation.report.model import RunFiles, StageRecord, scalars
from curation.report.render import chips, kv, md_code, md_kv, md_table, note, prose, table
from curation.report.safety import scrub_value
from curation.report.sections._stage import common, common_html, common_md, extra_html, extra_md

ID = "pii"
TITLE = "Personal data (PII)"
STAGE = "pii"

# stats keys holding {ENTITY: count} for each column of the entity table, in lookup order
_FOUND = ("found_by_entity", "found", "detected_by_entity", "entities_found")
_RESIDUAL = ("residual_by_entity", "residual", "residual_found")
_OPERATOR = ("operator_by_entity", "operators")
_SAMPLES = ("samples_by_entity", "samples")
_KNOWN = {*_FOUND, *_RESIDUAL, *_OPERATOR, *_SAMPLES, "entities", "evaluation"}
MAX_SAMPLES = 3  # masked shapes per entity type


def _lookup(m: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    for k in keys:
        if isinstance(m.get(k), Mapping):
            return dict(m[k])
    return {}


def _entity_rows(m: Mapping[str, Any], options: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per entity type from either ``entities: {TYPE: {...}}`` or parallel per-type maps."""
    entities = m.get("entities")
    per = {str(k): dict(v) for k, v in entities.items() if isinstance(v, Mapping)} if isinstance(entities, Mapping) else {}
    configured = [str(e) for e in entities] if isinstance(entities, list) else []
    found, residual, ops, samples = _lookup(m, _FOUND), _lookup(m, _RESIDUAL), _lookup(m, _OPERATOR), _lookup(m, _SAMPLES)
    ops_cfg: Mapping[str, Any] = options["operators"] if isinstance(options.get("operators"), Mapping) else {}
    rows = []
    has_residual = bool(residual) or any(k in m for k in _RESIDUAL) or "residual_total" in m
    for entity in sorted(set(per) | set(found) | set(residual) | set(configured), key=lambda e: (-int(found.get(e, 0)), e)):
        e = per.get(entity, {})
        rows.append(
            {
                "entity": entity,
                "found": e.get("found", found.get(entity, 0)),
                "operator": str(e.get("operator") or ops.get(entity) or ops_cfg.get(entity) or options.get("operator") or ""),
                "residual": e.get("residual", residual.get(entity, 0 if has_residual else None)),
                "masked_examples": [s for s in samples.get(entity, [])[:MAX_SAMPLES] if is_masked_shape(s)],
            }
        )
    return rows


def is_masked_shape(sample: Any) -> bool:
    """True for a masked value such as ``K******* A*****`` or ``j***@e******.com``: no two letters or digits in a row.

    The PII stage masks its samples with ``curation.stages.pii.stage.mask_value``; this guard keeps
    anything that is not such a shape (an unmasked value from an older stage) off the page.
    """
    if not isinstance(sample, str):
        return False
    return not re.search(r"[^\W_]{2}", re.sub(r"\.[a-z]{2,}$", "", sample))


def _changed_from_defaults(options: Mapping[str, Any]) -> list[str] | None:
    """Options that differ from the PII stage's defaults (the evaluated configuration); None if unknown."""
    try:
        from curation.stages.pii.stage import PiiConfig
    except ImportError:
        return None
    defaults = PiiConfig.model_validate({}).model_dump(mode="json")
    # options a newer stage added are not in an older run's stats: compare what the run recorded
    return sorted(k for k in options if k not in ("workers", "batch_size") and defaults.get(k) != options[k])


def _evaluation(m: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Whether the PII configuration's accuracy is known: recorded by the stage, or by the evaluation of the defaults."""
    ev = m.get("evaluation")
    if isinstance(ev, Mapping):
        return {"status": scrub_value(str(ev.get("status", "reported"))), "metrics": scalars(ev, skip={"status"})}
    if isinstance(ev, str):
        return {"status": scrub_value(ev), "metrics": {}}
    changed = _changed_from_defaults(options)
    if changed == []:
        status = (
            "default configuration: the one measured by tuneprep's PII evaluation (`tests/benchmarks/eval_pii.py`, see `docs/pii.md`) "
            "on a synthetic labelled corpus; not evaluated on this data"
        )
    elif changed:
        status = f"custom configuration (differs from the evaluated defaults in {', '.join(changed)}): not evaluated; measure recall on a labelled sample of this data"
    else:
        status = "not evaluated: no precision or recall for this configuration is recorded"
    return {"status": status, "metrics": {}}


def totals(rec: StageRecord) -> tuple[int, int | None]:
    """Entities found, and still found after treatment (None when the stage did not count them)."""
    rows = _entity_rows(rec.metrics, rec.config)
    residual = sum(int(r["residual"] or 0) for r in rows) if any(r["residual"] is not None for r in rows) else None
    return sum(int(r["found"] or 0) for r in rows), residual


def build(src: RunFiles) -> dict[str, Any]:
    rec = src.stage(STAGE)
    assert rec is not None
    found, residual = totals(rec)
    return {
        **common(rec),
        "entities": _entity_rows(rec.metrics, rec.config),
        "total_found": found,
        "total_residual": residual,
        "evaluation": _evaluation(rec.metrics, rec.config),
        "metrics": scalars(rec.metrics, skip=_KNOWN),
    }


def html(data: dict[str, Any]) -> str:
    out = [common_html(data)]
    if data["entities"]:
        rows = [(r["entity"], r["found"], r["operator"], r["residual"], chips(r["masked_examples"])) for r in data["entities"]]
        head = ["Entity type", "Found", "Treatment (operator)", "Residual after treatment", "Masked examples"]
        out.append("<h4>Entities</h4>" + table(head, rows, numeric=(1, 3)))
        out.append(kv([("Total found", data["total_found"]), ("Total residual", data["total_residual"])]))
        out.append(
            "<p class=small>Examples are masked by the PII stage: letters after the first of each word and every digit become *, "
            "so that only the shape of a value is shown.</p>"
        )
    else:
        out.append(note("The PII stage recorded no entity counts."))
    ev = data["evaluation"]
    out.append(
        f"<h4>Evaluation of the PII configuration</h4><p>{prose(ev['status'])}</p>" + (kv(ev["metrics"].items()) if ev["metrics"] else "")
    )
    out.append(extra_html("Other recorded metrics", data["metrics"]))
    return "".join(out)


def markdown(data: dict[str, Any]) -> str:
    parts = [common_md(data)]
    if data["entities"]:
        parts.append(
            md_table(
                ["Entity type", "Found", "Operator", "Residual", "Masked examples"],
                [(r["entity"], r["found"], r["operator"], r["residual"], md_code(r["masked_examples"]) or "—") for r in data["entities"]],
            )
        )
        parts.append(md_kv([("Total found", data["total_found"]), ("Total residual", data["total_residual"])]))
        parts.append(
            "Examples are masked by the PII stage: letters after the first of each word and every digit become `*`, "
            "so that only the shape of a value is shown."
        )
    parts.append(f"Evaluation: {data['evaluation']['status']}")
    if data["evaluation"]["metrics"]:
        parts.append(md_kv(data["evaluation"]["metrics"].items()))
    parts.append(extra_md("Other recorded metrics", data["metrics"]))
    return "\n\n".join(p for p in parts if p)
