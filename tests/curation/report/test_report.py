"""The compliance report: traceable numbers, a self-contained page, robustness to stats it does not know."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.cli import main
from curation.core.errors import GateFailed
from curation.core.rundir import file_fingerprint, read_manifest, write_json
from curation.report import assemble, build_report
from curation.report.card import render_card, size_category, validate_card_metadata
from curation.report.safety import sanitize_svg, scrub_value

ROWS = [
    {
        "text": f"Order {i} arrived late, please help with ticket {i}",
        "label": ["billing", "technical", " Billing"][i % 3],
        "source": "email" if i % 4 else "chat",
    }
    for i in range(30)
]


# ---------------------------------------------------------------------------- helpers
def _stats(run_dir: Path, stage_dir: str) -> dict[str, Any]:
    return json.loads((run_dir / stage_dir / "stats.json").read_text())  # type: ignore[no-any-return]


def _section(report: dict[str, Any], sid: str) -> dict[str, Any]:
    return next(s for s in report["sections"] if s["id"] == sid)


def add_stage(
    run_dir: Path, name: str, metrics: dict[str, Any], *, charts: dict[str, str] | None = None, dropped: dict[str, int] | None = None
) -> None:
    """Append a stage to a finished run as a later stage would write it (stats.json, charts, manifest entry)."""
    manifest = read_manifest(run_dir)
    last = manifest["stages"][-1]
    idx = last["index"] + 1
    rows = last["books"]["kept"]
    n_dropped = sum((dropped or {}).values())
    books = {"rows_in": rows, "kept": rows - n_dropped, "dropped": n_dropped, "quarantined": 0}
    stage_dir = run_dir / "stages" / f"{idx:02d}-{name}"
    (stage_dir / "charts").mkdir(parents=True)
    for file, svg in (charts or {}).items():
        (stage_dir / "charts" / file).write_text(svg)
    stats = {"stage": name, "books": books, "dropped_by_reason": dropped or {}, "config": {"threshold": 0.5}, "metrics": metrics}
    write_json(stage_dir / "stats.json", stats)
    entry = {**last, "index": idx, "name": name, "dir": f"stages/{stage_dir.name}", "books": books, "dropped_by_reason": dropped or {}}
    write_json(run_dir / "manifest.json", {**manifest, "stages": [*manifest["stages"], entry]})


class _Text(HTMLParser):
    """The text a reader sees: everything outside <style>, attribute values excluded."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self._skip = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._skip = False

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?(?![\w])")


def numbers_in(text: str) -> set[float]:
    return {float(m.replace(",", "")) for m in NUMBER.findall(text)}


def json_numbers(value: Any) -> set[float]:
    """Every number report.json holds: numeric values, and numbers written inside its strings."""
    if isinstance(value, bool):
        return set()
    if isinstance(value, (int, float)):
        return {abs(float(value))}  # the page's number tokens carry no sign
    if isinstance(value, str):
        return numbers_in(value)
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return set().union(*(json_numbers(v) for v in items)) if items else set()


@pytest.fixture
def run(make_run: Any) -> Path:
    result = make_run([*ROWS, b"{broken", {"text": "\u200b\u200b", "label": "x"}], stages=["normalize"])
    return Path(result.run_dir)


# ---------------------------------------------------------------------------- the files
def test_report_files_are_written_and_deterministic(run: Path) -> None:
    html_path = build_report(run)
    out = run / "report"
    assert html_path == out / "report.html"
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(first) == {"report.html", "report.md", "report.json", "dataset_card.md"}
    build_report(run)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first


