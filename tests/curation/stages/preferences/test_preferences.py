"""Tests of the `preferences` stage: every input form, strategy and drop reason, the books."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import hypothesis.strategies as st
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from polars.testing import assert_frame_equal

from curation.core.config import parse_config
from curation.core.errors import ConfigError, SchemaError
from curation.core.schema import FORMS, MESSAGE
from curation.core.stage import StageContext, StageResult
from curation.stages.preferences.stage import PreferencesConfig, pair_id, preferences, similarity
from tests.data.preference_data import pairwise_ratings, score_ratings

H, A = "\n\nHuman: ", "\n\nAssistant: "


def scores(rows: Sequence[tuple[str, str, float | None, str | None]], **extra: list[Any]) -> pl.DataFrame:
    """A `scores` frame from (prompt, response, score, annotator) tuples; ids r0, r1..."""
    prompt, response, score, annotator = zip(*rows, strict=True)
    data = {
        "id": [f"r{i}" for i in range(len(rows))],
        "prompt": prompt,
        "response": response,
        "score": score,
        "rank": [None] * len(rows),
        "annotator": annotator,
        **extra,
    }
    return pl.DataFrame(data, schema_overrides={"score": pl.Float64, "rank": pl.Float64, "annotator": pl.String})


def pairwise(rows: list[tuple[str, str, str, str, str | None]]) -> pl.DataFrame:
    prompt, a, b, winner, annotator = zip(*rows, strict=True)
    data = {
        "id": [f"w{i}" for i in range(len(rows))],
        "prompt": prompt,
        "response_a": a,
        "response_b": b,
        "winner": winner,
        "annotator": annotator,
    }
    return pl.DataFrame(data, schema_overrides={"annotator": pl.String})


def run(df: pl.DataFrame, *, kind: str = "ratings", seed: int = 0, **options: Any) -> StageResult:
    result = preferences(df, PreferencesConfig(**options), StageContext(kind=kind, seed=seed))  # type: ignore[arg-type]
    check_books(df, result)
    return result


def check_books(df: pl.DataFrame, result: StageResult) -> None:
    """Every input row is used, dropped with a reason, or quarantined: exactly one of them."""
    lineage = pl.read_parquet(io.BytesIO(result.files["lineage.parquet"]))  # type: ignore[arg-type]
    used = set(lineage["row_id"])
    dropped, quarantined = set(result.dropped["id"]), set(result.quarantined["id"])
    assert result.stats["rows_used"] == len(used)
    assert len(used) + result.dropped.height + result.quarantined.height == df.height
    assert used | dropped | quarantined == set(df["id"])
    assert not (used & dropped) and not (used & quarantined) and not (dropped & quarantined)
    assert set(lineage["pair_id"]) == set(result.kept["id"])
    assert result.dropped["reason"].is_not_null().all()
    assert result.kind == "preference"


def reasons(result: StageResult) -> dict[str, str]:
    return dict(result.dropped.select("id", "reason").iter_rows())


def pairs(result: StageResult) -> list[tuple[str, str, str]]:
    return list(result.kept.select("prompt", "chosen", "rejected").iter_rows())


def expected(rows: list[tuple[str, str, str, float, int, float]]) -> pl.DataFrame:
    data = [(pair_id(p, c, r), p, c, r, m, n, a) for p, c, r, m, n, a in rows]
    schema = {
        "id": pl.String,
        "prompt": pl.String,
        "chosen": pl.String,
        "rejected": pl.String,
        "margin": pl.Float64,
        "n_annotators": pl.Int64,
        "agreement": pl.Float64,
    }
    return pl.DataFrame(data, schema=schema, orient="row")


# ---------------------------------------------------------------------------- scores
THREE = [
    ("p", "great answer", 5.0, "x"),
    ("p", "poor", 1.0, "x"),
    ("p", "okay answer", 3.0, "x"),
    ("p", "great answer", 4.0, "y"),
    ("p", "poor", 2.0, "y"),
    ("p", "okay answer", 3.0, "y"),
]


def test_best_vs_worst_pairs_the_top_and_bottom_response() -> None:
    result = run(scores(THREE))
    assert_frame_equal(result.kept, expected([("p", "great answer", "poor", 3.0, 2, 1.0)]))
    assert reasons(result) == {"r2": "not_paired", "r5": "not_paired"}
    assert result.stats["rows_used"] == 4 and result.stats["candidates"] == {"not_paired": 2, "used": 1}


def test_all_pairs_respects_min_margin_and_the_cap() -> None:
    every = run(scores(THREE), strategy="all_pairs")
    assert pairs(every)[0] == ("p", "great answer", "poor")  # widest margin first; equal margins by id
    assert sorted(pairs(every)[1:]) == [("p", "great answer", "okay answer"), ("p", "okay answer", "poor")]
    wide = run(scores(THREE), strategy="all_pairs", min_margin=2.0)
    assert pairs(wide) == [("p", "great answer", "poor")]
    assert set(reasons(wide).values()) == {"below_min_margin"}
    capped = run(scores(THREE), strategy="all_pairs", max_pairs_per_prompt=2)
    assert capped.kept["margin"].to_list() == [3.0, 1.5]
    assert capped.findings.filter(pl.col("reason") == "pair_cap").height == 1
    assert capped.stats["rows_used"] == 6  # every response is in one of the two widest pairs


def test_best_vs_random_is_seeded_and_independent_of_row_order() -> None:
    df = scores([(f"p{p}", f"response {r} to {p}", float(r), "x") for p in range(30) for r in range(4)])
    shuffled = df.sample(fraction=1.0, shuffle=True, seed=1)
    first = run(df, strategy="best_vs_random", seed=5).kept.sort("prompt")
    assert_frame_equal(first, run(shuffled, strategy="best_vs_random", seed=5).kept.sort("prompt"))
    assert first["chosen"].str.starts_with("response 3").all()  # the best is always chosen
    assert first["rejected"].str.slice(0, 10).n_unique() == 3  # a random lower one, not always the worst
    other = run(df, strategy="best_vs_random", seed=6).kept.sort("prompt")
    assert first["rejected"].to_list() != other["rejected"].to_list()


def test_all_equal_scores_are_ties_and_one_response_is_not_a_pair() -> None:
    result = run(scores([("p", "a b c", 3.0, "x"), ("p", "d e f", 3.0, "x"), ("p", "g h i", 3.0, "x"), ("q", "alone", 5.0, "x")]))
    assert result.kept.is_empty() and result.kept.columns == ["id", "prompt", "chosen", "rejected", "margin", "n_annotators", "agreement"]
    assert reasons(result) == {"r0": "tie", "r1": "tie", "r2": "tie", "r3": "single_response"}
    assert result.findings.filter(pl.col("finding") == "pair_rejected")["reason"].to_list() == ["tie"] * 3


def test_opposite_annotators_tie_and_a_split_vote_lowers_agreement() -> None:
    opposed = run(scores([("p", "first", 5.0, "x"), ("p", "second", 1.0, "x"), ("p", "first", 1.0, "y"), ("p", "second", 5.0, "y")]))
    assert opposed.kept.is_empty() and set(reasons(opposed).values()) == {"tie"}
    split = [
        ("p", "first", 5.0, "x"),
        ("p", "second", 1.0, "x"),
        ("p", "first", 5.0, "y"),
        ("p", "second", 1.0, "y"),
        ("p", "first", 1.0, "z"),
        ("p", "second", 5.0, "z"),
    ]
    mean = run(scores(split))
    assert_frame_equal(mean.kept, expected([("p", "first", "second", round(4 / 3, 9), 3, round(2 / 3, 9))]))
    assert run(scores(split), aggregate="median").kept["margin"].to_list() == [4.0]
    assert run(scores(split), aggregate="majority").kept["margin"].to_list() == [4.0]  # the score most annotators gave
    strict = run(scores(split), min_agreement=0.7)
    assert strict.kept.is_empty() and set(reasons(strict).values()) == {"low_agreement"}
    assert strict.stats["prompt_agreement"]["contested_prompts"] == 1


def test_responses_rated_by_different_annotators_are_compared_across_them() -> None:
    result = run(scores([("p", "first", 5.0, "x"), ("p", "first", 4.0, "y"), ("p", "second", 2.0, "z"), ("p", "second", 4.0, "w")]))
    # no annotator rated both: 4 cross comparisons, 5>2, 5>4, 4>2 and one tie (4=4)
    assert_frame_equal(result.kept, expected([("p", "first", "second", 1.5, 4, 0.875)]))


def test_rank_one_is_best() -> None:
    df = scores([("p", "top", None, "x"), ("p", "bottom", None, "x")]).with_columns(rank=pl.Series([1.0, 2.0]))
    assert pairs(run(df)) == [("p", "top", "bottom")]


def test_aspects_are_cast_weighted_and_bad_values_quarantined() -> None:
    rows = [("p", "helpful but wordy", None, "x"), ("p", "terse and correct", None, "x"), ("p", "third", None, "x")]
    df = scores(rows, helpfulness=["5", "2", "oops"], honesty=["1", "5", "3"])
    result = run(df, aspects={"helpfulness": 1.0, "honesty": 3.0})  # (2 + 15) / 4 vs (5 + 3) / 4
    assert_frame_equal(result.kept, expected([("p", "terse and correct", "helpful but wordy", 2.25, 1, 1.0)]))
    assert result.quarantined.to_dicts() == [{"id": "r2", "error": "aspect `helpfulness` is missing or not a number"}]
    with pytest.raises(SchemaError, match="`helpful`"):
        run(df, aspects={"helpful": 1.0})


def test_identical_near_identical_and_empty_responses_are_dropped() -> None:
    text = "Open Settings, choose Security and press Reset password; a link arrives by e-mail within minutes."
    near = text.replace("minutes.", "minutes!")
    df = scores(
        [
            ("p", text, 5.0, "x"),
            ("p", "  " + text.upper(), 1.0, "x"),
            ("q", text, 5.0, "x"),
            ("q", near, 1.0, "x"),
            ("s", "fine", 4.0, "x"),
            ("s", "  ", 1.0, "x"),
        ]
    )
    result = run(df)
    assert reasons(result) == {
        "r0": "identical_responses",
        "r1": "identical_responses",
        "r2": "identical_responses",
        "r3": "identical_responses",
        "r4": "single_response",
        "r5": "empty_response",
    }
    found = result.findings.filter(pl.col("finding") == "pair_rejected")
    assert found["reason"].to_list() == ["identical_responses"] * 2 and found["similarity"].min() >= 0.9  # type: ignore[operator]
    assert similarity(text, "Close the app and reinstall it from the store, then sign in again.") < 0.3
    assert run(df, near_duplicate=1.0).kept.height == 1  # only case/space-equal texts count now


# ---------------------------------------------------------------------------- pairwise
def test_pairwise_merges_both_presentation_orders_and_measures_position_bias() -> None:
    df = pairwise(
        [
            ("p", "long answer", "short", "a", "u1"),
            ("p", "short", "long answer", "b", "u2"),
            ("p", "long answer", "short", "b", "u3"),
            ("q", "x y", "z w", "a", "u1"),
        ]
    )
    result = run(df, strategy="best_vs_random")  # the strategy does not apply to judged pairs
    assert_frame_equal(
        result.kept, expected([("p", "long answer", "short", round(1 / 3, 9), 3, round(2 / 3, 9)), ("q", "x y", "z w", 1.0, 1, 1.0)])
    )
    assert result.stats["position"] == {"a_win_rate": 0.5, "bias": 0.0, "tie_rate": 0.0, "judgements": 4}
    assert result.stats["strategy"] == "every_judged_pair"
    assert result.stats["annotators"]["most_skewed"]["u1"] == {"n": 2, "a_win_rate_minus_half": 0.5}


def test_pairwise_ties_and_bad_winners() -> None:
    df = pairwise(
        [
            ("p", "one", "two", "tie", None),
            ("p", "one", "two", "TIE", None),
            ("q", "three", "four", "c", None),
            ("s", "five", "six", "a", None),
            ("s", "six", "five", "a", "x"),
        ]
    )
    result = run(df)
    assert reasons(result) == {"w0": "tie", "w1": "tie", "w3": "tie", "w4": "tie"}  # s: one vote each way
    assert result.quarantined.to_dicts() == [{"id": "w2", "error": "`winner` must be 'a', 'b' or 'tie', got 'c'"}]
    assert result.stats["position"]["tie_rate"] == 0.5


def test_explicit_prompt_pairs_are_audited() -> None:
    df = pl.DataFrame(
        {"id": ["e0", "e1", "e2"], "prompt": ["p", "q", "s"], "chosen": ["yes", "same", "ok"], "rejected": ["no", "Same", "  "]}
    )
    result = run(df, kind="preference")
    assert pairs(result) == [("p", "yes", "no")]
    assert reasons(result) == {"e1": "identical_responses", "e2": "empty_response"}


# ---------------------------------------------------------------------------- transcripts
def test_transcripts_split_on_the_last_assistant_turn() -> None:
    df = pl.DataFrame({
        "id": ["t0", "t1", "t2", "t3"],
        "chosen": [f"{H}Hi{A}Hello!{H}How do I reset it?{A}Use the link.", f"{H}a{A}b{H}c{A}good", f"{H}x{A}y", f"{H}q{A}same"],
        "rejected": [f"{H}Hi{A}Hello!{H}How do I reset it?{A}No idea.", f"{H}a{A}DIFFERENT{H}c{A}bad", "plain text", f"{H}q{A}same"],
    })  # fmt: skip
    result = run(df)
    prompt = f"{H}Hi{A}Hello!{H}How do I reset it?\n\nAssistant:"
    assert pairs(result) == [(prompt, " Use the link.", " No idea.")]
    assert reasons(result) == {"t1": "transcripts_diverge", "t3": "identical_responses"}
    assert result.quarantined["id"].to_list() == ["t2"] and "Assistant:" in result.quarantined["error"][0]
    assert "position" not in result.stats  # chosen/rejected columns are not presentation positions


turn_text = st.text(alphabet="abcdefgh XYZ?:.!", min_size=1, max_size=12).filter(lambda s: s.strip() != "")


def _transcript(turns: list[tuple[str, str]], last_human: str, reply: str) -> str:
    return "".join(f"{H}{h}{A}{a}" for h, a in turns) + f"{H}{last_human}{A}{reply}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.lists(st.tuples(turn_text, turn_text), max_size=3), turn_text, turn_text, turn_text, st.booleans(), turn_text),
        min_size=1,
        max_size=6,
    ),
)
def test_prompt_plus_response_reproduces_each_transcript(cases: list[tuple[Any, ...]]) -> None:
    chosen, rejected, diverging = [], [], set()
    for i, (turns, human, good, bad, diverge, other) in enumerate(cases):
        chosen.append(_transcript(turns, human, good))
        early = [(h, a + other) for h, a in turns] if diverge and turns else turns  # an earlier reply differs
        rejected.append(_transcript(early, human, bad))
        if diverge and turns:
            diverging.add(f"t{i}")
    df = pl.DataFrame({"id": [f"t{i}" for i in range(len(cases))], "chosen": chosen, "rejected": rejected})
    result = run(df, near_duplicate=1.0)
    lineage = pl.read_parquet(io.BytesIO(result.files["lineage.parquet"]))  # type: ignore[arg-type]
    source = dict(zip(df["id"], zip(chosen, rejected, strict=True), strict=True))
    for pid, prompt, c, r in result.kept.select("id", "prompt", "chosen", "rejected").iter_rows():
        for row_id in lineage.filter(pl.col("pair_id") == pid)["row_id"]:
            assert (prompt + c, prompt + r) == source[row_id]
    assert {i for i, why in reasons(result).items() if why == "transcripts_diverge"} == diverging
    assert set(reasons(result).values()) <= {"transcripts_diverge", "identical_responses"} and result.quarantined.is_empty()


# ---------------------------------------------------------------------------- output, books, stats
def test_conversational_format_gives_message_lists() -> None:
    df = pl.DataFrame(
        {"id": ["t0"], "chosen": [f"{H}Hi{A}Hello{H}Reset?{A} Use the link. "], "rejected": [f"{H}Hi{A}Hello{H}Reset?{A} No."]}
    )
    kept = run(df, format="conversational").kept
    assert kept.schema["prompt"] == pl.List(MESSAGE) and kept.schema["chosen"] == pl.List(MESSAGE)
    assert kept.row(0, named=True)["prompt"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Reset?"},
    ]
    assert kept.row(0, named=True)["chosen"] == [{"role": "assistant", "content": "Use the link."}]
    plain = run(scores(THREE), format="conversational").kept.row(0, named=True)
    assert plain["prompt"] == [{"role": "user", "content": "p"}] and plain["rejected"] == [{"role": "assistant", "content": "poor"}]


def test_standard_output_matches_the_preference_kind() -> None:
    kept = run(scores(THREE)).kept
    form = FORMS["preference"][0]
    assert kept.schema == pl.Schema({"id": pl.String(), **form.columns})


def test_stats_and_findings_hold_no_text_or_names() -> None:
    rows = [
        ("secret prompt", "secret answer one", 5.0, "jane.doe@example.com"),
        ("secret prompt", "secret answer two", 1.0, "jane.doe@example.com"),
        ("secret prompt", "secret answer two", 1.0, "ann_7"),
    ]
    rows += [("secret prompt", "secret answer one", 1.0, "ann_7"), ("secret prompt", "secret answer three", 1.0, "ann_7")]
    result = run(scores(rows), strategy="all_pairs")
    dumped = json.dumps(result.stats) + result.findings.write_csv()
    assert "secret" not in dumped and "jane" not in dumped and "example.com" not in dumped
    assert "ann_7" in dumped and "masked:" in dumped  # opaque ids stay, names become short hashes


def test_rerun_is_byte_identical() -> None:
    df, _ = score_ratings(40, seed=2)
    one, two = run(df, strategy="best_vs_random", seed=9), run(df, strategy="best_vs_random", seed=9)
    assert_frame_equal(one.kept, two.kept)
    assert_frame_equal(one.dropped, two.dropped)
    assert_frame_equal(one.findings, two.findings)
    assert one.files == two.files and json.dumps(one.stats) == json.dumps(two.stats)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["p", "q", "s"]),
            st.sampled_from(["alpha", "beta", "Beta", "gamma delta", " "]),
            st.sampled_from([1.0, 2.0, 3.0, None]),
            st.sampled_from(["x", "y", None]),
        ),
        min_size=1,
        max_size=25,
    ),
    st.sampled_from(["best_vs_worst", "best_vs_random", "all_pairs"]),
    st.sampled_from(["mean", "median", "majority"]),
    st.sampled_from([None, 1, 2]),
)
def test_books_balance_for_any_scores(rows: list[Any], strategy: str, aggregate: str, cap: int | None) -> None:
    result = run(scores(rows), strategy=strategy, aggregate=aggregate, max_pairs_per_prompt=cap, min_margin=0.5)
    assert (result.kept["margin"] >= 0.5).all() and (result.kept["chosen"] != result.kept["rejected"]).all()
    if cap is not None:
        assert (result.kept.group_by("prompt").len()["len"].max() or 0) <= cap  # type: ignore[operator]


def test_diagnostics_recover_injected_biases() -> None:
    # Tolerances are about 4 standard errors at these sizes (the eval script uses 3000 prompts).
    df, want = pairwise_ratings(400, seed=11)
    stats = run(df).stats
    assert abs(stats["position"]["a_win_rate"] - want["a_win_rate"]) < 0.04
    assert abs(stats["length"]["judged_chosen_longer_rate"] - want["judged_chosen_longer_rate"]) < 0.04
    for name, entry in stats["annotators"]["most_skewed"].items():
        assert abs(entry["a_win_rate_minus_half"] - want[name]) < 0.08
    df, want = score_ratings(200, seed=11)
    stats = run(df).stats
    assert abs(stats["length"]["judged_chosen_longer_rate"] - want["judged_chosen_longer_rate"]) < 0.04
    for name, entry in stats["annotators"]["most_skewed"].items():
        assert abs(entry["mean_deviation"] - want[name]) < 0.08


# ---------------------------------------------------------------------------- config and pipeline
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"strategy": "best_of_n"}, "stages[0].preferences.strategy"),
        ({"aspects": {"helpfulness": -1}}, "aspect weights must be positive"),
        ({"aspects": {"prompt": 1}}, "not `prompt`"),
        ({"max_pairs_per_prompt": 0}, "stages[0].preferences.max_pairs_per_prompt"),
        ({"min_agreement": 1.5}, "stages[0].preferences.min_agreement"),
        ({"pairs": 3}, "unknown key"),
    ],
)
def test_config_errors_are_one_line_each(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config({"input": {"path": "x.jsonl", "kind": "ratings"}, "stages": [{"preferences": options}]})


def test_pipeline_writes_preference_dataset(make_run: Any) -> None:
    rows = [
        {"prompt": p, "response": f"{r} answer to {p}", "score": s, "annotator": a}
        for p in ("how?", "why?")
        for r, s in (("full", 5), ("half", 3))
        for a in ("x", "y")
    ]
    rows.append({"prompt": "lonely?", "response": "only one", "score": 4, "annotator": "x"})
    result = make_run(rows, kind="ratings", stages=["normalize", "preferences"])
    assert result.kind == "preference"
    data = pl.read_parquet(result.run_dir / "dataset" / "data.parquet")
    assert data.columns == ["id", "prompt", "chosen", "rejected", "margin", "n_annotators", "agreement"]
    assert sorted(data["chosen"]) == ["full answer to how?", "full answer to why?"]
    stage_dir = result.run_dir / "stages" / "02-preferences"
    stats = json.loads((stage_dir / "stats.json").read_text())
    assert stats["books"] == {"rows_in": 9, "kept": 8, "dropped": 1, "quarantined": 0, "rows_out": 2} and stats["dropped_by_reason"] == {
        "single_response": 1
    }
    assert stats["metrics"]["rows_used"] == 8 and pl.read_parquet(stage_dir / "lineage.parquet").height == 8
