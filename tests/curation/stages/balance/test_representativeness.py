"""Representativeness with the real MiniLM encoder on tiny constructed corpora.

One StageContext for the module, so the encoder loads once (as in a run, where the
runner shares one context between stages).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from curation.core.stage import StageContext, StageResult
from curation.embeddings import DEFAULT_MODEL
from curation.stages.balance.representativeness import mask_text, seeded_sample
from curation.stages.balance.stage import BalanceConfig, balance
from curation.stages.label_audit.stage import LabelAuditConfig, label_audit

COOKING = [
    f"How long should I bake the {x} in the oven, and at what temperature?"
    for x in ("chicken", "salmon", "potatoes", "bread", "lasagna", "carrots", "tofu")
]
COOKING += [
    f"Which herbs and spices go well with roasted {x} for dinner?"
    for x in ("chicken", "salmon", "potatoes", "lamb", "pumpkin", "carrots", "mushrooms")
]
FOOTBALL = [
    f"Who scored the winning goal for {t} in the match last night?"
    for t in ("Arsenal", "Chelsea", "Liverpool", "Barcelona", "Juventus", "Ajax", "Porto")
]
FOOTBALL += [
    f"When does the {t} football season start and who is their new striker?"
    for t in ("Arsenal", "Chelsea", "Liverpool", "Barcelona", "Juventus", "Ajax", "Porto")
]
CODING = [
    f"Jane Doe here: my Python script raises a KeyError on line {n} when parsing the JSON config, mail jane.doe{n}@example.com"
    for n in range(20, 34)
]


def frame(texts: list[str], prefix: str = "r") -> pl.DataFrame:
    return pl.DataFrame(
        {"id": [f"{prefix}{i:03d}" for i in range(len(texts))], "text": texts, "label": ["x" if i % 2 else "y" for i in range(len(texts))]}
    )


@pytest.fixture(scope="module")
def ctx() -> StageContext:
    return StageContext(kind="classification", seed=0)


def run(df: pl.DataFrame, ctx: StageContext, reference: Path | None = None, **options: Any) -> StageResult:
    return balance(df, BalanceConfig(reference=str(reference) if reference else None, **options), ctx)


@pytest.mark.slow
def test_identical_data_has_full_coverage_and_no_drift(ctx: StageContext, tmp_path: Path) -> None:
    df = frame(COOKING + FOOTBALL)
    df.drop("id").write_ndjson(tmp_path / "ref.jsonl")
    out = run(df, ctx, tmp_path / "ref.jsonl", k_topics=2)
    emb, rep = out.stats["embeddings"], out.stats["representativeness"]
    assert emb["coverage"] == 1.0
    assert emb["density"] == pytest.approx(6 / 5, abs=0.1)  # identical sets: each ball holds its centre + k points
    assert emb["lacking_topics"] == [] and all(t["dataset_share"] == t["reference_share"] for t in emb["topics"])
    assert rep["facets"]["label"]["PSI"] == 0.0 and rep["facets"]["label"]["JS"] == 0.0
    assert rep["lengths"]["chars"]["KS"] == 0.0
    assert emb["vendi"] == emb["reference_vendi"] and emb["vendi"] > 1.5
    assert "charts/coverage.svg" in out.files


@pytest.mark.slow
def test_a_topic_the_dataset_lacks_is_listed_with_masked_examples(ctx: StageContext, tmp_path: Path) -> None:
    pl.DataFrame({"text": COOKING + FOOTBALL + CODING}).write_ndjson(tmp_path / "ref.jsonl")
    out = run(frame(COOKING + FOOTBALL), ctx, tmp_path / "ref.jsonl", k_topics=3)
    emb = out.stats["embeddings"]
    assert len(emb["lacking_topics"]) == 1
    topic = next(t for t in emb["topics"] if t["lacking"])
    assert topic["dataset_share"] == 0.0 and topic["reference_share"] == pytest.approx(1 / 3, abs=0.05)
    assert topic["examples"] and all("script raises a" in e for e in topic["examples"])
    assert emb["examples_masked_by"] in ("regex", "pii.scrub_texts+regex")
    assert emb["coverage"] < 0.8  # a third of the reference has no dataset point nearby
    finding = out.findings.filter(pl.col("finding") == "lacking_topic")
    assert finding["value"].to_list() == [str(topic["topic"])]
    dumped = json.dumps(out.stats) + finding.write_csv()
    for raw in ("Jane", "jane.doe", "example.com", "KeyError", "Python", "20"):
        assert raw not in dumped


@pytest.mark.slow
def test_embeddings_computed_by_label_audit_are_reused(ctx: StageContext) -> None:
    texts = [f"{t} (asked again)" for t in COOKING + FOOTBALL]  # texts no other test embeds
    df = pl.DataFrame({"id": [f"f{i:03d}" for i in range(28)], "text": texts, "label": ["cooking"] * 14 + ["football"] * 14})
    cache = ctx.engine(f"embedding-cache:{DEFAULT_MODEL}", dict)
    start = len(cache)
    audited = label_audit(df, LabelAuditConfig(features="embeddings", folds=2, min_class_rows=5), ctx)  # same context, as in a run
    before = len(cache)
    assert before == start + 28  # label_audit embedded them
    out = run(audited.kept, ctx)
    assert len(cache) == before  # every text balance embeds was already there: nothing was encoded again
    assert out.stats["embeddings"]["embedded"] == {"dataset": audited.kept.height}
    assert out.stats["undefined"]["representativeness"] == "no `reference` configured"


@pytest.mark.slow
def test_large_inputs_are_embedded_through_a_seeded_sample(ctx: StageContext) -> None:
    df = frame(COOKING + FOOTBALL, prefix="s")
    first, second = run(df, ctx, max_embed=10), run(df.reverse(), ctx, max_embed=10)
    assert first.stats["embeddings"]["embedded"] == {"dataset": 10}
    assert first.stats["embeddings"]["vendi"] == second.stats["embeddings"]["vendi"]  # same sample, any row order


def test_embeddings_off_skips_with_a_reason() -> None:
    out = balance(frame(COOKING), BalanceConfig(embeddings=False), StageContext(kind="classification"))
    assert "embeddings" not in out.stats and out.stats["undefined"]["embeddings"] == "`embeddings` is off"


def test_seeded_sample_is_stable_and_order_free() -> None:
    ids = pl.Series([f"id{i}" for i in range(100)])
    a = seeded_sample(100, 10, 5, ids)
    b = seeded_sample(100, 10, 5, ids.reverse())
    assert len(a) == 10 and sorted(ids.gather(a)) == sorted(ids.reverse().gather(b))
    assert seeded_sample(5, 10, 0).tolist() == [0, 1, 2, 3, 4]


def test_mask_text_hides_names_numbers_emails_and_urls() -> None:
    masked = mask_text("Hi, I am Jane Doe (jane@example.com), order 12345 at https://shop.example.com/x, ping @jdoe")
    assert masked == "H***, I am J*** D*** (<email>), order ##### at <url> ping @<handle>"
    assert len(mask_text("word " * 100)) == 160
    assert mask_text("Sent by <PERSON> from [LOCATION]") == "S*** by <PERSON> from [LOCATION]"  # placeholders stay


@pytest.mark.slow
def test_every_topic_has_keywords_and_masked_examples(ctx: StageContext) -> None:
    out = run(frame(COOKING + FOOTBALL + CODING), ctx, k_topics=3)
    topics = out.stats["embeddings"]["topics"]
    by_words = {frozenset(t["keywords"]): t for t in topics}
    assert len(topics) == 3 and all(t["keywords"] and t["examples"] for t in topics)
    cooking = next(t for k, t in by_words.items() if {"bake", "oven"} & k or {"herbs", "spices"} & k)
    football = next(t for k, t in by_words.items() if {"goal", "football", "season", "match"} & k)
    assert cooking is not football
    coding = next(t for t in topics if any("script raises a" in e for e in t["examples"]))
    assert {"script", "raises", "parsing"} & set(coding["keywords"])
    dumped = json.dumps(out.stats)
    for raw in (
        "Jane",
        "jane",
        "example.com",
        "KeyError",
        "Arsenal",
        "arsenal",
    ):  # no name, address or capitalised word as keyword or example
        assert raw not in dumped