def test_numbers_trace_to_stage_stats(run: Path) -> None:
    build_report(run)
    report = json.loads((run / "report/report.json").read_text())
    manifest = read_manifest(run)
    ingest = _stats(run, "stages/00-ingest")
    summary = _section(report, "verdict")["summary"]
    assert summary["rows_in"] == ingest["books"]["rows_in"] == 32
    assert summary["rows_quarantined"] == manifest["quarantine"]["rows"] == 1
    assert summary["records_curated"] == manifest["dataset"]["rows"] == 30
    flow = _section(report, "flow")
    for row, entry in zip(flow["stages"], manifest["stages"], strict=True):
        stats = _stats(run, entry["dir"])
        assert {k: row[k] for k in ("rows_in", "kept", "dropped", "quarantined")} == stats["books"]
    assert [(r["stage"], r["reason"], r["rows"]) for r in flow["reasons"]] == [("normalize", "empty_after_normalize", 1)]
    lineage = _section(report, "lineage")
    assert lineage["dataset"]["fingerprint"] == manifest["dataset"]["fingerprint"]
    assert [i["sha256"] for i in lineage["inputs"]] == [i["sha256"] for i in manifest["inputs"]]


def test_every_number_on_the_page_is_in_report_json(run: Path) -> None:
    add_stage(
        run,
        "balance",
        {"facets": {"label": {"values": 2, "counts": {"billing": 20, "technical": 10}, "imbalance_ratio": 2.0, "alerts": 0}}},
    )
    build_report(run)
    parser = _Text()
    parser.feed((run / "report/report.html").read_text())
    shown = numbers_in(" ".join(parser.parts))
    assert {32.0, 30.0, 66.7} <= shown  # rows read, curated, the billing share
    assert shown <= json_numbers(json.loads((run / "report/report.json").read_text()))


def test_page_is_self_contained(run: Path) -> None:
    html = build_report(run).read_text()
    assert "<script" not in html.lower()
    assert "default-src 'none'" in html  # CSP: the browser refuses any fetch
    links = re.findall(r'(?:href|src)="([^"]*)"', html)
    assert links and all(link.startswith(("#", "../")) for link in links), links
    assert not re.search(r"https?://", html.replace('xmlns="http://www.w3.org/2000/svg"', ""))


def test_stages_that_did_not_run_say_so(run: Path) -> None:
    report = assemble(run)
    for sid in ("dedup", "pii", "label_audit", "balance", "preferences"):
        s = _section(report, sid)
        assert s["ran"] is False and f"`{sid}` stage is not in this run" in s["note"]
    assert _section(report, "validation")["status"] == "not_validated"
    art10 = {i["ref"]: i["status"] for i in _section(report, "art10")["items"]}
    assert art10["Art. 10(5)"] == art10["Art. 10(2)(f)"] == "open"


# ---------------------------------------------------------------------------- robustness
def test_unknown_stats_keys_are_shown_and_charts_made_inert(run: Path) -> None:
    evil = '<svg xmlns="http://www.w3.org/2000/svg" onload="x()"><script>x()</script><image href="https://e.org/a.png"/><rect width="4" height="4"/><text>42%</text></svg>'
    add_stage(
        run,
        "dedup",
        {"removed": 3, "brand_new": {"score": 0.123456, "label": "a@b.com"}, "a_list": [{"x": 1}]},
        dropped={"exact_duplicate": 3},
    )
    add_stage(run, "balance", {"facets": {}, "mystery": 7}, charts={"odd.svg": evil})
    report = assemble(run)
    dedup, balance = _section(report, "dedup"), _section(report, "balance")
    assert "error" not in dedup and "error" not in balance
    assert dedup["other_metrics"] == {"brand_new.score": 0.1235, "brand_new.label": "<email>"}
    assert dedup["dropped_by_reason"] == [{"reason": "exact_duplicate", "rows": 3, "pct_of_stage_input": 10.0}]
    assert balance["other_metrics"] == {"mystery": 7}
    svg = balance["charts"][0]["svg"]
    assert "script" not in svg and "onload" not in svg and "https://" not in svg and "<rect" in svg and "42%" in svg


def test_unreadable_stats_mark_the_report_incomplete(run: Path) -> None:
    add_stage(run, "balance", {"facets": {"label": {"counts": "not a mapping"}}})
    build_report(run)
    report = json.loads((run / "report/report.json").read_text())
    assert "could not read" in _section(report, "balance")["error"]
    assert _section(report, "verdict")["incomplete_sections"] == ["Balance and representativeness"]
    assert "This report is incomplete" in (run / "report/report.html").read_text()


