"""The gate end to end: real runs, a real GX context, the verdict, the record, require_pass and the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from checks.gate import GateInfo, require_pass, run_checks
from curation.cli import main
from curation.core.config import ChecksConfig, CustomExpectation
from curation.core.errors import ConfigError, GateFailed
from curation.core.ledger import Ledger, ledger_path_for
from curation.core.rundir import DATASET, read_manifest, write_parquet
from tests.checks.checks_fixtures import (
    LABELS,
    add_pii_stats,
    classification_rows,
    copy_run,
    failure_names,
    make_run,
    messages_rows,
    preference_rows,
    text_of,
)

Edit = Callable[[pl.DataFrame], pl.DataFrame]

UNSIGNED = "note: the verdict is unsigned; set `TUNEPREP_SIGNING_KEY` or `TUNEPREP_SIGNING_KEY_FILE` to make the manifest and verdict tamper-evident"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gate")


@pytest.fixture(scope="module")
def runs(root: Path) -> dict[str, Path]:
    """One clean run per kind, made by the real runner (copied, never modified, by the tests)."""
    return {
        "classification": make_run(root, classification_rows(20), name="cls", stages=["normalize"]),
        "preference": make_run(root, preference_rows(), kind="preference", name="pref"),
        "instruction": make_run(root, messages_rows(), kind="instruction", name="msgs"),
    }


@pytest.fixture(scope="module")
def passed(runs: dict[str, Path], root: Path) -> tuple[Path, Any]:
    run = copy_run(runs["classification"], root / "passed")
    return run, run_checks(run)


def _set(row: int, column: str, value: Any) -> Edit:
    def edit(df: pl.DataFrame) -> pl.DataFrame:
        rows = df.to_dicts()
        rows[row][column] = value
        return pl.DataFrame(rows, schema=df.schema)

    return edit


def _same(df: pl.DataFrame) -> pl.DataFrame:
    return df


def _bad_weight(df: pl.DataFrame) -> pl.DataFrame:
    """The balance stage's columns, with one negative weight (training refuses it)."""
    weights = pl.Series("sample_weight", [1.0] * df.height).scatter(3, -1.0)
    return df.with_columns(weights, pl.Series("repeat", [1] * df.height, dtype=pl.Int64))


def _zero_weights(df: pl.DataFrame) -> pl.DataFrame:
    """Every weight 0: training refuses it (no row would be learned from), so the gate must too."""
    return df.with_columns(pl.Series("sample_weight", [0.0] * df.height))


