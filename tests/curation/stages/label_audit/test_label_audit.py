from __future__ import annotations

import json
from typing import Any

import hypothesis.strategies as st
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from polars.testing import assert_frame_equal

from curation.core.config import parse_config
from curation.core.errors import ConfigError
from curation.core.stage import StageContext, StageResult
from curation.stages.label_audit.confident_learning import out_of_fold_probs, tfidf_features
from curation.stages.label_audit.stage import FINDINGS_SCHEMA, LabelAuditConfig, canonical_labels, label_audit
from tests.data.label_data import generate

NO_CL = {"features": None}  # hygiene and conflict tests need no classifier


def _ctx(**kw: Any) -> StageContext:
    return StageContext(kind="classification", **kw)


def _frame(labels: list[str | None], texts: list[str] | None = None) -> pl.DataFrame:
    texts = texts or [f"ticket {i}" for i in range(len(labels))]
    return pl.DataFrame(
        {"id": [f"r{i}" for i in range(len(labels))], "text": texts, "label": labels},
        schema={"id": pl.String, "text": pl.String, "label": pl.String},
    )


def _issues(result: StageResult, issue: str) -> pl.DataFrame:
    return result.findings.filter(pl.col("issue") == issue)


# ---- hygiene -------------------------------------------------------------------------


def test_label_variants_are_normalized_recorded_and_counted() -> None:
    df = _frame(["Billing", " billing", "BILLING", "billing", "Tech  Support ", "tech support"])
    result = label_audit(df, LabelAuditConfig(**NO_CL), _ctx())
    assert result.kept["label"].to_list() == ["billing"] * 4 + ["tech support"] * 2
    assert result.stats["normalized_counts"] == {
        "billing": {" billing": 1, "BILLING": 1, "Billing": 1},
        "tech support": {"Tech  Support ": 1},
    }
    assert result.stats["normalized_rows"] == 4
    found = _issues(result, "label_normalized").sort("id")
    assert found.select("id", "given_label", "suggested_label", "action", "detail").rows() == [
        ("r0", "Billing", "billing", "relabel", "case_and_spacing"),
        ("r1", " billing", "billing", "relabel", "case_and_spacing"),
        ("r2", "BILLING", "billing", "relabel", "case_and_spacing"),
        ("r4", "Tech  Support ", "tech support", "relabel", "case_and_spacing"),
    ]
    assert result.findings.schema == pl.Schema(FINDINGS_SCHEMA)
    assert result.dropped.is_empty() and result.stats["label_counts"] == {"billing": 4, "tech support": 2}


def test_declared_labels_set_the_spelling_and_label_map_merges_synonyms() -> None:
    cfg = LabelAuditConfig(labels=[" Billing", "Shipping"], label_map={"payments": "billing", "Delivery": "Shipping"}, **NO_CL)
    assert canonical_labels(["billing", " PAYMENTS", "delivery", "sport", "  "], cfg) == {
        "billing": "Billing",
        " PAYMENTS": "Billing",
        "delivery": "Shipping",
        "sport": "sport",
        "  ": None,
    }
    result = label_audit(_frame(["billing", "Payments", "Shipping", "sport", None, " "]), cfg, _ctx())
    assert result.kept["label"].to_list() == ["Billing", "Billing", "Shipping", "sport", None, None]
    assert dict(_issues(result, "label_normalized").select("id", "detail").iter_rows()) == {"r0": "case_and_spacing", "r1": "label_map"}
    assert _issues(result, "label_unknown").select("id", "given_label").rows() == [("r3", "sport")]
    assert _issues(result, "label_missing").select("id", "given_label").sort("id").rows() == [("r4", None), ("r5", " ")]
    assert result.stats["issues"] == {"label_missing": 2, "label_unknown": 1}


def test_casefold_off_keeps_case_but_still_strips() -> None:
    result = label_audit(_frame(["Billing", " Billing", "billing"]), LabelAuditConfig(casefold=False, **NO_CL), _ctx())
    assert result.kept["label"].to_list() == ["Billing", "Billing", "billing"]