def _checks(run: Path, **extra: Any) -> None:
    manifest = read_manifest(run)
    outcomes = [
        {
            "name": "min_rows",
            "check": "min_rows",
            "column": None,
            "severity": "critical",
            "success": True,
            "observed": 30,
            "message": "at least 1 rows: ok",
            "error": None,
        },
        {
            "name": "label_set",
            "check": "label_set",
            "column": "label",
            "severity": "critical",
            "success": False,
            "observed": {"unexpected": 2, "values": ["Jane Roe 555-0100"]},
            "message": "2 rows (ids: a1, b2)",
            "error": None,
        },
    ]
    checks = {
        "verdict": "fail",
        "dataset_fingerprint": manifest["dataset"]["fingerprint"],
        "suite_fingerprint": "f" * 64,
        "data_docs": "checks/data_docs/index.html",
        "outcomes": outcomes,
        **extra,
    }
    write_json(run / "manifest.json", {**manifest, "checks": checks})


def test_validation_results_show_counts_never_values(run: Path) -> None:
    _checks(run)
    html = build_report(run).read_text()
    report = json.loads((run / "report/report.json").read_text())
    v = _section(report, "validation")
    assert (v["status"], v["passed"], v["failed"]) == ("fail", 1, 1)
    assert v["data_docs"] == "../checks/data_docs/index.html" and 'href="../checks/data_docs/index.html"' in html
    assert _section(report, "verdict")["reasons"] == ["critical check failed: label_set: 2 rows"]
    assert "Jane Roe" not in html and "555-0100" not in html and "Jane Roe" not in json.dumps(report)


def test_validation_of_another_dataset_is_stale(run: Path) -> None:
    _checks(run, dataset_fingerprint="0" * 64)
    verdict = _section(assemble(run), "verdict")
    assert verdict["status"] == "not_validated" and "changed after it was validated" in verdict["reasons"][0]


def test_dataset_cut_after_a_pass_is_not_validated(run: Path) -> None:
    from checks.gate import require_pass

    passed = read_manifest(run)["dataset"]["rows"]
    _checks(run, verdict="pass", outcomes=[])
    assert _section(assemble(run), "verdict")["status"] == "pass"
    path = run / "dataset/data.parquet"
    pl.read_parquet(path).head(10).write_parquet(path)
    now = file_fingerprint(path)
    with pytest.raises(GateFailed, match=f"now {now[:12]}"):
        require_pass(run)  # export and train refuse it: the report must agree
    build_report(run)
    report = json.loads((run / "report/report.json").read_text())
    verdict = _section(report, "verdict")
    assert verdict["status"] == "not_validated" and "changed after it was validated" in verdict["reasons"][0]
    assert f"now {now[:12]}" in verdict["reasons"][0] and passed != 10 and verdict["summary"]["checks_passed"] is None
    assert verdict["summary"]["records_curated"] == _section(report, "lineage")["dataset"]["rows"] == 10
    assert report["run"]["dataset_fingerprint"] == _section(report, "signoff")["dataset_fingerprint"] == now
    assert (run / "report/report.md").read_text().split("## 2.")[0].count("NOT VALIDATED") == 1
    assert "num_examples: 10\n" in (run / "report/dataset_card.md").read_text()


def test_missing_dataset_is_not_validated(run: Path) -> None:
    _checks(run, verdict="pass", outcomes=[])
    (run / "dataset/data.parquet").unlink()
    verdict = _section(assemble(run), "verdict")
    assert verdict["status"] == "not_validated" and "is missing" in verdict["reasons"][0]


# ---------------------------------------------------------------------------- safety helpers
@settings(max_examples=40, deadline=None)
@given(email=st.emails(), digits=st.from_regex(r"\(?[2-9]\d{2}\)?[ .-]\d{3}[ .-]\d{4}", fullmatch=True))
def test_scrub_value_masks_contact_data(email: str, digits: str) -> None:
    out = scrub_value(f"write to {email} or call {digits}; 12 rows in 2024")
    assert email not in out and digits not in out and "12 rows in 2024" in out


