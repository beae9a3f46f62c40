"""The bounded-memory dedup path (``spill``) gives exactly the in-memory path's result."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from curation.core.rundir import stale_temporaries
from curation.core.stage import StageContext, StageResult
from curation.stages.dedup import minhash as mh
from curation.stages.dedup import spill, spill_keys
from curation.stages.dedup import stage as ds
from curation.stages.dedup.stage import DedupConfig, dedup
from tests.data.dedup_data import score
from tests.data.scale_data import ShortSpec, generate_short, write_short

# Pieces of a few hundred rows: every file, partition and batch boundary is crossed many times.
TINY = spill.SpillOptions(chunk_rows=700, part_rows=900, pair_batch=500, verify_pairs=300, block_rows=300)


@pytest.fixture(scope="module")
def short() -> tuple[pl.DataFrame, pl.DataFrame]:
    return generate_short(4000, seed=3)


def _same(a: StageResult, b: StageResult) -> None:
    assert_frame_equal(a.findings, b.findings)
    assert_frame_equal(a.kept, b.kept)
    assert_frame_equal(a.dropped, b.dropped)
    assert a.stats == b.stats


def _both(df: pl.DataFrame, kind: Any = "text", ctx: StageContext | None = None, **options: Any) -> tuple[StageResult, StageResult]:
    """Both paths with one hashing thread: with several, which copy of a text the threads count boilerplate
    phrases of first can move a phrase count by one at a document's start (in the in-memory path too)."""
    ctx = ctx or StageContext(kind=kind)
    options = {"workers": 1, **options}
    in_memory = dedup(df, DedupConfig.model_validate({**options, "spill": False}), ctx)
    spilled = spill.dedup(df, DedupConfig.model_validate(options), ctx, options=TINY)
    return in_memory, spilled


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"boilerplate": {"enabled": False}},
        {"keep": "longest"},
        {"keep": "best", "boilerplate": {"enabled": False}},
        {"minhash": {"verify": "minhash"}},
        {"exact": False},
        {"near": False},
        {"strip_boilerplate": True},
        {"minhash": {"shingle": "char", "ngram": 5}, "strip_punctuation": True},
    ],
)
def test_spilled_text_dedup_equals_in_memory(short: tuple[pl.DataFrame, pl.DataFrame], options: dict[str, Any]) -> None:
    in_memory, spilled = _both(short[0], **options)
    _same(in_memory, spilled)
    assert in_memory.findings.height > 500


