"""The suite as data: which checks apply per kind, severities, fingerprints, config validation."""

from __future__ import annotations

import typing

import pytest

from checks.fidelity import StageRewrite
from checks.suites import CHECKS, build_suite, suite_fingerprint
from curation.core.config import ChecksConfig, CustomExpectation, parse_config
from curation.core.errors import ConfigError

CLS = ["id", "text", "label"]


def _checks(kind: str, columns: list[str], cfg: ChecksConfig | None = None, *, pii_ran: bool = True) -> dict[str, str]:
    return {s.name: s.severity for s in build_suite(kind, columns, cfg or ChecksConfig(), pii_ran=pii_ran)}  # type: ignore[arg-type]


def test_checks_per_kind() -> None:
    cls = _checks("classification", CLS)
    assert {
        "required_columns",
        "not_null:label",
        "not_empty:text",
        "unique_ids",
        "no_exact_duplicates",
        "min_rows_per_class",
        "max_class_share",
        "residual_pii",
    } <= set(cls)
    assert "label_set" not in cls and "not_empty:label" not in cls  # no declared set; a label may be short
    assert "label_set" in _checks("classification", CLS, ChecksConfig(label_set=["a"]))
    pref = _checks("preference", ["id", "prompt", "chosen", "rejected", "margin"])
    assert {"chosen_differs", "column_types:margin", "not_empty:chosen"} <= set(pref) and "max_class_share" not in pref
    msgs = _checks("instruction", ["id", "messages"])
    assert "messages_roles" in msgs and "not_null:messages" not in msgs and "column_types:messages" not in msgs
    assert "messages_roles" not in _checks("instruction", ["id", "prompt", "completion", "system"])


def test_severity_overrides_and_missing_pii_stage() -> None:
    cfg = ChecksConfig(severity={"unique_ids": "warning", "max_class_share": "off"})
    checks = _checks("classification", CLS, cfg, pii_ran=False)
    assert checks["unique_ids"] == "warning" and "max_class_share" not in checks
    assert checks["residual_pii"] == "warning"  # nothing looked for PII: reported, never a silent pass
    assert _checks("classification", CLS, ChecksConfig(severity={"residual_pii": "critical"}), pii_ran=False)["residual_pii"] == "critical"
    assert _checks("classification", CLS, pii_ran=True)["residual_pii"] == "critical"


def test_fingerprint_follows_the_suite_not_the_object() -> None:
    base = suite_fingerprint(build_suite("classification", CLS, ChecksConfig(), pii_ran=True))
    assert base == suite_fingerprint(build_suite("classification", CLS, ChecksConfig(), pii_ran=True))
    changed = [
        build_suite("classification", CLS, ChecksConfig(max_class_share=0.5), pii_ran=True),
        build_suite("classification", CLS, ChecksConfig(), pii_ran=False),
        build_suite(
            "classification",
            CLS,
            ChecksConfig(custom=[CustomExpectation(type="ExpectColumnValuesToNotBeNull", kwargs={"column": "text"})]),
            pii_ran=True,
        ),
        build_suite("text", ["id", "text"], ChecksConfig(), pii_ran=True),
    ]
    assert len({base, *(suite_fingerprint(s) for s in changed)}) == 5


REWRITE = StageRewrite(
    "pii", "03_pii", rows_compared=10, rows_rewritten=3, share=0.3, top_rows=2, top_value="'Jxxx' -> '<PERSON>'", sampled=False
)


def test_check_names_match_the_config_literal() -> None:
    annotation = ChecksConfig.model_fields["severity"].annotation
    assert typing.get_args(typing.get_args(annotation)[0]) == CHECKS
    names = {
        s.check
        for kind, cols in [
            ("classification", [*CLS, "sample_weight", "repeat"]),
            ("preference", ["id", "prompt", "chosen", "rejected"]),
            ("instruction", ["id", "messages"]),
        ]
        for s in build_suite(kind, cols, ChecksConfig(label_set=["a"]), pii_ran=True, rewrites=[REWRITE])
    }  # type: ignore[arg-type]
    assert names == set(CHECKS)  # every configurable check exists in some suite, and only those


def test_config_errors_are_one_line_each() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(
            {
                "input": {"path": "x.jsonl", "kind": "text"},
                "checks": {"severity": {"uniq_ids": "warning", "min_rows": "loud"}, "max_class_share": 0},
            }
        )
    lines = err.value.lines()
    assert len(lines) == 3
    assert any("`checks.severity.uniq_ids`: unknown key; expected 'required_columns'" in line for line in lines)
    assert any("`checks.severity.min_rows`: input should be 'critical', 'warning' or 'off'" in line for line in lines)
    assert any("`checks.max_class_share`: input should be greater than 0" in line for line in lines)


def test_fidelity_thresholds_per_stage_and_severity() -> None:
    cfg = ChecksConfig.model_validate({"fidelity": {"max_rewrite_share": {"pii": 0.5}, "max_repeated_value_rows": 7}})
    specs = {s.name: s for s in build_suite("text", ["id", "text"], cfg, pii_ran=True, rewrites=[REWRITE])}
    share, repeats = specs["fidelity:pii"], specs["fidelity:pii:repeats"]
    assert (share.severity, share.kwargs) == ("warning", {"column": "_rewrite_share_03_pii", "max_value": 0.5})
    assert (repeats.severity, repeats.kwargs) == ("warning", {"column": "_repeated_value_rows_03_pii", "max_value": 7})
    critical = ChecksConfig.model_validate({"severity": {"fidelity": "critical"}})
    assert {
        s.severity for s in build_suite("text", ["id", "text"], critical, pii_ran=True, rewrites=[REWRITE]) if s.check == "fidelity"
    } == {"critical"}
    assert not [s for s in build_suite("text", ["id", "text"], ChecksConfig(), pii_ran=True) if s.check == "fidelity"]