def test_scrub_value_masks_identifiers() -> None:
    for raw in (
        "4111 1111 1111 1111",
        "078-05-1120",
        "DE89370400440532013000",
        "203.0.113.77",
        "2001:db8:85a3::8a2e:370:7334",
        "https://x.org/p?q=1",
    ):
        assert raw not in scrub_value(f"value {raw} end"), raw


def test_sanitize_svg_rejects_non_svg() -> None:
    with pytest.raises(ValueError, match="expected an <svg> root"):
        sanitize_svg("<html/>")


# ---------------------------------------------------------------------------- dataset card
def test_dataset_card_validates_against_the_hub_metadata_spec(run: Path) -> None:
    from datasets.features import Features
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs, known_task_ids
    from huggingface_hub import DatasetCard

    build_report(run)
    text = (run / "report/dataset_card.md").read_text()
    assert validate_card_metadata(text) == []
    card = DatasetCard(text)
    assert card.data.size_categories == ["n<1K"] and card.data.task_categories == ["text-classification"]
    assert set(card.data.task_categories) <= set(known_task_ids)
    assert MetadataConfigs.from_dataset_card_data(card.data)["default"]["data_files"] == [
        {"split": "train", "path": "dataset/data.parquet"}
    ]
    info = DatasetInfosDict.from_dataset_card_data(card.data)["default"]
    assert info.splits["train"].num_examples == 30 and list(Features.from_dict(info.features.to_dict())) == ["id", "text", "label"]
    assert "[More Information Needed]" in card.text and "30 records" in card.text


BALANCE_TARGET = {
    "balance": {
        "facets": ["label"],
        "embeddings": False,
        "target": {"facet": "label", "shares": "uniform", "rebalance": "up"},
    }
}


