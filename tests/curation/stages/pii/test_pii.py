"""The `pii` stage on a real Presidio analyzer and spaCy model (built once for the module)."""

from __future__ import annotations

import json
import logging
import socket
import sqlite3
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from curation.core.config import parse_config
from curation.core.errors import ConfigError
from curation.core.rundir import read_manifest
from curation.core.schema import MESSAGE
from curation.core.stage import StageContext
from curation.stages.pii import engine as pii_engine
from curation.stages.pii.stage import FINDINGS_SCHEMA, PiiConfig, mask_value, pii, scrub_texts

EMAIL, PHONE, SSN, CARD = "zelda.quintanilla@example.org", "(415) 555-0199", "536-22-1904", "4111 1111 1111 1111"
IBAN, IP, NAME, ADDRESS = "DE89370400440532013000", "203.0.113.77", "Zelda Quintanilla", "742 Evergreen Terrace, Springfield, IL 62704"
RAW = [EMAIL, PHONE, SSN, CARD, IBAN, IP, NAME, ADDRESS, "Quintanilla"]
DECOYS = ["Claude 3 Haiku", "Llama 3.1 8B", "v2.14.3", "TCK-48213", "ORD-2024-118833", "E1234", "room 1204", "GPT-4o"]
TEXTS = [
    f"Hi, this is {NAME}. Write to {EMAIL} or call {PHONE}; I live at {ADDRESS}.",
    f"My SSN is {SSN} and my card {CARD} was charged twice.",
    f"Refund to IBAN {IBAN} please, my server is {IP}.",
    "We compared Claude 3 Haiku with Llama 3.1 8B and GPT-4o on build v2.14.3.",
    "Ticket TCK-48213 for order ORD-2024-118833 failed with E1234 in room 1204.",
    "Nothing personal here at all.",
]


@pytest.fixture
def ctx(engines: dict[str, Any], tmp_path: Path) -> StageContext:
    return StageContext(kind="text", engines=engines, config_dir=tmp_path)


def frame(texts: list[str], **extra: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"id": [f"r{i}" for i in range(len(texts))], "text": texts, **extra})


def dump(*frames: pl.DataFrame) -> str:
    """Everything in the frames as one string, nested values included."""
    return "\n".join(f.write_ndjson() for f in frames)