# (expectation name, kind, edit of the clean dataset, checks config, text the failure line must hold, other lines allowed)
CASES: list[tuple[str, str, Edit, dict[str, Any], str, set[str]]] = [
    ("required_columns", "classification", lambda df: df.drop("label"), {}, "columns id, text, label are present", set()),
    (
        "column_types:label",
        "classification",
        lambda df: df.with_columns(pl.int_range(pl.len()).alias("label")),
        {},
        "`label` holds str values; observed int64",
        {"label_singletons"},  # every int label is its own one-row label
    ),
    ("not_null:text", "classification", _set(3, "text", None), {}, "1 of 20 rows violate it (ids: r3)", {"token_length"}),
    ("not_empty:text", "classification", _set(4, "text", "   "), {}, "1 of 20 rows violate it (ids: r4)", {"token_length"}),
    ("unique_ids", "classification", _set(5, "id", "r6"), {}, "2 of 20 rows violate it (ids: r6, r6)", set()),
    ("no_exact_duplicates", "classification", _set(7, "text", text_of(8)), {}, "2 of 20 rows violate it (ids: r7, r8)", set()),
    (
        "label_set",
        "classification",
        _set(9, "label", "shipping"),
        {"label_set": list(LABELS)},
        "1 of 20 rows violate it (ids: r9); outside the set: 'sxxxxxxx' 1",
        {"label_singletons"},  # a new label with one row is also a singleton
    ),
    ("min_rows", "classification", _same, {"min_rows": 100}, "expected at least 100 rows; observed 20", set()),
    (
        "min_rows_per_class",
        "classification",
        _set(0, "label", "rare"),
        {"min_rows_per_class": 2},
        "observed 1 ('rxxx': 1)",
        {"label_singletons"},
    ),
    (
        "label_variants",
        "classification",
        lambda df: df.with_columns(pl.when(pl.int_range(pl.len()) < 4).then(pl.lit(" Billing")).otherwise(pl.col("label")).alias("label")),
        {},
        "observed 2 (variants: 'bxxxxxx' 8, ' Bxxxxxx' 4)",
        set(),
    ),
    (
        "label_singletons",
        "classification",
        _set(0, "label", "refund"),
        {},
        "observed 1 (one row each: 'rxxxxx')",
        set(),
    ),
    (
        "max_class_share",
        "classification",
        _same,
        {"max_class_share": 0.4},
        "at most 40% of rows; observed 0.5 ('bxxxxxx': 10 of 20 rows)",
        set(),
    ),
    ("token_length", "classification", _set(2, "text", "word " * 30), {"max_tokens": 20}, "1 of 20 rows violate it (ids: r2)", set()),
    ("chosen_differs", "preference", _set(2, "rejected", "a helpful answer 2"), {}, "1 of 12 rows violate it (ids: p2)", set()),
    ("balance_columns", "classification", _bad_weight, {}, "1 of 20 rows violate it (ids: r3)", set()),
    ("balance_columns", "classification", _zero_weights, {}, "20 of 20 rows violate it", set()),
    (
        "messages_roles",
        "instruction",
        _set(1, "messages", [{"role": "user", "content": "hi"}, {"role": "user", "content": "again"}]),
        {},
        "1 of 12 rows violate it (ids: m1)",
        set(),
    ),
]


