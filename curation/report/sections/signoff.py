"""The sign-off block: what the reviewer signs, and against which fingerprints."""

from __future__ import annotations

from typing import Any

from curation.report.model import RunFiles
from curation.report.render import esc

ID = "signoff"
TITLE = "Sign-off"

FIELDS = ("Reviewer name", "Role", "Organisation", "Date", "Signature")
DECISIONS = ("Approved for training", "Approved with conditions (below)", "Rejected")


def build(src: RunFiles) -> dict[str, Any]:
    m = src.manifest
    return {
        "statement": "I have reviewed this report and the evidence it links to. My decision applies to the dataset identified by the fingerprints below and to no other version of it.",
        "run_id": m.get("run_id"),
        "dataset_fingerprint": src.dataset_fingerprint,
        "config_fingerprint": m.get("config", {}).get("fingerprint"),
        "fields": list(FIELDS),
        "decisions": list(DECISIONS),
    }


def html(data: dict[str, Any]) -> str:
    ids = (
        f'<dl class="kv fp"><dt>Run</dt><dd><code>{esc(data["run_id"])}</code></dd><dt>Dataset fingerprint</dt><dd><code>{esc(data["dataset_fingerprint"])}</code></dd>'
        f"<dt>Config fingerprint</dt><dd><code>{esc(data['config_fingerprint'])}</code></dd></dl>"
    )
    decisions = "".join(f"<li><span class=box></span>{esc(d)}</li>" for d in data["decisions"])
    fields = "".join(f"<div class=field><span class=line></span><span class=lbl>{esc(f)}</span></div>" for f in data["fields"])
    return (
        f"<div class=signoff><p>{esc(data['statement'])}</p>{ids}<ul class=decisions>{decisions}</ul>"
        f"<div class=conditions><span class=lbl>Conditions and comments</span></div><div class=fields>{fields}</div></div>"
    )


def markdown(data: dict[str, Any]) -> str:
    lines = [
        data["statement"],
        "",
        f"- Run: `{data['run_id']}`",
        f"- Dataset fingerprint: `{data['dataset_fingerprint']}`",
        f"- Config fingerprint: `{data['config_fingerprint']}`",
        "",
    ]
    lines += [f"- [ ] {d}" for d in data["decisions"]]
    lines += ["", "Conditions and comments:", "", "", *[f"{f}: ______________________" for f in data["fields"]]]
    return "\n".join(lines)