def test_drop_actions_use_the_issue_as_reason_and_keep_the_books() -> None:
    cfg = LabelAuditConfig(labels=["a", "b"], actions={"label_unknown": "drop", "label_missing": "drop"}, **NO_CL)
    df = _frame(["a", "B", "c", None])
    result = label_audit(df, cfg, _ctx())
    assert_frame_equal(
        result.dropped, df.filter(pl.col("id").is_in(["r2", "r3"])).with_columns(reason=pl.Series(["label_unknown", "label_missing"]))
    )
    assert result.kept["id"].to_list() == ["r0", "r1"] and result.kept["label"].to_list() == ["a", "b"]
    assert result.stats["dropped"] == {"label_missing": 1, "label_unknown": 1}
    assert _issues(result, "label_unknown")["action"].to_list() == ["drop"]


# ---- conflicts -----------------------------------------------------------------------


def test_exact_text_conflicts_follow_the_majority_and_ties_stay_unresolved() -> None:
    texts = ["Card declined", "card  DECLINED", "Card declined", "App crashes", "app crashes", "Where is my parcel"]
    df = _frame(["billing", "billing", "technical", "technical", "billing", "shipping"], texts)
    result = label_audit(df, LabelAuditConfig(actions={"label_conflict": "relabel"}, **NO_CL), _ctx())
    found = _issues(result, "label_conflict").sort("id")
    assert found.select("id", "given_label", "suggested_label", "detail").rows() == [
        ("r2", "technical", "billing", "exact_text"),
        ("r3", "technical", None, "exact_text"),
        ("r4", "billing", None, "exact_text"),
    ]
    assert found["score"].to_list() == pytest.approx([1 / 3, 0.5, 0.5])
    assert found["group"][1] == found["group"][2] != found["group"][0]
    assert result.kept["label"].to_list() == ["billing", "billing", "billing", "technical", "billing", "shipping"]
    assert result.stats["relabeled"] == {"label_conflict": 1}
    assert result.stats["conflicts"]["exact_text_groups"] == 2 and result.stats["conflicts"]["unresolved_groups"] == 1


def test_near_duplicate_conflicts_use_the_dedup_stage_clusters() -> None:
    df = _frame(["billing", "shipping", "account"], ["I was charged twice", "Parcel is late", "Reset my password"])
    # the dedup stage kept r0 and r1 and dropped their near-copies, recording the clusters
    dropped = pl.DataFrame(
        {
            "id": ["d1", "d2", "d3"],
            "text": ["x", "y", "z"],
            "label": ["Technical", "technical", "shipping"],
            "reason": ["near_duplicate"] * 3,
        }
    )
    findings = pl.DataFrame({"id": ["d1", "d2", "d3"], "kept_id": ["r0", "r0", "r1"], "cluster_id": [7, 7, 8]})
    ctx = _ctx(artifacts={"dedup": StageResult(kept=df, dropped=dropped, findings=findings)})
    result = label_audit(df, LabelAuditConfig(**NO_CL), ctx)
    found = _issues(result, "label_conflict")
    # r0 disagrees with its cluster's majority; d1 and d2, dropped by dedup, disagree with r0, the row kept for them
    assert sorted(found.select("id", "given_label", "suggested_label", "group", "detail", "action").rows()) == [
        ("d1", "technical", None, "dedup:7", "dedup_dropped", "flag"),
        ("d2", "technical", None, "dedup:7", "dedup_dropped", "flag"),
        ("r0", "billing", "technical", "dedup:7", "dedup_cluster", "flag"),
    ]
    assert found.sort("id")["score"].to_list() == pytest.approx([2 / 3, 2 / 3, 1 / 3])
    assert result.stats["conflicts"]["near_duplicate_clusters"] == 1 and result.stats["conflicts"]["dropped_rows_in_conflict"] == 2