def test_spilled_equals_in_memory_when_the_shingle_cache_is_small(
    short: tuple[pl.DataFrame, pl.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stage caches the first chunks' shingles and batches those rows apart; spill caches none: the same blocks."""
    monkeypatch.setattr(ds, "_CHUNK", 64)
    monkeypatch.setattr(ds, "_SHINGLE_CACHE", 20_000)
    in_memory, spilled = _both(short[0])
    _same(in_memory, spilled)
    assert in_memory.stats["boilerplate"]["rows_with_blocks"] > 0


def _chat(df: pl.DataFrame, truth: pl.DataFrame, answers: pl.Series) -> pl.DataFrame:
    """Conversations: the short messages as the user turn; each group's answer (shared by a few groups)."""
    answer = answers.gather(truth["group"].to_numpy() % answers.len())
    turns = pl.DataFrame({"user": df["text"], "assistant": answer}).select(
        pl.concat_list(
            pl.struct(role=pl.lit("user"), content="user"),
            pl.struct(role=pl.lit("assistant"), content="assistant"),
        ).alias("messages")
    )
    return pl.DataFrame({"id": df["id"], "messages": turns["messages"]})


@pytest.mark.parametrize("boilerplate", [True, False])
def test_spilled_chat_dedup_equals_in_memory(boilerplate: bool) -> None:
    df, truth = generate_short(2500, seed=4)
    answers = generate_short(700, seed=5, spec=ShortSpec(dup_groups=0))[0]["text"]
    chat = _chat(df, truth, answers)
    in_memory, spilled = _both(chat, "instruction", boilerplate={"enabled": boilerplate})
    _same(in_memory, spilled)
    assert in_memory.findings.height > 300


def test_spilled_against_earlier_runs_equals_in_memory(make_run: Any, tmp_path: Path) -> None:
    df, _ = generate_short(3000, seed=6)
    first = make_run(df.head(1200).to_dicts(), kind="text", stages=["dedup"], name="day1")
    ctx = StageContext(kind="text", config_dir=tmp_path, runs_root=first.run_dir.parent)
    in_memory, spilled = _both(df.slice(1200), ctx=ctx, against=first.run_id)
    _same(in_memory, spilled)
    assert (in_memory.findings["kept_from"] == "day1").sum() > 50


def test_the_stage_spills_when_told_and_cleans_up(short: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path) -> None:
    bars: list[str] = []

    @contextmanager
    def factory(description: str, total: int | None) -> Iterator[Any]:
        bars.append(description)
        yield type("Bar", (), {"advance": lambda self, n=1: None})()

    df = short[0].head(1000)
    ctx = StageContext(kind="text", run_dir=tmp_path, progress_factory=factory)
    spilled = dedup(df, DedupConfig(spill=True), ctx)
    assert "dedup: candidate pairs" in bars  # the spill path's own step
    assert list(tmp_path.iterdir()) == []  # its temporary folder is gone
    bars.clear()
    _same(dedup(df, DedupConfig(spill=False), ctx), spilled)
    assert "dedup: candidate pairs" not in bars
    assert spill.wanted(df, DedupConfig()) is (df.height >= spill.SPILL_ROWS)
    # a killed run's leftover is one of the runner's interrupted writes, swept like them
    leftover = tmp_path / ".dedup-spill.abc123.tmp"
    leftover.mkdir()
    assert stale_temporaries(tmp_path) == [leftover.name]


def test_spilled_empty_and_blank_inputs() -> None:
    empty = pl.DataFrame({"id": [], "text": []}, schema={"id": pl.String, "text": pl.String})
    _same(*_both(empty))
    blank = pl.DataFrame({"id": ["1", "2", "3", "4"], "text": ["", None, "   ", "real text here"]})
    _same(*_both(blank))


def test_band_pairs_in_pieces_are_candidate_pairs() -> None:
    """Huge buckets (template copies) are paired in slices; the pairs are ``minhash.candidate_pairs``' ones."""
    rng = np.random.default_rng(0)
    keys = np.concatenate([np.zeros(300, np.uint64), np.ones(40, np.uint64), rng.integers(2, 60, 500).astype(np.uint64)])
    keys = keys[rng.permutation(keys.size)]
    ranks = np.sort(rng.choice(5000, keys.size, replace=False))
    expected = ranks[mh.candidate_pairs(keys[:, None])]
    for batch in (7, 100, 1 << 20):
        got = np.concatenate([np.stack(p, axis=1) for p in spill_keys._band_pairs(keys, ranks, batch)])
        assert np.array_equal(np.unique(got, axis=0), expected)


def test_short_corpus_in_chunks_and_its_truth(tmp_path: Path) -> None:
    spec = ShortSpec(chunk=700, blocks=20)  # each block in enough messages to be found at this size
    df, truth = generate_short(3000, seed=8, spec=spec)
    write_short(tmp_path / "docs.parquet", tmp_path / "truth.parquet", 3000, seed=8, spec=spec)
    assert_frame_equal(pl.read_parquet(tmp_path / "docs.parquet"), df)
    assert_frame_equal(pl.read_parquet(tmp_path / "truth.parquet"), truth)
    assert pq_row_groups(tmp_path / "docs.parquet") > 3
    size = df["text"].str.len_bytes()
    assert df.height == 3000 and df["id"].n_unique() == 3000
    assert 150 < size.mean() < 230 and (size.is_between(60, 400)).mean() > 0.98  # type: ignore[operator]
    shares = truth["variant"].value_counts(normalize=True)
    assert 0.15 < shares.filter(pl.col("variant") != "original")["proportion"].sum() < 0.35
    res = dedup(df, DedupConfig(), StageContext(kind="text"))
    s = score(res.findings, truth, res.kept["id"])
    assert s["precision"] > 0.99 and s["recall"] > 0.95, s
    plain = dedup(df, DedupConfig.model_validate({"boilerplate": {"enabled": False}}), StageContext(kind="text"))
    assert score(plain.findings, truth, plain.kept["id"])["precision"] < 0.97  # the shared blocks are hard negatives


def pq_row_groups(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).num_row_groups


def test_claims_are_each_keys_first_row_in_order() -> None:
    """The compact claim set against a Python set, through many growths, with the empty text's key 0."""
    rng = np.random.default_rng(1)
    claims, seen = spill_keys._Claims(), set()
    for _ in range(60):
        keys = np.zeros((3000, 2), np.uint64)
        keys[:, 0] = rng.integers(0, 40_000, 3000).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)  # 0 among them
        expected = []
        for i, k in enumerate(keys[:, 0].tolist()):
            if k not in seen:
                seen.add(k)
                expected.append(i)
        assert claims.claim(keys).tolist() == expected
    assert claims.size + claims.zero == len(seen)


def test_spilled_result_does_not_depend_on_threads(short: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    """Boilerplate phrases are counted in rank order here: several hashing threads give one thread's result."""
    one, _ = _both(short[0])
    threads = spill.dedup(short[0], DedupConfig(workers=3), StageContext(kind="text"), options=TINY)
    _same(one, threads)