@pytest.mark.parametrize(("name", "kind", "edit", "checks", "expected", "also"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_default_expectation_fails_with_its_line(
    runs: dict[str, Path], tmp_path: Path, name: str, kind: str, edit: Edit, checks: dict[str, Any], expected: str, also: set[str]
) -> None:
    clean = pl.read_parquet(runs[kind] / DATASET)
    run = copy_run(runs[kind], tmp_path / "run", edit(clean))
    result = run_checks(run, config=ChecksConfig(**checks))
    assert result.verdict == "fail"
    line = next(line for line in result.lines if line.startswith(f"FAIL [critical] {name}: "))
    assert expected in line, line
    assert failure_names(result.lines) == {name, *also}


def test_residual_pii_above_threshold_fails(runs: dict[str, Path], tmp_path: Path) -> None:
    run = copy_run(runs["classification"], tmp_path / "run")
    add_pii_stats(run, residual_total=2)
    result = run_checks(run)
    assert result.verdict == "fail"
    assert result.lines == ["FAIL [critical] residual_pii: expected at most 0 PII entities left after treatment; observed 2"]


def test_residual_pii_within_threshold_passes_without_warning(runs: dict[str, Path], tmp_path: Path) -> None:
    run = copy_run(runs["classification"], tmp_path / "run")
    add_pii_stats(run, residual_total=0)
    result = run_checks(run)
    assert result.verdict == "pass" and result.lines == []


def test_clean_run_passes_and_reports_missing_pii_stage(passed: tuple[Path, Any]) -> None:
    _, result = passed
    assert result.verdict == "pass"
    assert result.lines == ["WARN [warning] residual_pii: no PII stage in this run"]
    assert all(o.success for o in result.outcomes if o.check != "residual_pii")


@pytest.mark.parametrize("kind", ["preference", "instruction"])
def test_clean_runs_of_other_kinds_pass(runs: dict[str, Path], tmp_path: Path, kind: str) -> None:
    result = run_checks(copy_run(runs[kind], tmp_path / "run"))
    assert result.verdict == "pass", result.lines
    checks = {o.check for o in result.outcomes}
    assert ("chosen_differs" in checks) == (kind == "preference") and ("messages_roles" in checks) == (kind == "instruction")
    assert "label_set" not in checks and "max_class_share" not in checks


def test_verdict_is_recorded_in_manifest_ledger_and_files(passed: tuple[Path, Any]) -> None:
    run, result = passed
    section = read_manifest(run)["checks"]
    assert section["verdict"] == "pass"
    assert section["dataset_fingerprint"] == result.dataset_fingerprint == read_manifest(run)["dataset"]["fingerprint"]
    assert section["suite_fingerprint"] == result.suite_fingerprint and len(result.suite_fingerprint) == 64
    assert section["warnings"] == result.lines and section["failed"] == []
    assert [o["name"] for o in section["outcomes"]] == [o.name for o in result.outcomes]
    assert (run / section["results_path"]).is_file() and (run / section["data_docs"]).is_file()
    rows = Ledger(ledger_path_for(run)).rows("checks", run_id=result.run_id)
    assert [(r["verdict"], r["suite_fp"], r["dataset_fp"]) for r in rows] == [
        ("pass", result.suite_fingerprint, result.dataset_fingerprint)
    ]
    gx_result = json.loads((run / "checks/results.json").read_text())
    assert len(gx_result["results"]) == len(result.outcomes)
    assert json.loads((run / "checks/verdict.json").read_text())["verdict"] == "pass"


def test_data_docs_open_offline(passed: tuple[Path, Any]) -> None:
    import re

    run, result = passed
    pages = sorted((run / "checks/data_docs").rglob("*.html"))
    assert result.docs_path in pages and len(pages) >= 3  # index, the validation page, the suite page
    for page in pages:
        html = page.read_text()
        tags = re.findall(r"<(?:link|script|img)\b[^>]*>", html, flags=re.I)
        assert not [t for t in tags if re.search(r"(?:href|src)\s*=\s*[\"']?(?:https?:)?//", t)], page
        for ref in re.findall(r"<(?:link|script|img|a)\b[^>]*(?:href|src)=\"([^\"#]+)\"", html):
            if not ref.startswith(("http", "mailto:", "javascript:")):
                assert (page.parent / ref.split("?")[0]).exists(), (page, ref)
    index = result.docs_path.read_text()
    assert "validations/tuneprep_classification/" in index and "expectations/tuneprep_classification.html" in index


def test_warning_only_failure_passes_with_the_warning_reported(runs: dict[str, Path], tmp_path: Path) -> None:
    run = copy_run(runs["classification"], tmp_path / "run")
    result = run_checks(run, config=ChecksConfig(max_class_share=0.4, severity={"max_class_share": "warning", "residual_pii": "off"}))
    assert result.verdict == "pass"
    assert result.lines == [
        "WARN [warning] max_class_share: expected the largest class holds at most 40% of rows; observed 0.5 ('bxxxxxx': 10 of 20 rows)"
    ]
    assert require_pass(run).verdict == "pass"


def test_off_removes_a_check(runs: dict[str, Path], tmp_path: Path) -> None:
    clean = pl.read_parquet(runs["classification"] / DATASET)
    run = copy_run(runs["classification"], tmp_path / "run", _set(5, "id", "r6")(clean))
    result = run_checks(run, config=ChecksConfig(severity={"unique_ids": "off"}))
    assert result.verdict == "pass" and "unique_ids" not in {o.check for o in result.outcomes}


def test_errored_expectation_makes_the_verdict_error_not_pass(runs: dict[str, Path], tmp_path: Path) -> None:
    run = copy_run(runs["classification"], tmp_path / "run")
    custom = CustomExpectation(type="ExpectColumnValuesToNotBeNull", kwargs={"column": "no_such_column"}, severity="warning")
    result = run_checks(run, config=ChecksConfig(custom=[custom]))
    assert result.verdict == "error"
    assert result.lines[0].startswith("ERROR [warning] custom[0]:ExpectColumnValuesToNotBeNull:no_such_column: could not evaluate")
    assert "no_such_column" in result.lines[0]
    with pytest.raises(GateFailed, match="checks error"):
        require_pass(run)


def test_custom_expectation_on_text_keeps_raw_text_out_of_results(runs: dict[str, Path], tmp_path: Path) -> None:
    run = copy_run(runs["classification"], tmp_path / "run")
    custom = CustomExpectation(type="ExpectColumnValuesToMatchRegex", kwargs={"column": "text", "regex": "^ticket 1"})
    result = run_checks(run, config=ChecksConfig(custom=[custom]))
    assert result.verdict == "fail"
    assert failure_names(result.lines) == {"custom[0]:ExpectColumnValuesToMatchRegex:text"}
    assert "(ids: r0, r2, r3, r4, r5 ...)" in result.lines[0]
    for path in (run / "checks").rglob("*"):
        if path.suffix in (".json", ".html"):
            assert "problem in some detail" not in path.read_text(), path


@pytest.mark.parametrize(
    ("custom", "message"),
    [
        ({"type": "ExpectNothingAtAll"}, "unknown expectation `ExpectNothingAtAll`"),
        ({"type": "ExpectColumnValuesToBeBetween", "kwargs": {"colum": "text"}}, "invalid arguments"),
    ],
)
def test_bad_custom_expectation_is_a_config_error(runs: dict[str, Path], tmp_path: Path, custom: dict[str, Any], message: str) -> None:
    run = copy_run(runs["classification"], tmp_path / "run")
    with pytest.raises(ConfigError, match=message):
        run_checks(run, config=ChecksConfig(custom=[CustomExpectation(**custom)]))
    assert "checks" not in read_manifest(run)


# ---------------------------------------------------------------------------- require_pass and the CLI
def test_require_pass_returns_the_proof(passed: tuple[Path, Any]) -> None:
    run, result = passed
    assert require_pass(run) == GateInfo(result.run_id, "pass", result.dataset_fingerprint, result.suite_fingerprint)


def test_require_pass_refuses_an_unchecked_run(runs: dict[str, Path], tmp_path: Path) -> None:
    run = copy_run(runs["classification"], tmp_path / "run")
    with pytest.raises(GateFailed, match="has not been validated; run `tuneprep check"):
        require_pass(run)


def test_require_pass_refuses_a_failed_run_naming_the_failure(runs: dict[str, Path], tmp_path: Path) -> None:
    clean = pl.read_parquet(runs["classification"] / DATASET)
    run = copy_run(runs["classification"], tmp_path / "run", _set(5, "id", "r6")(clean))
    run_checks(run)
    with pytest.raises(GateFailed, match=r"checks fail for run .*: FAIL \[critical\] unique_ids: "):
        require_pass(run)


def test_acceptance_check_passes_then_an_edited_row_is_refused(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(runs["classification"], tmp_path / "run")
    assert main(["check", str(run)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("checks pass: ") and err.splitlines() == ["WARN [warning] residual_pii: no PII stage in this run", UNSIGNED]
    assert require_pass(run).verdict == "pass"
    df = pl.read_parquet(run / DATASET)
    write_parquet(run / DATASET, _set(0, "text", "ticket 0 asks about something else")(df))
    with pytest.raises(
        GateFailed, match=r"dataset fingerprint mismatch: .* changed since it was validated \(validated [0-9a-f]{12}, now [0-9a-f]{12}\)"
    ):
        require_pass(run)
    assert main(["export", str(run), "--format", "parquet"]) == 1
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and "dataset fingerprint mismatch" in err_lines[0]
    # the training entry point and its command refuse before loading any model
    from training.api import train

    with pytest.raises(GateFailed, match="dataset fingerprint mismatch"):
        train(run)
    assert main(["train", str(run), "--quiet"]) == 1
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("error: dataset fingerprint mismatch:")


def test_cli_check_fails_with_one_line_per_failed_expectation(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean = pl.read_parquet(runs["classification"] / DATASET)
    edited = _set(7, "text", text_of(8))(_set(5, "id", "r6")(clean))
    run = copy_run(runs["classification"], tmp_path / "run", edited)
    assert main(["check", str(run)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert [line.split(": ", 1)[0] for line in err[:-2]] == [
        "FAIL [critical] unique_ids",
        "FAIL [critical] no_exact_duplicates",
        "WARN [warning] residual_pii",
    ]
    assert err[-2] == UNSIGNED
    assert err[-1].startswith("error: checks fail: 2 critical failed, 0 errored; details in ")
    assert "Traceback" not in "\n".join(err)


def test_cli_check_on_a_missing_run_is_a_one_line_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_unloadable_tokenizer_is_a_config_error(runs: dict[str, Path], tmp_path: Path) -> None:
    run = copy_run(runs["classification"], tmp_path / "run")
    with pytest.raises(ConfigError, match=r"`checks.tokenizer`: cannot load a tokenizer from '.*nope' offline"):
        run_checks(run, config=ChecksConfig(tokenizer=str(tmp_path / "nope")))


def test_demo_corpus_curated_with_dedup_passes_the_gate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Acceptance 1 on the messy demo corpus: once exact duplicates are removed and label variants folded, the default suite passes."""
    import yaml

    from curation.core.config import parse_config
    from curation.core.runner import run_pipeline
    from curation.demo import write_demo

    config = write_demo(tmp_path, kinds=("classification",), scale=0.05)["classification"]
    data = yaml.safe_load(config.read_text())
    stages = ["normalize", "dedup", "label_audit"]  # without label_audit the gate fails on the corpus's label variants
    run = run_pipeline(parse_config({**data, "stages": stages}, base_dir=config.parent), out_dir=tmp_path / "run").run_dir
    assert main(["check", str(run)]) == 0
    assert capsys.readouterr().err.splitlines() == ["WARN [warning] residual_pii: no PII stage in this run", UNSIGNED]
    assert require_pass(run).dataset_fingerprint == read_manifest(run)["dataset"]["fingerprint"]


def test_empty_dataset_fails_and_still_reports_the_missing_pii_stage(runs: dict[str, Path], tmp_path: Path) -> None:
    clean = pl.read_parquet(runs["classification"] / DATASET)
    result = run_checks(copy_run(runs["classification"], tmp_path / "run", clean.clear()))
    assert result.verdict == "fail" and not result.errors
    assert "FAIL [critical] min_rows: expected at least 1 rows; observed 0" in result.lines
    assert "WARN [warning] residual_pii: no PII stage in this run" in result.lines


@pytest.mark.slow
def test_residual_pii_is_read_from_the_real_pii_stage(tmp_path: Path) -> None:
    rows = [
        {**r, "text": f"{r['text']}, write to jane.doe{i}@example.com"} if i % 4 == 0 else r for i, r in enumerate(classification_rows(12))
    ]
    run = make_run(tmp_path, rows, name="pii", stages=["normalize", "pii"])
    stats = json.loads(next((run / "stages").glob("*-pii/stats.json")).read_text())
    result = run_checks(run)
    residual = next(o for o in result.outcomes if o.check == "residual_pii")
    assert (residual.severity, residual.success, residual.observed) == ("critical", True, stats["metrics"]["residual_total"])
    assert result.verdict == "pass"  # 3 of 12 rows had an e-mail: above the default 20% share, a fidelity warning only
    assert result.lines == [
        "WARN [warning] fidelity:pii: expected pii rewrites at most 20% of the rows it keeps; observed 0.25 (25.0%: 3 of 12 rows)"
    ]


def test_run_checks_accepts_a_relative_run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from curation.core.config import parse_config
    from curation.core.runner import run_pipeline

    data = tmp_path / "in.jsonl"
    data.write_text("\n".join(f'{{"text": "ticket {i} about a refund", "label": "{"ab"[i % 2]}"}}' for i in range(6)) + "\n")
    run_pipeline(parse_config({"input": {"path": str(data), "kind": "classification"}, "stages": ["normalize"]}), out_dir=tmp_path / "r")
    monkeypatch.chdir(tmp_path)
    result = run_checks(Path("r"))
    assert result.verdict == "pass" and result.docs_path.is_file(), result.lines