def read_everything(path: Path) -> str:
    """A file's content as text: raw bytes, plus parquet rows via polars and SQLite rows via a dump."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    if path.suffix == ".parquet":
        text += pl.read_parquet(path).write_ndjson()
    elif path.suffix == ".db":
        with sqlite3.connect(path) as con:
            text += "\n".join(con.iterdump())
    return text


def test_scrubs_default_entities_and_keeps_decoys(ctx: StageContext) -> None:
    result = pii(frame(TEXTS), PiiConfig(), ctx)
    out = "\n".join(result.kept["text"].to_list())
    assert [v for v in RAW if v in out] == []
    assert [d for d in DECOYS if d not in out] == []
    for entity in ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "STREET_ADDRESS", "US_SSN", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS"):
        assert f"<{entity}>" in out
    assert result.kept["text"][5] == TEXTS[5]
    assert result.dropped.is_empty() and result.kept["id"].to_list() == [f"r{i}" for i in range(6)]


def test_findings_hold_offsets_and_masked_shapes_never_values(ctx: StageContext) -> None:
    result = pii(frame(TEXTS), PiiConfig(), ctx)
    f = result.findings
    assert f.schema == pl.Schema(FINDINGS_SCHEMA)
    assert not f["residual"].any()
    spans = {(TEXTS[int(i[1:])][s:e], t) for i, s, e, t in f.select("id", "start", "end", "entity_type").iter_rows()}
    assert {
        (EMAIL, "EMAIL_ADDRESS"),
        (SSN, "US_SSN"),
        (CARD, "CREDIT_CARD"),
        (IBAN, "IBAN_CODE"),
        (IP, "IP_ADDRESS"),
        (ADDRESS, "STREET_ADDRESS"),
    } <= spans
    assert "z***@e******.org" in f["masked"].to_list()
    text = dump(f) + json.dumps(result.stats)
    assert [v for v in RAW if v in text] == []
    assert result.stats["residual_total"] == 0 and result.stats["residual_by_entity"] == {}
    assert result.stats["found_by_entity"]["EMAIL_ADDRESS"] == 1 and result.stats["rows_with_pii"] == 3


def test_message_contents_are_scanned_with_per_message_offsets(engines: dict[str, Any]) -> None:
    chats = [
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"I'm {NAME}, mail {EMAIL}"},
            {"role": "assistant", "content": "Thanks!"},
        ]
    ]
    df = pl.DataFrame({"id": ["c1"], "messages": chats}, schema={"id": pl.String, "messages": pl.List(MESSAGE)})
    result = pii(df, PiiConfig(), StageContext(kind="instruction", engines=engines))
    msgs = result.kept["messages"][0].to_list()
    assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
    assert msgs[1]["content"] == "I'm <PERSON>, mail <EMAIL_ADDRESS>" and msgs[0]["content"] == "Be brief."
    email = result.findings.filter(pl.col("entity_type") == "EMAIL_ADDRESS").row(0, named=True)
    assert email["field"] == "messages[1].content" and chats[0][1]["content"][email["start"] : email["end"]] == EMAIL
    assert result.kept.schema == df.schema


def test_fields_per_kind_and_metadata_columns(engines: dict[str, Any]) -> None:
    df = pl.DataFrame({"id": ["a"], "prompt": [f"Mail {EMAIL}"], "completion": [f"Call {PHONE}"], "source": [EMAIL], "annotator": [EMAIL]})
    ctx = StageContext(kind="instruction", engines=engines)
    only = pii(df, PiiConfig(fields={"instruction": ["completion"]}, scan_metadata=False), ctx)
    assert only.kept.row(0, named=True) == {
        "id": "a",
        "prompt": f"Mail {EMAIL}",
        "completion": "Call <PHONE_NUMBER>",
        "source": EMAIL,
        "annotator": EMAIL,
    }
    full = pii(df, PiiConfig(), ctx)
    assert full.kept.row(0, named=True) == {
        "id": "a",
        "prompt": "Mail <EMAIL_ADDRESS>",
        "completion": "Call <PHONE_NUMBER>",
        "source": "<EMAIL_ADDRESS>",
        "annotator": "<EMAIL_ADDRESS_1>",  # a person column: numbered, so annotators stay apart
    }
    assert full.stats["fields"] == ["prompt", "completion", "source", "annotator"]


def test_a_name_found_in_one_turn_is_scrubbed_in_the_row_s_other_turns(engines: dict[str, Any]) -> None:
    chats = [
        [
            {"role": "user", "content": "Hello, my name is Cornelius Abernathy-Vane and my parcel is late."},
            {"role": "assistant", "content": "Sure Cornelius, I will look into it."},
        ],
        [{"role": "user", "content": "Cornelius is a fine old name."}],  # another row: no name known there
    ]
    df = pl.DataFrame({"id": ["c1", "c2"], "messages": chats}, schema={"id": pl.String, "messages": pl.List(MESSAGE)})
    result = pii(df, PiiConfig(), StageContext(kind="instruction", engines=engines))
    reply = result.kept["messages"][0].to_list()[1]["content"]
    assert reply == "Sure <PERSON>, I will look into it."
    tagged = result.findings.filter(pl.col("recognizer") == "NameInRow").row(0, named=True)
    assert (tagged["id"], tagged["field"], tagged["start"], tagged["end"]) == ("c1", "messages[1].content", 5, 14)
    assert result.kept["messages"][1].to_list()[0]["content"] == chats[1][0]["content"]


def test_a_person_column_value_shaped_like_a_name_is_a_person(engines: dict[str, Any]) -> None:
    names = ["Gertrude Vanderpool", "ann_2", "Leopold Wintergreen", "team-b", "Gertrude Vanderpool", EMAIL]
    n = len(names)
    df = pl.DataFrame({"id": list("abcdef"), "text": ["Good."] * n, "label": ["x"] * n, "annotator": names, "source": ["Web Form"] * n})
    ctx = StageContext(kind="classification", engines=engines)
    result = pii(df, PiiConfig(), ctx)
    # numbered per distinct value, by first appearance: agreement and calibration still tell annotators apart
    assert result.kept["annotator"].to_list() == ["<PERSON_1>", "ann_2", "<PERSON_2>", "team-b", "<PERSON_1>", "<EMAIL_ADDRESS_1>"]
    assert result.kept["source"].to_list() == ["Web Form"] * n  # not a person column: a shape alone is no name
    assert result.findings.filter(pl.col("field") == "annotator")["recognizer"].to_list()[:3] == ["NameColumn"] * 3
    kept = pii(df, PiiConfig(allow_list=["Leopold Wintergreen"]), ctx)
    assert kept.kept["annotator"].to_list()[2] == "Leopold Wintergreen"
    masked = pii(df, PiiConfig(operators={"PERSON": "mask"}), ctx)
    assert masked.kept["annotator"].to_list()[0] == "*" * len(names[0])  # other operators apply as configured
    sources = df.with_columns(pl.Series("source", ["web_form", "Wilhelmina Strudelhof", *["email"] * (n - 2)]))
    declared = pii(sources, PiiConfig(person_columns=["source"]), ctx)  # a bare, unusual name NER cannot see
    assert declared.kept["source"].to_list()[:3] == ["web_form", "<PERSON_1>", "email"]
    assert declared.kept["annotator"].to_list()[0] == "Gertrude Vanderpool"  # no longer declared a person column


def test_operators_per_entity(ctx: StageContext) -> None:
    cfg = PiiConfig(operator="redact", operators={"EMAIL_ADDRESS": "mask", "PERSON": "keep"})
    result = pii(frame([f"My name is {NAME}, I wrote from {EMAIL} about {SSN}."]), cfg, ctx)
    assert result.kept["text"][0] == f"My name is {NAME}, I wrote from {'*' * len(EMAIL)} about ."
    ops = dict(result.findings.select("entity_type", "operator").iter_rows())
    assert ops == {"PERSON": "keep", "EMAIL_ADDRESS": "mask", "US_SSN": "redact"}
    assert result.stats["residual_total"] == 0  # a value kept on purpose is not residual
    assert result.stats["operator_by_entity"]["PERSON"] == "keep"


def test_hash_is_stable_across_rows_and_depends_on_the_salt(ctx: StageContext, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = PiiConfig(operator="hash")
    df = frame([f"Write to {EMAIL}.", f"Or to {EMAIL} again.", "Or to someone.else@example.com."])
    monkeypatch.setenv("TUNEPREP_PII_SALT", "first-salt-of-32-bytes-0123456789")
    a = pii(df, cfg, ctx).kept["text"].to_list()
    digest = a[0].removeprefix("Write to ").removesuffix(".")
    assert len(digest) == 64 and a[1] == f"Or to {digest} again." and digest not in a[2]
    monkeypatch.setenv("TUNEPREP_PII_SALT", "another-salt-of-32-bytes-01234567")
    b = pii(df, cfg, ctx).kept["text"].to_list()
    assert b[0] != a[0] and b[0].startswith("Write to ")


def test_a_rerun_with_another_salt_rehashes_instead_of_reusing(make_run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{"text": f"Write to {EMAIL}.", "label": "a"}, {"text": "Nothing here.", "label": "b"}]
    stages = [{"pii": {"operator": "hash"}}]

    def run() -> tuple[bool, str]:
        result = make_run(rows, stages=stages)
        stage = next(s for s in read_manifest(result.run_dir)["stages"] if s["name"] == "pii")
        written = "".join(read_everything(p) for p in result.run_dir.rglob("*") if p.is_file())
        assert "salt-of-32-bytes" not in written  # the salt itself is nowhere, the resume check included
        return stage["skipped"], pl.read_parquet(result.run_dir / "dataset/data.parquet")["text"].sort().to_list()[1]

    monkeypatch.setenv("TUNEPREP_PII_SALT", "first-salt-of-32-bytes-0123456789")
    assert run()[0] is False
    skipped, first = run()
    assert skipped and first.startswith("Write to ")  # same salt: resumed
    monkeypatch.setenv("TUNEPREP_PII_SALT", "another-salt-of-32-bytes-01234567")
    skipped, second = run()
    assert not skipped and second != first  # new salt: hashed again, never the old surrogates


def test_hash_salt_from_file_and_short_or_missing_salt_is_one_line_error(
    ctx: StageContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TUNEPREP_PII_SALT", raising=False)
    df = frame([f"Write to {EMAIL}."])
    with pytest.raises(ConfigError) as missing:
        pii(df, PiiConfig(operators={"EMAIL_ADDRESS": "hash"}), ctx)
    assert "TUNEPREP_PII_SALT" in str(missing.value)
    monkeypatch.setenv("TUNEPREP_PII_SALT", "short-salt")
    with pytest.raises(ConfigError) as short:
        pii(df, PiiConfig(operator="hash"), ctx)
    assert short.value.lines() == [
        "config error: `pii.salt`: the salt in environment variable `TUNEPREP_PII_SALT` is 10 bytes; use at least 16, e.g. `openssl rand -hex 16`"
    ]
    (tmp_path / "salt.txt").write_text("a-salt-kept-in-a-file-0123456789\n")
    hashed = pii(df, PiiConfig(operator="hash", salt={"file": "salt.txt"}), ctx)
    assert hashed.kept["text"][0] != df["text"][0] and "a-salt-kept" not in dump(hashed.kept, hashed.findings) + json.dumps(hashed.stats)


def test_drop_policy_reasons_and_dropped_rows_are_scrubbed(ctx: StageContext) -> None:
    cfg = PiiConfig(drop={"entities": ["US_SSN", "CREDIT_CARD"], "max_findings": 2})
    result = pii(frame(TEXTS), cfg, ctx)
    reasons = dict(result.dropped.select("id", "reason").iter_rows())
    assert reasons == {"r1": "pii_us_ssn", "r0": "pii_max_findings"}
    assert sorted([*result.kept["id"], *result.dropped["id"]]) == [f"r{i}" for i in range(6)]
    assert [v for v in RAW if v in dump(result.dropped)] == []
    assert result.dropped.columns == ["id", "text", "reason"]


def test_allow_deny_and_extra_recognizers(ctx: StageContext) -> None:
    cfg = PiiConfig(
        allow_list=[r".*@example\.org"],
        allow_list_match="regex",
        deny_list={"PROJECT": ["Bluebird"]},
        recognizers=[{"name": "employee_id", "entity": "EMPLOYEE_ID", "pattern": r"\bEMP-\d{6}\b", "score": 0.2, "context": ["employee"]}],
    )
    texts = [f"Mail {EMAIL} about project bluebird.", "employee EMP-123456 and EMP-654321 elsewhere is", "EMP-111111 alone"]
    out = pii(frame(texts), cfg, ctx).kept["text"].to_list()
    assert out[0] == f"Mail {EMAIL} about project <PROJECT>."
    assert out[1].startswith("employee <EMPLOYEE_ID>") and out[2] == "EMP-111111 alone"  # 0.2 < threshold without context


def test_per_entity_threshold(ctx: StageContext) -> None:
    result = pii(frame([f"Spoke with {NAME} at {EMAIL}."]), PiiConfig(thresholds={"PERSON": 0.99}), ctx)
    assert result.kept["text"][0] == f"Spoke with {NAME} at <EMAIL_ADDRESS>."


def test_residual_scan_counts_and_rescrubs_what_scrubbing_uncovers(ctx: StageContext) -> None:
    # A recognizer that only fires right after a replacement: the first pass cannot see
    # it, the scan of the scrubbed text does. Residual offsets point into the output.
    rec = {"name": "after_tag", "entity": "TAGGED", "pattern": r"(?<=> )\d{4}\b", "score": 0.9}
    text = f"SSN {SSN} 4321 end"
    once = pii(frame([text]), PiiConfig(recognizers=[rec], residual_rounds=0), ctx)
    res = once.findings.filter(pl.col("residual")).row(0, named=True)
    assert once.kept["text"][0] == "SSN <US_SSN> 4321 end" and once.kept["text"][0][res["start"] : res["end"]] == "4321"
    assert once.stats["residual_total"] == 1 and once.stats["residual_by_entity"] == {"TAGGED": 1} and res["operator"] is None
    again = pii(frame([text]), PiiConfig(recognizers=[rec]), ctx)
    assert again.kept["text"][0] == "SSN <US_SSN> <TAGGED> end" and again.stats["residual_total"] == 0
    tagged = again.findings.filter(pl.col("entity_type") == "TAGGED").row(0, named=True)
    assert text[tagged["start"] : tagged["end"]] == "4321" and not tagged["residual"]


def test_same_input_same_output_and_workers_do_not_change_it(ctx: StageContext, monkeypatch: pytest.MonkeyPatch) -> None:
    df = frame(TEXTS * 3)
    serial = pii(df, PiiConfig(workers=1), ctx)
    again = pii(df, PiiConfig(workers=1), ctx)
    monkeypatch.setattr(pii_engine, "PARALLEL_MIN_TEXTS", 2)
    parallel = pii(df, PiiConfig(workers=2, batch_size=2), ctx)
    for other in (again, parallel):
        assert_frame_equal(serial.kept, other.kept)
        assert_frame_equal(serial.findings, other.findings)
        assert serial.stats == other.stats
    assert serial.stats["unique_texts"] == 6 and serial.stats["texts_scanned"] == 18


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.sampled_from(["", "hello there", "Ticket TCK-1 ok", "see you"]), st.sampled_from([None, EMAIL, SSN, IP, PHONE])),
        min_size=1,
        max_size=6,
    )
)
def test_books_balance_and_injected_values_never_survive(ctx: StageContext, rows: list[tuple[str, str | None]]) -> None:
    texts = [f"{words} {value or ''}".strip() or "x" for words, value in rows]
    result = pii(frame(texts), PiiConfig(drop={"entities": ["US_SSN"]}), ctx)
    assert sorted([*result.kept["id"], *result.dropped["id"]]) == sorted(f"r{i}" for i in range(len(texts)))
    leaked = [v for _, v in rows if v and v in dump(result.kept, result.dropped, result.findings)]
    assert leaked == []


def test_scrub_texts_and_mask_value_helpers(ctx: StageContext) -> None:
    assert scrub_texts([f"mail {EMAIL}", "", "plain"], PiiConfig(), ctx) == ["mail <EMAIL_ADDRESS>", "", "plain"]
    assert mask_value("john.smith@example.com", "EMAIL_ADDRESS") == "j***@e******.com"
    assert mask_value(PHONE, "PHONE_NUMBER") == "(***) ***-****"
    assert mask_value(NAME, "PERSON") == "Z**** Q**********"
    assert mask_value(IBAN, "IBAN_CODE") == "*" * len(IBAN)
    assert mask_value("2001:db8::7", "IP_ADDRESS") == "****:***::*"
    assert mask_value(ADDRESS, "STREET_ADDRESS") == "*** E******** T******, S**********, I* *****"


@pytest.mark.slow
def test_nothing_touches_the_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tldextract.tldextract as tld

    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args[:1])
        raise OSError("network disabled by the test")

    # a fresh extractor with the web suffix-list URLs, as on first import, and no cache
    monkeypatch.setattr(tld, "TLD_EXTRACTOR", tld.TLDExtract(cache_dir=None))
    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    ctx = StageContext(kind="text", config_dir=tmp_path)  # fresh engines: the model loads here too
    result = pii(frame(TEXTS), PiiConfig(), ctx)
    assert attempts == []
    assert EMAIL not in result.kept["text"][0] and "<EMAIL_ADDRESS>" in result.kept["text"][0]


def test_missing_model_is_a_config_error_not_a_download(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not installed and nothing is downloaded"):
        pii(frame(["x"]), PiiConfig(model="en_core_web_nonexistent_xx"), StageContext(kind="text", config_dir=tmp_path))


def test_debug_logging_shows_no_text(ctx: StageContext, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        pii(frame(TEXTS[:3]), PiiConfig(), ctx)
    assert [v for v in RAW if v in caplog.text] == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"entities": ["PERSON", "SHOE_SIZE"]}, "unknown entity `SHOE_SIZE`"),
        ({"operators": {"URL": "hash"}}, "`operators` names `URL`, which is not scanned for"),
        ({"drop": {"entities": ["UK_NHS"]}}, "`drop.entities` names `UK_NHS`"),
        ({"operator": "encrypt"}, "stages[0].pii.operator"),
        ({"thresholds": {"PERSON": 1.5}}, "thresholds must be between 0 and 1"),
        ({"recognizers": [{"name": "x", "entity": "X", "pattern": "(unclosed"}]}, "the pattern does not compile"),
        ({"fields": {"instruction": ["label"]}}, "`instruction` has no free-text field `label`"),
        ({"salt": {"value": "0123456789abcdef"}}, "stages[0].pii.salt.value"),
        ({"phone_regions": ["usa"]}, "two-letter region codes"),
    ],
)
def test_config_errors_are_one_line_each(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"input": {"path": "x.jsonl", "kind": "text"}, "stages": [{"pii": options}]})
    assert len(err.value.lines()) == 1 and message in err.value.lines()[0]
    assert "value error" not in err.value.lines()[0].lower()


@pytest.mark.slow
def test_pipeline_run_leaks_no_raw_value_outside_sensitive_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from curation.core.runner import run_pipeline

    salt = "pipeline-salt-0123456789abcdef"
    monkeypatch.setenv("TUNEPREP_PII_SALT", salt)
    rows = [
        {"text": TEXTS[0], "label": "account", "source": EMAIL},
        {"text": TEXTS[0], "label": "account", "source": EMAIL},  # exact duplicate: dedup drops it
        {"text": TEXTS[1], "label": "billing", "source": "chat"},  # holds an SSN: dropped by the pii stage
        {"text": TEXTS[2], "label": "billing", "source": "web"},
        {"text": TEXTS[3], "label": "other", "source": "web"},
        {"text": f"Thanks, {NAME} ({PHONE})", "label": "other", "source": "chat"},
    ]
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + f'\n{{"text": "broken {EMAIL}\n', encoding="utf-8")
    stages = ["normalize", "dedup", {"pii": {"drop": {"entities": ["US_SSN"]}, "operators": {"EMAIL_ADDRESS": "hash"}}}]
    cfg = parse_config({"input": {"path": str(data), "kind": "classification"}, "stages": stages}, base_dir=tmp_path)
    lines: list[str] = []
    with caplog.at_level(logging.DEBUG):
        result = run_pipeline(cfg, out_dir=tmp_path / "runs" / "leak", quiet=True, log=lines.append)
    run_dir = result.run_dir
    manifest = json.loads((run_dir / "manifest.json").read_text())
    sensitive = set(manifest["sensitive_paths"])
    before_pii = {
        f"stages/{d}/{f}"
        for d in ("00-ingest", "01-normalize", "02-dedup")
        for f in ("output.parquet", "dropped.parquet", "quarantine.parquet", "quarantine_full.parquet")
    }
    assert "quarantine.parquet" in sensitive and sensitive - {"quarantine.parquet", "stages/03-pii/dropped.parquet"} <= before_pii
    assert manifest["stages"][3]["name"] == "pii" and not manifest["stages"][3]["sensitive"]
    # every file of the runs root (ledger included) except the outputs before the pii stage and the quarantine
    excluded = {run_dir / f for f in sensitive - {"stages/03-pii/dropped.parquet"}}
    files = [p for p in (tmp_path / "runs").rglob("*") if p.is_file() and p not in excluded]
    assert {"manifest.json", "config.yaml", "dataset/data.parquet", "stages/03-pii/findings.parquet", "stages/03-pii/stats.json"} <= {
        str(p.relative_to(run_dir)) for p in files if p.is_relative_to(run_dir)
    }
    assert any(p.name == "ledger.db" for p in files)
    forbidden = [*RAW, salt]
    leaks = [(str(p.relative_to(tmp_path)), v) for p in files for v in forbidden if v in read_everything(p)]
    leaks += [("log", v) for v in forbidden if v in "\n".join(lines) + caplog.text]
    assert leaks == []
    # not vacuous: the raw values went in, and are where the manifest says raw text is
    assert EMAIL in read_everything(run_dir / "stages/00-ingest/output.parquet") and SSN in read_everything(
        run_dir / "stages/02-dedup/output.parquet"
    )
    stats = json.loads((run_dir / "stages/03-pii/stats.json").read_text())
    assert stats["dropped_by_reason"] == {"pii_us_ssn": 1} and stats["metrics"]["residual_total"] == 0


def test_empty_frame_and_null_texts(ctx: StageContext) -> None:
    empty = pl.DataFrame({"id": [], "text": []}, schema={"id": pl.String, "text": pl.String})
    result = pii(empty, PiiConfig(drop={"entities": ["US_SSN"]}), ctx)
    assert result.kept.is_empty() and result.dropped.columns == ["id", "text", "reason"] and result.findings.is_empty()
    assert result.stats["found_total"] == 0 and result.stats["residual_total"] == 0
    nulls = pii(pl.DataFrame({"id": ["a", "b"], "text": [None, f"mail {EMAIL}"]}), PiiConfig(), ctx)
    assert nulls.kept["text"].to_list() == [None, "mail <EMAIL_ADDRESS>"]


def test_sentence_pieces_reassemble_the_text() -> None:
    from curation.stages.pii.engine import split_sentences

    for text in ["", "One.", "Hi John. Call me at 555-0100!  Thanks?\nBye. ", "no end", "a.b@c.com is mine. ok"]:
        assert "".join(split_sentences(text)) == text
    assert split_sentences("Hi John. Call me. x@y.com ok") == ["Hi John. ", "Call me. ", "x@y.com ok"]


def test_numpy_matmul_ner_finds_what_blis_finds(ctx: StageContext) -> None:
    """The engine's NER multiplies through numpy's BLAS; a stock spaCy load (blis) finds the same entities."""
    import spacy
    from thinc.api import NumpyOps

    from curation.stages.pii.stage import DEFAULT_MODEL, _engine
    from tests.data.pii_corpus import make_corpus

    engine = _engine(PiiConfig(), ctx)
    assert all(not node.ops.use_blis for node in engine.nlp.get_pipe("ner").model.walk() if isinstance(node.ops, NumpyOps))
    stock = spacy.load(DEFAULT_MODEL, enable=["ner"])
    texts = [*TEXTS, *(s.text for s in make_corpus(150, seed=5))]

    def entities(nlp: Any) -> list[list[tuple[int, int, str]]]:
        with nlp.select_pipes(enable=["ner"]):
            return [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in nlp.pipe(texts, batch_size=32)]

    fast = entities(engine.nlp)
    assert fast == entities(stock)
    assert sum(len(e) for e in fast) > 100  # the comparison covers real entities


def test_a_text_longer_than_spacy_allows_is_scanned_in_bounded_pieces(ctx: StageContext, monkeypatch: pytest.MonkeyPatch) -> None:
    from curation.stages.pii.engine import MAX_SENTENCE_CHARS, split_sentences
    from curation.stages.pii.stage import _engine

    text = "log " + "word " * (3 * MAX_SENTENCE_CHARS // 5) + f"mail {EMAIL} now" + "x" * (2 * MAX_SENTENCE_CHARS) + ". Bye."
    pieces = split_sentences(text)
    assert "".join(pieces) == text and max(map(len, pieces)) <= MAX_SENTENCE_CHARS and len(pieces) >= 5
    monkeypatch.setattr(_engine(PiiConfig(), ctx).nlp, "max_length", 2 * MAX_SENTENCE_CHARS)  # spaCy's limit, scaled down
    result = pii(frame([text]), PiiConfig(), ctx)
    assert EMAIL not in result.kept["text"][0] and result.stats["found_total"] == 1