def test_a_row_in_an_exact_group_and_a_dedup_cluster_gets_one_conflict_finding() -> None:
    df = _frame(["billing", "technical", "technical"], ["Charged twice", "charged TWICE", "Charged twice"])
    dropped = pl.DataFrame({"id": ["d1"], "text": ["Charged twice!"], "label": ["technical"], "reason": ["near_duplicate"]})
    findings = pl.DataFrame({"id": ["d1"], "kept_id": ["r0"], "cluster_id": [1]})
    ctx = _ctx(artifacts={"dedup": StageResult(kept=df, dropped=dropped, findings=findings)})
    found = _issues(label_audit(df, LabelAuditConfig(**NO_CL), ctx), "label_conflict")
    # the dedup cluster (r0 billing, d1 technical) is a tie; the exact group resolves to technical
    assert sorted(found.select("id", "suggested_label", "detail").rows()) == [
        ("d1", None, "dedup_dropped"),
        ("r0", "technical", "exact_text"),
    ]


def test_contrastive_near_duplicates_dropped_by_dedup_are_conflicts_through_the_runner(make_run: Any) -> None:
    """Banking77-like intents one word apart: dedup keeps the first of each cluster, label_audit reports the others.

    The rows dedup dropped have no classifier confidence (null); their conflicts must not vanish.
    """
    fee = "hello, i was charged an extra fee on my card this morning after {} money from my savings account, why is that"
    atm = "my card is not working at the cash machine near the station since yesterday evening and i need it {}"
    rows = [
        {"id": "fee_withdraw", "text": fee.format("withdrawing"), "label": "cash_withdrawal_charge"},
        {"id": "fee_transfer", "text": fee.format("transferring"), "label": "transfer_fee_charged"},
        {"id": "atm_kept", "text": atm.format("today"), "label": "card_not_working"},
        {"id": "atm_same", "text": atm.format("tonight"), "label": "card_not_working"},
        {"id": "atm_other", "text": atm.format("urgently"), "label": "declined_card_payment"},
        *(
            {"id": f"o{i}", "text": f"question {i}: how long does a {topic} take to arrive", "label": "other"}
            for i, topic in enumerate(["card", "refund", "pin", "statement"])
        ),
    ]
    result = make_run(rows, stages=["dedup", "label_audit"])
    dropped = pl.read_parquet(result.run_dir / "stages/01-dedup/dropped.parquet")
    assert sorted(dropped["id"]) == ["atm_other", "atm_same", "fee_transfer"]
    findings = pl.read_parquet(result.run_dir / "stages/02-label_audit/findings.parquet").filter(pl.col("issue") == "label_conflict")
    assert sorted(findings.select("id", "given_label", "suggested_label", "detail").rows()) == [
        ("atm_other", "declined_card_payment", "card_not_working", "dedup_dropped"),  # the cluster's majority disagrees
        ("fee_transfer", "transfer_fee_charged", None, "dedup_dropped"),  # 1 against 1, no confidence: unresolved
        ("fee_withdraw", "cash_withdrawal_charge", None, "dedup_cluster"),  # the kept row of an unresolved pair
    ]
    stats = json.loads((result.run_dir / "stages/02-label_audit/stats.json").read_text())["metrics"]
    assert stats["issues"]["label_conflict"] == 3 and stats["conflicts"]["dropped_rows_in_conflict"] == 2
    assert stats["conflicts"]["unresolved_groups"] == 1


def test_a_known_confidence_does_not_break_a_tie_against_rows_without_one() -> None:
    from curation.stages.label_audit.stage import _resolve

    members = pl.DataFrame(
        {"group": ["g", "g", "h", "h"], "label": ["a", "b", "a", "b"], "self_conf": [0.9, None, 0.9, 0.4]},
        schema={"group": pl.String, "label": pl.String, "self_conf": pl.Float64},
    )
    assert sorted(_resolve(members).rows()) == [("g", None), ("h", "a")]


# ---- confident learning --------------------------------------------------------------


def _score(result: StageResult, truth: pl.DataFrame, issues: tuple[str, ...]) -> tuple[float, float]:
    flagged = result.findings.filter(pl.col("issue").is_in(issues))["id"].unique()
    errors = truth.filter("is_error")["id"]
    hits = int(flagged.is_in(errors.implode()).sum())
    return hits / max(flagged.len(), 1), hits / errors.len()


