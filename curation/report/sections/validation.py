"""Validation results: the gate's verdict, each expectation's outcome, and a link to the Data Docs."""

from __future__ import annotations

from typing import Any

from curation.report.model import RunFiles
from curation.report.render import badge, esc, kv, md_kv, md_table, note, num
from curation.report.sections import _checks

ID = "validation"
TITLE = "Validation results"


def build(src: RunFiles) -> dict[str, Any]:
    gate = _checks.outcome(src)
    checks = src.checks or {}
    docs = checks.get("data_docs")
    return {
        **gate,
        "suite": _checks.first(checks, "suite", "suite_name", default=None),
        "validated_at": _checks.first(checks, "checked_at", "validated_at", "at", default=None),
        "data_docs": src.rel(docs) if isinstance(docs, str) and docs else None,
        "results_file": src.rel(checks["results_path"]) if isinstance(checks.get("results_path"), str) else None,
        "dataset_fingerprint": src.dataset_fingerprint,
    }


def html(data: dict[str, Any]) -> str:
    if not data["validated"]:
        return note(f"Not validated: {data['reason']}. Run `tuneprep check RUN`, then `tuneprep report RUN` again.")
    out = [f"<p>{badge(data['status'])} {esc(data['reason'])}</p>"]
    facts = [
        ("Suite", data["suite"]),
        ("Suite fingerprint", data["suite_fingerprint"]),
        ("Validated dataset", data["validated_fingerprint"]),
        ("Validated at", data["validated_at"]),
    ]
    out.append(kv([(k, v) for k, v in facts if v is not None]))
    if data["data_docs"]:
        out.append(
            f'<p>Full results with every observed value: <a href="{esc(data["data_docs"])}">Great Expectations Data Docs</a> (<code>{esc(data["data_docs"])}</code>).</p>'
        )
    if data["rows"]:
        html_rows = "".join(
            f"<tr class={esc(r['status'])}><td class=key>{esc(r['check'])}</td><td>{esc(r['column'])}</td><td>{esc(r['severity'])}</td><td>{badge(r['status'])}</td>"
            f"<td class=num>{esc(num(r['observed']))}</td><td>{esc(r['message'])}</td></tr>"
            for r in data["rows"]
        )
        out.append(
            f"<table><thead><tr><th>Check</th><th>Column</th><th>Severity</th><th>Result</th><th class=num>Observed</th><th>Detail</th></tr></thead><tbody>{html_rows}</tbody></table>"
        )
    else:
        out.append(note("The gate recorded no per-expectation results."))
    return "".join(out)


def markdown(data: dict[str, Any]) -> str:
    if not data["validated"]:
        return f"Not validated: {data['reason']}."
    parts = [
        md_kv(
            [
                ("Verdict", data["status"]),
                ("Suite fingerprint", data["suite_fingerprint"]),
                ("Validated dataset", data["validated_fingerprint"]),
            ]
        )
    ]
    if data["data_docs"]:
        parts.append(f"Data Docs: [{data['data_docs']}]({data['data_docs']})")
    parts.append(
        md_table(
            ["Check", "Column", "Severity", "Result", "Observed"],
            [(r["check"], r["column"], r["severity"], r["status"], r["observed"]) for r in data["rows"]],
        )
    )
    return "\n\n".join(parts)