def test_card_features_have_the_file_types(make_run: Any, tmp_path: Path) -> None:
    from datasets import load_dataset

    result = make_run(ROWS, stages=["normalize", BALANCE_TARGET], name="weighted")
    build_report(result.run_dir)
    card = (result.run_dir / "report/dataset_card.md").read_text()
    assert validate_card_metadata(card) == []
    shutil.copy(result.run_dir / "report/dataset_card.md", result.run_dir / "README.md")
    ds = load_dataset(str(result.run_dir), split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert {k: str(v) for k, v in ds.features.items() if k in ("sample_weight", "repeat")} == {
        "sample_weight": "Value('float64')",
        "repeat": "Value('int64')",
    }
    assert ds.to_list() == pl.read_parquet(result.run_dir / "dataset/data.parquet").to_dicts()


def test_feature_types_follow_the_parquet_schema(run: Path, tmp_path: Path) -> None:
    from datasets import load_dataset

    path = run / "dataset/data.parquet"
    df = pl.read_parquet(path).head(2)
    df = df.with_columns(
        pl.lit(1.5, pl.Float32).alias("f32"),
        pl.lit(3, pl.UInt8).alias("u8"),
        pl.lit(True).alias("flag"),
        pl.lit(None, pl.Datetime("us", "UTC")).alias("at"),
        pl.lit(None, pl.Date).alias("day"),
        pl.Series("tags", [["a", "b"], []], pl.List(pl.String)),
        pl.Series("grid", [[[1]], [[2, 3]]], pl.List(pl.List(pl.Int32))),
        pl.Series("messages", [[{"role": "user", "content": "hi"}], []], pl.List(pl.Struct({"role": pl.String, "content": pl.String}))),
        pl.Series("meta", [{"n": 1, "ok": True}, {"n": 2, "ok": False}], pl.Struct({"n": pl.Int64, "ok": pl.Boolean})),
        pl.Series("pair", [[1.0, 2.0], [3.0, 4.0]], pl.Array(pl.Float64, 2)),
        pl.Series("src", ["a", "b"], pl.Categorical),
    )
    df.write_parquet(path)
    build_report(run)
    card = (run / "report/dataset_card.md").read_text()
    assert validate_card_metadata(card) == []
    features = {f["name"]: {k: v for k, v in f.items() if k != "name"} for f in _section(assemble(run), "lineage")["features"]}
    assert features["f32"] == {"dtype": "float32"} and features["u8"] == {"dtype": "uint8"} and features["flag"] == {"dtype": "bool"}
    assert features["at"] == {"dtype": "timestamp[us, tz=UTC]"} and features["day"] == {"dtype": "date32"}
    assert features["tags"] == {"list": "string"} and features["grid"] == {"list": {"list": "int32"}}
    assert features["messages"] == {"list": [{"name": "role", "dtype": "string"}, {"name": "content", "dtype": "string"}]}
    assert features["meta"] == {"struct": [{"name": "n", "dtype": "int64"}, {"name": "ok", "dtype": "bool"}]}
    assert features["pair"] == {"list": "float64", "length": 2} and features["src"] == {"dtype": "string"}
    shutil.copy(run / "report/dataset_card.md", run / "README.md")
    ds = load_dataset(str(run), split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert ds.to_list() == df.with_columns(pl.col("src").cast(pl.String)).to_dicts()


def test_card_validation_reports_problems() -> None:
    bad = (
        "---\nsize_categories: [lots]\ntask_categories: [cooking]\nlicense: Not A Licence\nfoo: 1\n"
        "configs: [{config_name: d, data_files: [{split: train-1, path: x}]}]\n"
        "dataset_info: {features: [{name: ok, list: {list: int32}}, {name: bad, list: 3}]}\n---\n# Card\n"
    )
    problems = validate_card_metadata(bad)
    assert any("`size_categories` has unknown value 'lots'" in p for p in problems)
    assert any("`task_categories` has unknown value 'cooking'" in p for p in problems)
    assert (
        any("`license`" in p for p in problems) and any("`foo` is not" in p for p in problems) and any("`configs`" in p for p in problems)
    )
    assert [p for p in problems if "dataset_info.features" in p] == [
        "`dataset_info.features` entry {'name': 'bad', 'list': 3} needs a `name` and a type (`dtype`, `list`, `sequence`, `struct` or `class_label`)"
    ]
    assert [size_category(n) for n in (0, 999, 1000, 12_345_678)] == ["n<1K", "n<1K", "1K<n<10K", "10M<n<100M"]


def test_card_marks_what_a_person_must_answer(run: Path) -> None:
    card = render_card(assemble(run))
    assert card.startswith("---\n") and "license: unknown" in card
    assert "No PII stage ran on this dataset" in card


# ---------------------------------------------------------------------------- CLI
def test_cli_report(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(run / "report", ignore_errors=True)
    assert main(["report", str(run)]) == 0
    assert capsys.readouterr().out.strip() == str(run / "report/report.html")
    assert main(["report", str(run / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a tuneprep run directory" in err[0]


def test_preference_run_reports_pair_diagnostics(make_run: Any) -> None:
    rows = [
        {"prompt": f"question {p}", "response": f"answer {r} to {p}", "score": float(r + 1), "annotator": a}
        for p in range(4)
        for r in range(3)
        for a in ("a1", "a2")
    ]
    result = make_run(rows, kind="ratings", stages=["preferences"], name="prefs")
    report = assemble(result.run_dir)
    prefs = _section(report, "preferences")
    stats = _stats(result.run_dir, "stages/01-preferences")["metrics"]
    assert prefs["ran"] and "error" not in prefs
    assert prefs["summary"]["pairs"] == stats["pairs"] == report["sections"][0]["summary"]["records_curated"]
    assert sum(c["pairs"] for c in prefs["candidates"]) == sum(stats["candidates"].values())
    assert _section(report, "verdict")["summary"]["curated_pct_of_input"] is None  # pairs are not a share of rows


PII_METRICS = {
    "entities": ["PERSON", "EMAIL_ADDRESS", "CRYPTO"],
    "found_by_entity": {"PERSON": 12, "EMAIL_ADDRESS": 3},
    "residual_by_entity": {"PERSON": 1},
    "operator_by_entity": {"PERSON": "replace", "EMAIL_ADDRESS": "mask", "CRYPTO": "replace"},
    "samples_by_entity": {"PERSON": ["K******* A*****", "Zelda Quintanilla"], "EMAIL_ADDRESS": ["j***@e******.com"]},
    "found_total": 15,
}


def test_pii_section_counts_and_masked_examples_only(run: Path) -> None:
    add_stage(run, "pii", PII_METRICS)
    html = build_report(run).read_text()
    pii = _section(json.loads((run / "report/report.json").read_text()), "pii")
    rows = {r["entity"]: r for r in pii["entities"]}
    assert [r["entity"] for r in pii["entities"]] == ["PERSON", "EMAIL_ADDRESS", "CRYPTO"]  # most found first, configured-but-absent kept
    assert (rows["PERSON"]["found"], rows["PERSON"]["residual"], rows["EMAIL_ADDRESS"]["operator"]) == (12, 1, "mask")
    assert (rows["CRYPTO"]["found"], rows["CRYPTO"]["residual"]) == (0, 0)
    assert rows["PERSON"]["masked_examples"] == ["K******* A*****"] and (pii["total_found"], pii["total_residual"]) == (15, 1)
    assert "Zelda" not in html and "<code>j***@e******.com</code>" in html and "evaluat" in pii["evaluation"]["status"]
    assert (
        "Art. 10(5)" in html
        and next(i for i in _section(assemble(run), "art10")["items"] if i["ref"] == "Art. 10(5)")["status"] == "partly_evidenced"
    )


def test_dedup_and_label_audit_sections_trace_to_their_stats(make_run: Any) -> None:
    rows = [*ROWS, *ROWS[:6], {"text": "ORDER 3 ARRIVED LATE, PLEASE HELP WITH TICKET 3", "label": "billing", "source": "email"}]
    result = make_run(rows, stages=["normalize", "dedup", "label_audit"], name="audit")
    report = assemble(result.run_dir)
    dedup, audit = _section(report, "dedup"), _section(report, "label_audit")
    dstats = _stats(result.run_dir, "stages/02-dedup")
    astats = _stats(result.run_dir, "stages/03-label_audit")
    assert "error" not in dedup and "error" not in audit
    assert dedup["summary"]["removed"] == dstats["metrics"]["removed"] == dstats["books"]["dropped"] >= 6
    assert sum(c["clusters"] for c in dedup["cluster_sizes"]) == dstats["metrics"]["clusters"]
    assert {r["label"]: r["rows"] for r in audit["labels"]} == astats["metrics"]["label_counts"]
    assert {i["issue"]: i["found"] for i in audit["issues"]} == astats["metrics"]["issues"]
    assert all(" Billing" not in r["label"] for r in audit["labels"])  # hygiene merged the variant


def test_pii_examples_are_in_the_markdown_masked_only(run: Path) -> None:
    add_stage(run, "pii", PII_METRICS)
    build_report(run)
    md = (run / "report/report.md").read_text()
    assert "`K******* A*****`" in md and "`j***@e******.com`" in md
    assert "Zelda" not in md and "Quintanilla" not in md


# ---------------------------------------------------------------------------- Art. 10
ART10_WORDS = {"evidenced": "evidenced", "partly_evidenced": "partly evidenced", "open": "open"}


def test_art10_statuses_use_the_documented_words(run: Path) -> None:
    html = build_report(run).read_text()
    art = _section(json.loads((run / "report/report.json").read_text()), "art10")
    assert {i["status"] for i in art["items"]} == set(ART10_WORDS) == set(art["counts"])
    md = (run / "report/report.md").read_text()
    md_statuses = {line.split(" | ")[2] for line in md.splitlines() if line.startswith("| Art. 10")}
    table = html.split("<table class=art10>")[1].split("</table>")[0]
    html_statuses = set(re.findall(r'<span class="badge [\w-]+">([^<]+)</span>', table))
    assert md_statuses == html_statuses == set(ART10_WORDS.values())
    docs = (Path(__file__).parents[3] / "docs/report.md").read_text()
    assert all(f"*{word}*" in docs for word in ART10_WORDS.values())