def test_small_benchmark_beats_the_naive_baseline() -> None:
    df, truth = generate(1200, seed=1, conflicts=8)
    result = label_audit(df, LabelAuditConfig(), _ctx(seed=1))
    precision, recall = _score(result, truth, ("label_mislabel", "label_conflict"))
    # naive baseline: flag every row whose out-of-fold prediction disagrees with its label
    rows = result.kept.with_columns(pl.col("label"))
    classes = sorted(rows["label"].unique().to_list())
    y = np.searchsorted(classes, rows["label"].to_numpy())
    probs = out_of_fold_probs(tfidf_features(rows["text"].to_list()), y, len(classes), folds=5, seed=1)
    naive = rows.filter(pl.Series(probs.argmax(axis=1) != y))["id"]
    naive_precision = float(naive.is_in(truth.filter("is_error")["id"].implode()).mean())
    assert precision >= 0.9 and recall >= 0.8
    assert precision > naive_precision
    assert result.stats["normalized_rows"] == int((df["label"] != df["label"].str.strip_chars().str.to_lowercase()).sum())
    mislabels = _issues(result, "label_mislabel")
    assert (mislabels["given_label"] != mislabels["suggested_label"]).all()
    assert mislabels["score"].is_sorted() and mislabels["score"].max() < 0.5  # ranked by self-confidence
    cl = result.stats["confident_learning"]
    assert cl["ran"] and cl["rows_audited"] == df.height and 0.04 < cl["estimated_noise_rate"] < 0.12


def test_relabel_and_rerun_are_deterministic() -> None:
    df, _ = generate(300, seed=2, conflicts=3)
    cfg = LabelAuditConfig(actions={"label_mislabel": "relabel", "label_conflict": "drop"}, rank_by="normalized_margin")
    first, again = label_audit(df, cfg, _ctx(seed=5)), label_audit(df, cfg, _ctx(seed=5))
    assert_frame_equal(first.kept, again.kept)
    assert_frame_equal(first.findings, again.findings)
    relabeled = _issues(first, "label_mislabel").filter(~pl.col("id").is_in(first.dropped["id"].implode()))
    new = dict(first.kept.select("id", "label").iter_rows())
    assert relabeled.height > 0 and all(new[i] == s for i, s in relabeled.select("id", "suggested_label").iter_rows())
    assert first.stats["relabeled"]["label_mislabel"] == relabeled.height


def test_missing_and_unknown_labels_get_a_suggestion_when_relabelled() -> None:
    df, _ = generate(240, seed=3, flip_rate=0.0, variant_rate=0.0, conflicts=0)
    df = df.with_columns(
        label=pl.when(pl.int_range(pl.len()) < 3).then(None).when(pl.int_range(pl.len()) < 5).then(pl.lit("misc")).otherwise("label")
    )
    cfg = LabelAuditConfig(
        labels=["billing", "technical", "shipping", "account", "returns", "feedback"],
        actions={"label_missing": "relabel", "label_unknown": "relabel"},
    )
    result = label_audit(df, cfg, _ctx())
    guesses = result.findings.filter(pl.col("issue").is_in(["label_missing", "label_unknown"]))
    assert guesses.height == 5 and guesses["suggested_label"].null_count() == 0 and guesses["score"].min() > 0
    assert result.kept["label"].null_count() == 0 and "misc" not in result.kept["label"].to_list()
    assert result.stats["relabeled"] == {"label_missing": 3, "label_unknown": 2}


def test_confident_learning_skips_classes_too_small_to_learn() -> None:
    result = label_audit(_frame(["a"] * 12 + ["b"] * 3), LabelAuditConfig(), _ctx())
    cl = result.stats["confident_learning"]
    assert not cl["ran"] and cl["classes_not_audited"] == {"b": 3}
    assert result.kept.height == 15


@pytest.mark.slow
def test_embedding_features_run_on_the_embedded_minilm() -> None:
    df, truth = generate(180, seed=4, conflicts=0)
    ctx = _ctx()
    result = label_audit(df, LabelAuditConfig(features="embeddings"), ctx)
    assert result.stats["confident_learning"]["features"] == "embeddings" and result.stats["confident_learning"]["oof_accuracy"] > 0.8
    precision, _ = _score(result, truth, ("label_mislabel",))
    assert precision >= 0.7
    assert any(k.startswith("embedding-cache:") for k in ctx.engines)  # the balance stage reuses these vectors


# ---- annotators, other kinds, books, config ------------------------------------------


