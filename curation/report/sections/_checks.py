"""Read the validation gate's results (the manifest's ``checks`` section) for the report.

The report does not import ``checks``: it reads what the gate wrote. Field names are
looked up under the few spellings a results record may use, and anything unknown is
kept as text, so a new field in the gate's output does not break the report.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from curation.core.rundir import DATASET
from curation.report.model import RunFiles, rounded
from curation.report.safety import scrub_value

_IDS = re.compile(r"\s*\(ids?:[^)]*\)?")  # offending row ids: in the Data Docs, noise on a one-page summary
_PASS = {"pass", "passed", "success", "succeeded", "ok", "true"}
_FAIL = {"fail", "failed", "failure", "error", "false"}


def first(record: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    """The value of the first key present in ``record``."""
    for key in keys:
        if key in record and record[key] is not None:
            return record[key]
    return default


def _status(value: Any) -> str:
    if isinstance(value, bool):
        return "pass" if value else "fail"
    text = str(value).strip().lower()
    if text in _PASS:
        return "pass"
    if text in _FAIL:
        return "fail"
    return "warn" if text.startswith("warn") or "warning" in text else text


def _observed(value: Any) -> Any:
    """An observed value as the page may show it: numbers only, never the data's own values.

    A mapping keeps its numeric entries (``rows``, ``unexpected``), a list becomes its
    length, and text is masked and cut, so that unexpected values (which may be raw
    text) never reach the report.
    """
    if isinstance(value, float):
        return rounded(value)
    if isinstance(value, (int, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        nums = [
            f"{k}: {v:,}" if isinstance(v, int) else f"{k}: {rounded(v)}"
            for k, v in value.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        return ", ".join(nums) or None
    if isinstance(value, list):
        return f"{len(value)} values"
    text = scrub_value(str(value))
    return text if len(text) <= 60 else text[:59] + "…"


def _cut(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def expectation_rows(checks: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One normalised row per expectation result."""
    raw = next((v for k in ("outcomes", "results", "expectation_results") if isinstance(v := checks.get(k), list)), [])
    rows = []
    for r in raw if isinstance(raw, list) else []:
        if not isinstance(r, Mapping):
            continue
        kwargs: Mapping[str, Any] = r["kwargs"] if isinstance(r.get("kwargs"), Mapping) else {}
        rows.append(
            {
                "check": str(first(r, "name", "check", "expectation", "expectation_type", "type", default="expectation")),
                "expectation": str(first(r, "expectation_type", "type", "expectation", default="")),
                "column": str(first(r, "column", default=first(kwargs, "column", default="")) or ""),
                "severity": str(first(r, "severity", default="critical")),
                "status": _status(first(r, "status", "success", "passed", default="unknown")) if not r.get("error") else "fail",
                "observed": _observed(first(r, "observed", "observed_value", "result", "summary", default=None)),
                "message": _cut(scrub_value(_IDS.sub("", str(first(r, "error", "message", "detail", default=""))).strip())),
            }
        )
    return rows


def _failure(row: Mapping[str, Any]) -> str:
    message = str(row.get("message") or "")
    return f"{row['check']}: {message}" if message else str(row["check"])


def _stale(src: RunFiles, validated_fp: Any) -> str:
    """Why the validation does not hold for the dataset file as it is now; empty when it does.

    The same comparison as the gate's before export and training: the file's current
    fingerprint against the one that was validated.
    """
    if src.dataset is None:
        return f"the validated dataset file `{DATASET.as_posix()}` is missing; rerun `tuneprep run` and `tuneprep check RUN`"
    if validated_fp and validated_fp != src.dataset.fingerprint:
        return (
            f"the dataset changed after it was validated (validated {str(validated_fp)[:12]}, now {src.dataset.fingerprint[:12]}); "
            "rerun `tuneprep check RUN`"
        )
    return ""


def outcome(src: RunFiles) -> dict[str, Any]:
    """The gate's verdict for the report: status, counts, failures and whether it is stale."""
    checks = src.checks
    if checks is None:
        return {
            "status": "not_validated",
            "validated": False,
            "reason": "the validation gate (`tuneprep check RUN`) has not been run on this dataset",
        }
    rows = expectation_rows(checks)
    validated_fp = first(checks, "dataset_fingerprint", "dataset_fp", default=None)
    if isinstance(checks.get("dataset"), Mapping):
        validated_fp = validated_fp or checks["dataset"].get("fingerprint")
    stale_reason = _stale(src, validated_fp)
    failed = [r for r in rows if r["status"] == "fail"]
    if not rows:  # no per-expectation outcomes: fall back to the gate's one-line summaries
        failed = [{"check": _cut(scrub_value(x)), "severity": "critical"} for x in checks.get("failed", []) if isinstance(x, str)]
        failed += [{"check": _cut(scrub_value(x)), "severity": "warning"} for x in checks.get("warnings", []) if isinstance(x, str)]
    status = _status(
        first(checks, "verdict", "status", "success", default="fail" if any(r["severity"] == "critical" for r in failed) else "pass")
    )
    return {
        "status": "not_validated" if stale_reason else status,
        "validated": True,
        "stale": bool(stale_reason),
        "reason": stale_reason,
        "validated_fingerprint": validated_fp,
        "suite_fingerprint": first(checks, "suite_fingerprint", "suite_fp", default=None),
        "passed": sum(r["status"] == "pass" for r in rows),
        "failed": len(failed),
        "failed_critical": [_failure(r) for r in failed if r["severity"] == "critical"],
        "failed_warning": [_failure(r) for r in failed if r["severity"] != "critical"],
        "rows": rows,
    }
