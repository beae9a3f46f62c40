"""Tests of the `balance` stage without embeddings: facets, Clarify, lengths, diversity,
reference drift, rebalancing, charts, config errors and the run directory."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from curation.core.config import load_config, parse_config
from curation.core.errors import ConfigError, InputError
from curation.core.masking import mask_value
from curation.core.stage import StageContext, StageResult, with_reason
from curation.stages.balance.stage import BalanceConfig, balance
from tests.data.jsonl_files import write_jsonl


def frame(labels: list[str], sources: list[str] | None = None, texts: list[str] | None = None) -> pl.DataFrame:
    n = len(labels)
    data: dict[str, Any] = {
        "id": [f"r{i:03d}" for i in range(n)],
        "text": texts or [f"ticket {i} about things" for i in range(n)],
        "label": labels,
    }
    if sources is not None:
        data["source"] = sources
    return pl.DataFrame(data)


def run(df: pl.DataFrame, tmp: Path | None = None, *, kind: str = "classification", **options: Any) -> StageResult:
    ctx = StageContext(kind=kind, config_dir=tmp or Path("."), seed=7)  # type: ignore[arg-type]
    return balance(df, BalanceConfig(embeddings=False, **options), ctx)


# Source web: A x2, B x1. Source mail: A x1, B x4 (the hand fixture of test_bias_metrics).
CLARIFY_DF = frame(["A", "A", "B", "A", "B", "B", "B", "B"], ["web", "web", "web", "mail", "mail", "mail", "mail", "mail"])


# ---------------------------------------------------------------------------- facets
def test_counts_shares_imbalance_ratio_and_alerts() -> None:
    out = run(frame(["a"] * 6 + ["b"] * 3 + ["c"]), min_count=2, min_share=0.2)
    label = out.stats["facets"]["label"]
    assert label["counts"] == {"a": 6, "b": 3, "c": 1}
    assert label["shares"] == {"a": 0.6, "b": 0.3, "c": 0.1}
    assert label["imbalance_ratio"] == 6.0 and label["alerts"] == 2
    alerts = out.findings.filter(pl.col("finding").str.starts_with("under_min"))
    assert sorted(alerts.select("finding", "value").rows()) == [("under_min_count", "c"), ("under_min_share", "c")]
    assert out.stats["facet_columns"] == ["label"] and out.stats["rows"] == 10


def test_default_facets_and_missing_values() -> None:
    df = frame(["a", "b", "b"], ["web", None, "web"]).with_columns(language=pl.lit("en"), annotator=pl.lit("x"))  # type: ignore[list-item]
    out = run(df)
    assert out.stats["facet_columns"] == ["label", "source", "language"]
    assert out.stats["facets"]["source"]["counts"] == {"web": 2, "<missing>": 1}
    assert out.stats["facets"]["source"]["missing"] == 1


def test_unknown_facet_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="`balance.facets` names 'region'"):
        run(frame(["a"]), facets=["region"])


def test_facet_values_that_look_like_emails_or_numbers_are_masked() -> None:
    out = run(frame(["a", "b"], ["jane.doe@example.com", "acct 1234567"]))
    assert set(out.stats["facets"]["source"]["counts"]) == {mask_value("jane.doe@example.com"), mask_value("acct 1234567")}
    assert all(v.startswith("masked:") for v in out.stats["facets"]["source"]["counts"])


# ---------------------------------------------------------------------------- Clarify
def test_clarify_through_the_stage_matches_the_hand_numbers(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "ref.jsonl", [{"text": "x", "source": s} for s in ("web", "mail", "phone")])
    out = run(CLARIFY_DF, tmp_path, reference="ref.jsonl")
    web = out.stats["clarify"]["facets"]["source"]["web"]
    assert web["n"] == 3 and web["CI"] == pytest.approx(0.25)
    assert web["DPL"] == pytest.approx({"A": 0.2 - 2 / 3, "B": 0.8 - 1 / 3}, abs=1e-6)
    assert web["KL"] == pytest.approx(0.2 * math.log(0.3) + 0.8 * math.log(2.4), abs=1e-6)
    assert web["TVD"] == pytest.approx(2 / 3 - 0.2, abs=1e-6)
    phone = out.stats["clarify"]["facets"]["source"]["phone"]  # in the reference only: zero rows
    assert phone["n"] == 0 and phone["CI"] == 1.0 and phone["KL"] is None
    assert phone["undefined"]["KL"] == "facet value has no rows"
    assert "label" not in out.stats["clarify"]["facets"]  # the label against itself is meaningless
    assert out.stats["clarify"]["metrics"] == ["CI", "DPL", "KL", "JS", "LP", "TVD", "KS"]


def test_clarify_names_a_zero_count_value_from_the_target() -> None:
    out = run(CLARIFY_DF, target={"facet": "source", "shares": {"web": 1, "mail": 1, "chat": 1}})
    chat = out.stats["clarify"]["facets"]["source"]["chat"]
    assert chat["CI"] == 1.0 and chat["DPL"] is None
    assert out.stats["rebalance"]["absent_values"] == ["chat"]


def test_clarify_is_not_applicable_to_instruction_data() -> None:
    df = pl.DataFrame({"id": ["1", "2"], "prompt": ["hi there", "yo"], "completion": ["hello", "hey you all"], "source": ["a", "b"]})
    out = run(df, kind="instruction")
    assert out.stats["clarify"] == {
        "skipped": "not applicable to instruction data, which has no outcome (label) column",
        "kind": "instruction",
    }
    assert out.stats["lengths"]["tokens"]["max"] == 4.0  # prompt and completion together


def test_clarify_without_the_label_column_on_classification_data_says_which_option_to_set() -> None:
    out = run(CLARIFY_DF, label="outcome")
    assert out.stats["clarify"] == {"skipped": "no `outcome` column: set `label` to the outcome column", "kind": "classification"}


def _classes(sizes: list[int]) -> pl.DataFrame:
    labels = [f"intent_{c:02d}" for c, n in enumerate(sizes) for _ in range(n)]
    return frame(labels, texts=["t"] * len(labels))


def test_share_alerts_are_relative_to_the_number_of_classes() -> None:
    # 77 ordinary classes like banking77: 35 to 187 rows each, the uniform share 1.3%
    sizes = [35 + (i * 2) % 153 for i in range(77)]
    total = sum(sizes)
    under_one_pct = sum(n / total < 0.01 for n in sizes)
    assert under_one_pct >= 10  # an absolute 1% floor would flag all of these
    out = run(_classes(sizes))
    assert out.stats["facets"]["label"]["alerts"] == 0
    assert out.stats["facets"]["label"]["share_floor"] == pytest.approx(0.2 / 77, abs=1e-6)  # stats are rounded
    rare = run(_classes([*sizes, 5]))  # a 78th class of 5 rows (0.06%) is rare against a 0.26% floor
    alerts = rare.findings.filter(pl.col("finding") == "under_min_share")
    assert alerts["value"].to_list() == ["intent_77"] and "share floor 0.002564" in alerts["detail"][0]
    absolute = run(_classes(sizes), min_share=0.01)  # an explicit absolute floor still works
    assert absolute.findings.filter(pl.col("finding") == "under_min_share").height == under_one_pct
    two = run(frame(["a"] * 92 + ["b"] * 8))  # two classes: the floor is 10%
    assert two.findings.filter(pl.col("finding") == "under_min_share")["value"].to_list() == ["b"]


# ---------------------------------------------------------------------------- lengths, diversity
def test_lengths_per_class_and_iqr_outliers() -> None:
    texts = ["one two"] * 4 + ["one two three"] * 4 + [" ".join(["w"] * 40)]
    out = run(frame(["a"] * 4 + ["b"] * 5, texts=texts))
    lengths = out.stats["lengths"]
    assert lengths["token_unit"] == "whitespace"
    assert lengths["by_label"]["a"]["tokens"]["max"] == 2.0 and lengths["by_label"]["b"]["tokens"]["max"] == 40.0
    assert lengths["outliers"]["tokens"] == {"low_fence": 0.5, "high_fence": 4.5, "count": 1, "share": pytest.approx(1 / 9, abs=1e-6)}
    outlier = out.findings.filter((pl.col("finding") == "length_outlier") & (pl.col("facet") == "tokens"))
    assert outlier.select("id", "value", "metric").rows() == [("r008", "high", 40.0)]


@pytest.mark.slow  # imports transformers
def test_a_configured_tokenizer_counts_its_tokens(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, ",": 2, "world": 3}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()  # splits punctuation off: "hello," -> 2 tokens
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(tmp_path / "tok")
    out = run(frame(["a"], texts=["hello, world"]), tmp_path, tokenizer="tok")
    assert out.stats["lengths"]["tokens"]["max"] == 3.0 and out.stats["lengths"]["token_unit"] == "tokenizer:tok"
    with pytest.raises(ConfigError, match="`balance.tokenizer` 'nope'"):
        run(frame(["a"]), tmp_path, tokenizer="nope")


def test_distinct_n_by_hand() -> None:
    out = run(frame(["a", "a"], texts=["A b a", "b a"]))
    # unigrams a b a b a: 2 distinct of 5; bigrams "a b", "b a", "b a": 2 distinct of 3
    assert out.stats["diversity"]["distinct_1"] == 0.4
    assert out.stats["diversity"]["distinct_2"] == pytest.approx(2 / 3, abs=1e-6)


def test_near_duplicate_rate_comes_from_the_dedup_stage() -> None:
    df = frame(["a", "b", "a"], texts=["same", "other", "same"])
    ctx = StageContext(kind="classification")
    ctx.artifacts["dedup"] = StageResult(kept=df, dropped=with_reason(frame(["a"]), "near_duplicate"))
    out = balance(df, BalanceConfig(embeddings=False), ctx)
    div = out.stats["diversity"]
    assert div["near_duplicate_rate"] == 0.25 and div["near_duplicate_source"] == "dedup"
    assert div["dedup_dropped_by_reason"] == {"near_duplicate": 1}
    assert div["exact_duplicate_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert run(df).stats["diversity"]["undefined"]["near_duplicate_rate"] == "the dedup stage did not run before balance"


# ---------------------------------------------------------------------------- reference (no embeddings)
def test_identical_reference_has_zero_drift(tmp_path: Path) -> None:
    df = frame(["a", "b", "b", "c"] * 5, ["web", "mail"] * 10, texts=[f"{'word ' * (i % 7)}end" for i in range(20)])
    df.drop("id").write_ndjson(tmp_path / "ref.jsonl")
    rep = run(df, tmp_path, reference="ref.jsonl").stats["representativeness"]
    for facet in ("label", "source"):
        assert rep["facets"][facet]["PSI"] == 0.0 and rep["facets"][facet]["JS"] == 0.0
    assert rep["lengths"]["chars"]["KS"] == 0.0 and rep["lengths"]["tokens"]["KS"] == 0.0
    assert rep["reference"]["rows"] == 20 and len(rep["reference"]["sha256"]) == 64


def test_reference_drift_lists_values_the_dataset_lacks(tmp_path: Path) -> None:
    pl.DataFrame({"prompt": ["short"] * 10, "source": ["web"] * 5 + ["phone"] * 5}).write_parquet(tmp_path / "ref.parquet")
    out = run(frame(["a"] * 4, ["web"] * 4, texts=["a much longer text than the reference"] * 4), tmp_path, reference="ref.parquet")
    source = out.stats["representativeness"]["facets"]["source"]
    assert source["only_in_reference"] == ["phone"] and source["JS"] > 0.1 and source["PSI"] > 1
    assert out.stats["representativeness"]["lengths"]["tokens"]["KS"] == 1.0
    assert out.stats["representativeness"]["facets"]["label"] == {"skipped": "the reference has no `label` column"}
    missing = out.findings.filter(pl.col("finding") == "missing_reference_value")
    assert missing.select("facet", "value", "metric").rows() == [("source", "phone", 0.5)]


def test_reference_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="`balance.reference` file .* not found"):
        run(frame(["a"]), tmp_path, reference="nope.jsonl")
    write_jsonl(tmp_path / "bad.jsonl", [{"body": "x"}])
    with pytest.raises(InputError, match="no `text`, `prompt`"):
        run(frame(["a"]), tmp_path, reference="bad.jsonl")


# ---------------------------------------------------------------------------- rebalancing
def test_weights_make_the_weighted_shares_equal_the_target() -> None:
    out = run(frame(["a"] * 6 + ["b"] * 2), target={"shares": {"a": 1, "b": 3}})
    assert out.dropped.is_empty() and out.kept.height == 8
    weights = dict(out.kept.group_by("label").agg(pl.col("sample_weight").first()).iter_rows())
    assert weights == pytest.approx({"a": 0.25 * 8 / 6, "b": 0.75 * 8 / 2})
    assert out.kept["sample_weight"].sum() == pytest.approx(8)


def test_downsampling_drops_with_reason_and_ignores_row_order() -> None:
    df = frame(["a"] * 9 + ["b"] * 3 + ["c"] * 2)
    out = run(df, target={"shares": {"a": 2, "b": 1, "c": 0}, "rebalance": "down"})
    assert dict(out.kept.group_by("label").len().iter_rows()) == {"a": 6, "b": 3}
    assert out.dropped["reason"].unique().to_list() == ["rebalance"] and out.dropped.height == 5
    assert out.stats["rebalance"]["after"] == {"a": 6, "b": 3, "c": 0}
    shuffled = run(df.sample(fraction=1.0, shuffle=True, seed=3), target={"shares": {"a": 2, "b": 1, "c": 0}, "rebalance": "down"})
    assert sorted(shuffled.kept["id"]) == sorted(out.kept["id"])


def test_upsampling_adds_repeat_counts_and_drops_nothing() -> None:
    out = run(frame(["a"] * 6 + ["b"] * 4), target={"rebalance": "up"})
    assert out.dropped.is_empty()
    assert dict(out.kept.group_by("label").agg(pl.col("repeat").sum()).iter_rows()) == {"a": 6, "b": 6}
    assert out.kept.filter(pl.col("label") == "b")["repeat"].sort().to_list() == [1, 1, 2, 2]


def test_target_config_errors() -> None:
    with pytest.raises(ConfigError, match="does not name 1 value"):
        run(frame(["a", "b"]), target={"shares": {"a": 1}})
    with pytest.raises(ConfigError, match="`balance.target.facet` 'lang'"):
        run(frame(["a"]), target={"facet": "lang"})


def test_yaml_off_means_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("input: {path: x.jsonl, kind: classification}\nstages:\n  - balance: {target: {rebalance: off}}\n")
    options = load_config(path).stages[0].options
    assert isinstance(options, BalanceConfig) and options.target is not None and options.target.rebalance == "off"


def test_config_errors_are_all_reported_at_once() -> None:
    bad = {"min_share": 2, "k_topics": 0, "colour": 1, "target": {"shares": {"a": 0, "b": 1}, "rebalance": "up"}}
    with pytest.raises(ConfigError) as err:
        parse_config({"input": {"path": "x.jsonl", "kind": "classification"}, "stages": [{"balance": bad}]})
    text = "\n".join(err.value.problems)
    for key in ("balance.min_share", "balance.k_topics", "balance.colour", "balance.target"):
        assert f"`stages[0].{key}" in text
    assert "every share must be above 0" in text


labels = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=40)


@settings(max_examples=40, deadline=None)
@given(labels=labels, mode=st.sampled_from(["off", "down", "up"]), seed=st.integers(0, 3))
def test_books_balance_and_weighted_shares_hit_the_target(labels: list[str], mode: str, seed: int) -> None:
    df = frame(labels)
    ctx = StageContext(kind="classification", seed=seed)
    out = balance(df, BalanceConfig(embeddings=False, target={"shares": "uniform", "rebalance": mode}), ctx)  # type: ignore[arg-type]
    ids = pl.concat([out.kept["id"], out.dropped["id"]])
    assert ids.sort().to_list() == df["id"].sort().to_list()
    copies = out.kept["repeat"] if mode == "up" else pl.Series([1] * out.kept.height)
    mass = out.kept.with_columns(w=out.kept["sample_weight"] * copies).group_by("label").agg(pl.col("w").sum())
    total = mass["w"].sum()
    for _, w in mass.iter_rows():
        assert w / total == pytest.approx(1 / len(set(labels)))


# ---------------------------------------------------------------------------- output hygiene
def test_stats_hold_no_raw_text_and_charts_are_self_contained_svg(tmp_path: Path) -> None:
    texts = ["Call Jane Doe at 555-0100 or jane@example.com"] * 3
    write_jsonl(tmp_path / "ref.jsonl", [{"text": "Bob Smith lives at 12 Elm Street"}])
    out = run(frame(["a", "b", "a"], ["web", "web", "mail"], texts=texts), tmp_path, reference="ref.jsonl")
    dumped = json.dumps(out.stats) + out.findings.write_csv()
    for raw in ("Jane", "555-0100", "jane@", "Bob", "Elm"):
        assert raw not in dumped
    assert sorted(out.files) == out.stats["charts"]
    assert {"charts/facet_label.svg", "charts/facet_source.svg", "charts/lengths_chars.svg", "charts/lengths_tokens.svg"} <= set(out.files)
    for content in out.files.values():
        root = ET.fromstring(content)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert "script" not in str(content) and "href" not in str(content) and "@import" not in str(content)


def test_same_input_and_seed_give_identical_results() -> None:
    df = frame(["a"] * 7 + ["b"] * 3, ["x", "y"] * 5)
    options = {"target": {"shares": "uniform", "rebalance": "down"}}
    first, second = run(df, **options), run(df, **options)
    assert_frame_equal(first.kept, second.kept)
    assert_frame_equal(first.dropped, second.dropped)
    assert json.dumps(first.stats, sort_keys=True) == json.dumps(second.stats, sort_keys=True)
    assert first.files == second.files


def test_runner_writes_stats_and_charts(make_run: Any, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "ref.jsonl", [{"text": "a reference text", "source": "web"}] * 3)
    rows = [{"text": f"ticket {i} text", "label": "billing" if i % 3 else "tech", "source": "web" if i % 2 else "mail"} for i in range(12)]
    result = make_run(rows, stages=[{"balance": {"embeddings": False, "reference": "ref.jsonl", "target": {"rebalance": "down"}}}])
    stage_dir = result.run_dir / "stages" / "01-balance"
    stats = json.loads((stage_dir / "stats.json").read_text())
    assert stats["books"] == {"rows_in": 12, "kept": 8, "dropped": 4, "quarantined": 0}
    assert stats["dropped_by_reason"] == {"rebalance": 4}
    assert set(stats["metrics"]["clarify"]["facets"]["source"]["web"]) >= {"CI", "DPL", "KL", "JS", "LP", "TVD", "KS"}
    assert (stage_dir / "charts" / "facet_source.svg").read_text().startswith("<svg")


def test_an_empty_frame_gives_empty_results_not_errors() -> None:
    out = run(frame([]), target={"rebalance": "down"})
    assert out.kept.is_empty() and out.dropped.is_empty() and out.findings.is_empty()
    assert out.stats["rows"] == 0 and out.stats["lengths"]["tokens"]["count"] == 0
    assert out.stats["diversity"]["distinct_1"] is None