def test_annotator_agreement_is_reported() -> None:
    texts = ["t1", "t1", "t2", "t2", "t3", "t3"]
    df = _frame(["a", "a", "a", "b", "b", "b"], texts).with_columns(annotator=pl.Series(["x", "y"] * 3))
    result = label_audit(df, LabelAuditConfig(**NO_CL), _ctx())
    agreement = result.stats["agreement"]
    assert agreement["cohen_kappa"] == [{"a": "x", "b": "y", "items": 3, "agreement": pytest.approx(2 / 3), "kappa": pytest.approx(0.4)}]
    assert agreement["fleiss_kappa"] == pytest.approx(1 / 3, abs=1e-6) and agreement["krippendorff_alpha"] == pytest.approx(4 / 9, abs=1e-6)
    json.dumps(result.stats)


def test_other_kinds_pass_through() -> None:
    df = pl.DataFrame({"id": ["a"], "text": ["hello"]})
    result = label_audit(df, LabelAuditConfig(), StageContext(kind="text"))
    assert_frame_equal(result.kept, df)
    assert result.dropped.is_empty() and result.findings.is_empty() and result.stats["applies"] is False


@settings(max_examples=30, deadline=None)
@given(
    labels=st.lists(st.one_of(st.none(), st.sampled_from(["a", "A ", "b", "c", " ", "zz"])), max_size=30),
    texts=st.lists(st.sampled_from(["same", "Same", "other", "third"]), min_size=30, max_size=30),
    action=st.sampled_from(["flag", "drop", "relabel"]),
)
def test_every_row_is_kept_or_dropped_exactly_once(labels: list[str | None], texts: list[str], action: str) -> None:
    df = _frame(labels, texts[: len(labels)])
    issues = ("label_missing", "label_unknown", "label_conflict", "label_mislabel")
    cfg = LabelAuditConfig(labels=["a", "b", "c"], folds=2, min_class_rows=2, actions=dict.fromkeys(issues, action))
    result = label_audit(df, cfg, _ctx())
    ids = sorted([*result.kept["id"], *result.dropped["id"]])
    assert ids == sorted(df["id"]) and result.dropped["reason"].str.starts_with("label_").all()
    assert result.kept.columns == df.columns


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"labels": ["a", "A"]}, "same label after normalisation"),
        ({"labels": ["a"], "label_map": {"x": "b"}}, "which is not in `labels`"),
        ({"labels": []}, "at least one non-empty label"),
        ({"actions": {"label_typo": "drop"}}, "actions.label_typo"),
        ({"actions": {"label_conflict": "delete"}}, "actions.label_conflict"),
        ({"folds": 1}, "folds"),
        ({"features": "bert"}, "features"),
    ],
)
def test_config_errors_are_one_line_each(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"input": {"path": "x.jsonl", "kind": "classification"}, "stages": [{"label_audit": options}]})
    assert len(err.value.problems) == 1 and fragment in err.value.problems[0]


def test_runs_in_the_pipeline_and_writes_findings(make_run: Any) -> None:
    rows = [{"text": f"my card was charged twice, invoice {i}", "label": "Billing" if i % 2 else "billing"} for i in range(12)]
    rows += [{"text": f"the app crashes on start, build {i}", "label": "technical"} for i in range(12)]
    rows += [{"text": "the app crashes on start, build 99", "label": "billing"}]
    result = make_run(rows, stages=[{"label_audit": {"actions": {"label_mislabel": "drop"}}}])
    stage_dir = result.run_dir / "stages" / "01-label_audit"
    stats = json.loads((stage_dir / "stats.json").read_text())
    assert stats["metrics"]["normalized_counts"] == {"billing": {"Billing": 6}}
    assert stats["dropped_by_reason"] == {"label_mislabel": 1}
    findings = pl.read_parquet(stage_dir / "findings.parquet")
    assert "text" not in findings.columns and findings.filter(pl.col("issue") == "label_mislabel")["given_label"].to_list() == ["billing"]
    dataset = pl.read_parquet(result.run_dir / "dataset" / "data.parquet")
    assert sorted(dataset["label"].unique()) == ["billing", "technical"] and dataset.height == 24
