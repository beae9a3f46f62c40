"""The dedup stage: exact and near duplicates, no chaining, keep policies, incremental runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from datasketch import LeanMinHash, MinHash, MinHashLSH
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from curation.core.config import parse_config
from curation.core.errors import ConfigError
from curation.core.stage import StageContext, StageResult
from curation.stages.dedup import minhash as mh
from curation.stages.dedup.stage import DedupConfig, MinHashConfig, dedup, star_clusters

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "seven", "bold", "wizards", "mix", "potions"]


def _text(seed: int, n: int = 60) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(WORDS + [f"w{seed}_{i}" for i in range(40)], size=n))


def _run(df: pl.DataFrame, kind: Any = "text", **options: Any) -> StageResult:
    return dedup(df, DedupConfig.model_validate(options), StageContext(kind=kind))


def _edit(text: str, every: int) -> str:
    words = text.split(" ")
    return " ".join("CHANGED" if i % every == 0 else w for i, w in enumerate(words))


# ---------------------------------------------------------------------------- vectorised MinHash
TEXTS = [
    "hello world this is a test",
    "",
    "a",
    "héllo wörld ☃ emoji 😀 x ß",
    "supercalifragilisticexpialidocious words longer than eight bytes",
    "one two",
]


@pytest.mark.parametrize(("shingle", "n"), [("word", 1), ("word", 2), ("word", 5), ("char", 1), ("char", 5)])
def test_signatures_equal_datasketch_minhash(shingle: Any, n: int) -> None:
    tok = mh.tokenize(pl.Series(TEXTS))
    hashes, offsets = mh.shingle_hashes(tok, shingle, n)
    sigs = mh.signatures(hashes, offsets, mh.permutations(64, 7))
    for i, text in enumerate(TEXTS):
        m = MinHash(num_perm=64, seed=7, hashfunc=mh.datasketch_hashfunc(shingle))
        m.update_batch(mh.reference_shingles(mh.normalize(text), shingle, n))
        np.testing.assert_array_equal(sigs[i], m.hashvalues)
        expected = sorted({mh.shingle_hash64(s, shingle) for s in mh.reference_shingles(mh.normalize(text), shingle, n)})
        assert sorted(set(hashes[offsets[i] : offsets[i + 1]].tolist())) == expected


def test_permutations_are_datasketchs() -> None:
    a, b = mh.permutations(32, 3)
    ref = MinHash(num_perm=32, seed=3).permutations
    np.testing.assert_array_equal(a, ref[0])
    np.testing.assert_array_equal(b, ref[1])


def test_signatures_work_as_lean_minhash_in_minhashlsh() -> None:
    docs = [_text(1), _edit(_text(1), 15), _text(2), _edit(_text(2), 30), _edit(_text(2), 3), _text(3), ""]
    tok = mh.tokenize(pl.Series(docs))
    sigs = mh.signatures(*mh.shingle_hashes(tok, "word", 2), mh.permutations(128, 1))
    lsh = MinHashLSH(threshold=0.6, num_perm=128)
    for i, row in enumerate(sigs[:-1]):
        lsh.insert(i, LeanMinHash(seed=1, hashvalues=row, scheme="affine32"))
    query = MinHash(num_perm=128, seed=1, hashfunc=mh.datasketch_hashfunc("word"))
    query.update_batch(mh.reference_shingles(mh.normalize(docs[1]), "word", 2))
    assert query.jaccard(LeanMinHash(seed=1, hashvalues=sigs[0], scheme="affine32")) > 0.6
    # our LSH buckets give exactly MinHashLSH's candidates for the same bands and rows
    expected = {
        (i, j) for i in range(len(docs) - 1) for j in lsh.query(LeanMinHash(seed=1, hashvalues=sigs[i], scheme="affine32")) if i < j
    }
    pairs = mh.candidate_pairs(mh.band_keys(sigs[:-1], lsh.b, lsh.r))
    assert {tuple(p) for p in pairs.tolist()} == expected
    assert (0, 1) in expected and (2, 3) in expected and (2, 4) not in expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("aAbB ßİ\t\n,.!-é😀\u00a0\u2028x"), max_size=30), min_size=1, max_size=6), st.booleans())
def test_bulk_normalisation_matches_reference(texts: list[str], strip: bool) -> None:
    tok = mh.tokenize(pl.Series(texts), strip_punctuation=strip)
    for shingle in ("word", "char"):
        hashes, offsets = mh.shingle_hashes(tok, shingle, 2)  # type: ignore[arg-type]
        for i, text in enumerate(texts):
            ref = {mh.shingle_hash64(s, shingle) for s in mh.reference_shingles(mh.normalize(text, strip_punctuation=strip), shingle, 2)}  # type: ignore[arg-type]
            assert set(hashes[offsets[i] : offsets[i + 1]].tolist()) == ref
    keys = mh.exact_keys(tok)
    norm = [mh.normalize(t, strip_punctuation=strip) for t in texts]
    for i in range(len(texts)):
        for j in range(len(texts)):
            assert (keys[i] == keys[j]).all() == (norm[i] == norm[j])


def test_jaccard_is_exact() -> None:
    a, b = np.array([1, 3, 5, 7], np.uint64), np.array([3, 4, 5], np.uint64)
    assert mh.jaccard(a, b) == 2 / 5
    assert mh.jaccard(a[:0], b[:0]) == 1.0


# ---------------------------------------------------------------------------- exact and near
def test_exact_duplicates_after_case_space_and_line_break_changes() -> None:
    base = "Hello there,\nplease reset my password.  Thanks!"
    df = pl.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "text": [
                base,
                "HELLO THERE, please reset my password. Thanks!",
                "hello there,\r\n\r\nplease   reset my password. thanks! ",
                "Something else entirely",
            ],
        }
    )
    res = _run(df)
    assert res.kept["id"].to_list() == ["a", "d"]
    assert_frame_equal(res.dropped, df.filter(pl.col("id").is_in(["b", "c"])).with_columns(reason=pl.lit("exact_duplicate")))
    expected = pl.DataFrame(
        {
            "id": ["b", "c"],
            "kept_id": ["a", "a"],
            "cluster_id": [0, 0],
            "similarity": [1.0, 1.0],
            "reason": ["exact_duplicate"] * 2,
            "kept_from": ["input"] * 2,
            "boilerplate_discounted": [False] * 2,
        }
    )
    assert_frame_equal(res.findings, expected)
    assert res.stats["cluster_sizes"] == {"3": 1}


def test_strip_punctuation_makes_punctuation_variants_exact() -> None:
    df = pl.DataFrame({"id": ["a", "b"], "text": ["Call me, maybe?", "call me maybe"]})
    assert _run(df, near=False).dropped.height == 0
    assert _run(df, near=False, strip_punctuation=True).dropped["id"].to_list() == ["b"]


def test_near_duplicates_are_verified_and_explained() -> None:
    a = _text(10, 120)
    df = pl.DataFrame({"id": ["a", "b", "c"], "text": [a, _edit(a, 25), _text(11, 120)]})
    res = _run(df)
    assert res.kept["id"].to_list() == ["a", "c"]
    row = res.findings.row(0, named=True)
    assert (row["id"], row["kept_id"], row["reason"]) == ("b", "a", "near_duplicate")
    words = lambda t: mh.reference_shingles(mh.normalize(t), "word", 2)  # noqa: E731
    sa, sb = set(words(a)), set(words(df["text"][1]))
    assert row["similarity"] == pytest.approx(len(sa & sb) / len(sa | sb))
    assert res.stats["minhash"]["bands"] == 18 and res.stats["minhash"]["rows"] == 7


def test_no_chaining_through_a_bridging_document() -> None:
    # x -> y -> z: each step replaces 40 of 100 distinct words, so x~y and y~z (J = 0.43) but not x~z (J = 0.11).
    x = [f"t{i}" for i in range(100)]
    y = [f"y{i}" if i < 40 else w for i, w in enumerate(x)]
    z = [f"z{i}" if 40 <= i < 80 else w for i, w in enumerate(y)]
    df = pl.DataFrame({"id": ["x", "y", "z"], "text": [" ".join(x), " ".join(y), " ".join(z)]})
    res = _run(df, minhash={"threshold": 0.35, "ngram": 1})
    assert res.findings.select("id", "kept_id").rows() == [("y", "x")]  # z is similar only to the removed y: it stays
    assert res.findings["similarity"][0] == pytest.approx(60 / 140)
    assert res.kept["id"].to_list() == ["x", "z"]


def test_star_clusters_keep_order_and_fixed_rows() -> None:
    # edges 0-1, 1-2, 2-3 verified: 0 keeps, removes 1; 2 keeps, removes 3
    keeper, sim = star_clusters(4, np.array([0, 1, 2]), np.array([1, 2, 3]), np.array([0.9, 0.8, 0.7]), np.zeros(4, bool))
    assert keeper.tolist() == [-1, 0, -1, 2]
    assert sim.tolist() == [1.0, 0.9, 1.0, 0.7]
    # a fixed row (earlier run) is never removed and keeps whatever it is similar to
    keeper, _ = star_clusters(3, np.array([0, 0]), np.array([1, 2]), np.array([0.9, 0.9]), np.array([True, True, False]))
    assert keeper.tolist() == [-1, -1, 0]


def test_exact_copies_of_a_near_removed_row_point_to_the_kept_row() -> None:
    a = _text(30, 100)
    b = _edit(a, 20)
    df = pl.DataFrame({"id": ["a", "b", "b2"], "text": [a, b, b.upper()]})
    res = _run(df)
    rows = {r["id"]: r for r in res.findings.iter_rows(named=True)}
    assert rows["b"]["kept_id"] == rows["b2"]["kept_id"] == "a"
    assert rows["b2"]["reason"] == "near_duplicate" and rows["b2"]["similarity"] == rows["b"]["similarity"] < 1
    assert res.stats["cluster_sizes"] == {"3": 1}


def test_keep_longest_and_best() -> None:
    df = pl.DataFrame(
        {
            "id": ["short", "long"],
            "prompt": ["Reset my password", "reset my password"],
            "completion": ["", "Go to settings and click reset."],
        }
    )
    fields = {"fields": ["prompt"]}
    assert _run(df, "instruction", **fields).kept["id"].to_list() == ["short"]
    assert _run(df, "instruction", keep="best", **fields).kept["id"].to_list() == ["long"]
    text = pl.DataFrame({"id": ["a", "b"], "text": ["Same words here, short", "same words here short!!"]})
    assert _run(text, keep="longest", strip_punctuation=True).kept["id"].to_list() == ["b"]


def test_keep_best_prefers_fewer_pii_findings() -> None:
    df = pl.DataFrame({"id": ["a", "b"], "text": ["My number is <PHONE>", "my number is <phone>"]})
    pii = StageResult(kept=df, dropped=df.clear(), findings=pl.DataFrame({"id": ["a", "a"], "entity": ["PHONE", "PERSON"]}))
    ctx = StageContext(kind="text", artifacts={"pii": pii})
    res = dedup(df, DedupConfig(keep="best"), ctx)
    assert res.kept["id"].to_list() == ["b"]


def test_messages_and_multi_field_keys() -> None:
    msg = lambda u, a: [{"role": "user", "content": u}, {"role": "assistant", "content": a}]  # noqa: E731
    df = pl.DataFrame({"id": ["1", "2", "3"], "messages": [msg("Hi", "Hello!"), msg("hi", "hello!"), msg("Hi", "Bye")]})
    assert _run(df, "instruction").dropped["id"].to_list() == ["2"]
    pc = pl.DataFrame({"id": ["1", "2"], "prompt": ["a b", "a"], "completion": ["c", "b c"]})
    assert _run(pc, "instruction", near=False).dropped.height == 0  # words moved between fields differ


def test_several_fields_must_each_be_near_duplicates() -> None:
    prompt, answer = _text(50, 60), _text(51, 60)
    df = pl.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "prompt": [prompt, prompt, prompt, _text(52, 60)],
            "completion": [answer, _text(53, 60), _edit(answer, 25), answer],
            "system": [None, None, "You are terse.", None],
        }
    )
    res = _run(df, "instruction")
    assert res.findings.select("id", "kept_id").rows() == [("c", "a")]  # b: another answer; d: another question
    words = lambda t: set(mh.reference_shingles(mh.normalize(t), "word", 2))  # noqa: E731
    wa, wc = words(answer), words(df["completion"][2])
    assert res.findings["similarity"][0] == pytest.approx(len(wa & wc) / len(wa | wc))  # the completion, the lesser part
    assert res.stats["fields"] == ["prompt", "completion"]  # the system prompt is not part of the example by default


def test_ratings_keep_each_annotators_judgment() -> None:
    df = pl.DataFrame(
        {
            "id": ["1", "2", "3", "4"],
            "prompt": ["Where is my order?"] * 4,
            "response": ["It ships tomorrow."] * 4,
            "score": [4.0, 3.0, 4.0, 4.0],
            "annotator": ["ann_a", "ann_b", "ann_c", "ann_a"],
        }
    )
    res = _run(df, "ratings")
    assert res.findings.select("id", "kept_id", "reason").rows() == [("4", "1", "exact_duplicate")]  # a double submission


def test_conversations_compare_prompt_and_answer_turns() -> None:
    msg = lambda u, a: [{"role": "user", "content": u}, {"role": "assistant", "content": a}]  # noqa: E731
    question, answer = _text(60, 50), _text(61, 50)
    df = pl.DataFrame(
        {"id": ["1", "2", "3"], "messages": [msg(question, answer), msg(question, _text(62, 50)), msg(question, _edit(answer, 25))]}
    )
    assert _run(df, "instruction").findings.select("id", "kept_id").rows() == [("3", "1")]


def test_empty_and_null_texts() -> None:
    df = pl.DataFrame({"id": ["1", "2", "3", "4"], "text": ["", None, "   ", "real text here"]})
    res = _run(df)
    assert res.kept["id"].to_list() == ["1", "4"]
    assert res.findings["kept_id"].to_list() == ["1", "1"]


def test_books_balance_and_rerun_is_identical() -> None:
    df = pl.DataFrame({"id": [str(i) for i in range(8)], "text": [_text(i % 3, 50) for i in range(8)], "source": ["s"] * 8})
    first, second = _run(df, workers=1), _run(df, workers=3)
    assert first.kept.height + first.dropped.height == df.height
    assert sorted(first.findings["id"].to_list()) == sorted(first.dropped["id"].to_list())
    assert first.kept.columns == df.columns
    for a, b in [(first.kept, second.kept), (first.dropped, second.dropped), (first.findings, second.findings)]:
        assert_frame_equal(a, b)
    assert first.stats == second.stats


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["same", "upper", "edit", "fresh"])), min_size=1, max_size=12),
    st.sampled_from(["first", "longest", "best"]),
)
def test_every_removal_is_explained_by_a_kept_row(rows: list[tuple[int, str]], keep: str) -> None:
    make = {
        "same": lambda b, i: b,
        "upper": lambda b, i: b.upper(),
        "edit": lambda b, i: _edit(b, 7 + i),
        "fresh": lambda b, i: _text(1000 + i, 40),
    }
    texts = [make[kind](_text(base, 40), i) for i, (base, kind) in enumerate(rows)]
    df = pl.DataFrame({"id": [f"r{i}" for i in range(len(rows))], "text": texts})
    res = _run(df, keep=keep)
    assert sorted(res.kept["id"].to_list() + res.dropped["id"].to_list()) == sorted(df["id"].to_list())
    assert res.findings["id"].to_list() == res.dropped["id"].to_list()
    assert res.findings["kept_id"].is_in(res.kept["id"].implode()).all()
    assert (res.findings["similarity"] >= 0.6).all()
    assert res.findings.group_by("cluster_id").agg(pl.col("kept_id").n_unique())["kept_id"].max() in (None, 1)
    again = _run(df, keep=keep)
    assert_frame_equal(res.findings, again.findings)
    assert_frame_equal(res.kept, again.kept)


def test_chunking_threads_and_shingle_cache_do_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    from curation.stages.dedup import stage

    texts = [_text(i % 7, 40 + i % 5) for i in range(30)] + [_edit(_text(i, 45), 9) for i in range(7)] + ["x" * 50_000]
    df = pl.DataFrame({"id": [f"r{i}" for i in range(len(texts))], "text": texts})
    whole = _run(df, workers=1)
    monkeypatch.setattr(stage, "_CHUNK", 4)
    monkeypatch.setattr(stage, "_CHUNK_BYTES", 1000)
    monkeypatch.setattr(stage, "_SHINGLE_CACHE", 3000)  # the first chunks cached, the rest hashed again
    bounds = stage.chunk_starts(df["text"])
    assert bounds[0] == 0 and bounds[-1] == df.height and (np.diff(bounds) >= 1).all() and (np.diff(bounds) <= 4).all()
    assert bounds[-2] == df.height - 1  # the 50 KB text is a chunk of its own
    chunked = _run(df, workers=3)
    assert_frame_equal(chunked.findings, whole.findings)
    assert_frame_equal(chunked.kept, whole.kept)
    assert whole.findings.height > 20


# ---------------------------------------------------------------------------- benchmark corpus
@pytest.mark.slow
def test_generated_benchmark_precision_and_recall() -> None:
    from tests.data.dedup_data import generate, score

    df, truth = generate(3000, seed=7)
    res = _run(df)
    s = score(res.findings, truth, res.kept["id"])
    assert s["precision"] >= 0.99 and s["recall"] >= 0.95, s
    assert s["groups_lost"] == 0
    sizes = res.findings.group_by("cluster_id").agg(pl.col("kept_id").n_unique())
    assert (sizes["kept_id"] == 1).all()  # one keeper per cluster, and it is kept
    assert res.findings["kept_id"].is_in(res.kept["id"].implode()).all()


# ---------------------------------------------------------------------------- config and pipeline
@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"minhash": {"threshold": 0}}, "`stages[0].dedup.minhash.threshold`: input should be greater than 0"),
        ({"minhash": {"threshold": 1.5}}, "`stages[0].dedup.minhash.threshold`: input should be less than or equal to 1"),
        ({"minhash": {"ngram": 0}}, "`stages[0].dedup.minhash.ngram`: input should be greater than or equal to 1"),
        ({"fields": ["body"]}, "`stages[0].dedup.fields`: value error, unknown field `body`"),
        ({"minhash": {"bands": 4}}, "`bands` and `rows` go together"),
        ({"keep": "newest"}, "`stages[0].dedup.keep`: input should be 'first', 'longest' or 'best'"),
    ],
)
def test_config_errors_are_one_line(options: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"input": {"path": "x.jsonl", "kind": "text"}, "stages": [{"dedup": options}]})
    assert len(err.value.problems) == 1 and "\n" not in err.value.problems[0]
    assert needle in err.value.problems[0]


def test_field_missing_from_the_data_is_a_config_error() -> None:
    df = pl.DataFrame({"id": ["1"], "text": ["x"]})
    with pytest.raises(ConfigError, match="`dedup.fields`: `prompt` is not a column of this text"):
        _run(df, fields=["prompt"])


def test_lsh_params_follow_datasketch() -> None:
    assert MinHashConfig(threshold=0.8).lsh_params() == (
        MinHashLSH(threshold=0.8, num_perm=128).b,
        MinHashLSH(threshold=0.8, num_perm=128).r,
    )
    assert MinHashConfig(bands=10, rows=5).lsh_params() == (10, 5)


def test_pipeline_findings_are_reachable_from_the_manifest(make_run: Any) -> None:
    a = _text(40, 80)
    rows = [{"id": "1", "text": a}, {"id": "2", "text": a.upper()}, {"id": "3", "text": _edit(a, 20)}, {"id": "4", "text": _text(41, 80)}]
    run = make_run(rows, kind="text", stages=["dedup"])
    manifest = json.loads((run.run_dir / "manifest.json").read_text())
    entry = next(s for s in manifest["stages"] if s["name"] == "dedup")
    stage_dir = run.run_dir / entry["dir"]
    findings, dropped = pl.read_parquet(stage_dir / "findings.parquet"), pl.read_parquet(stage_dir / "dropped.parquet")
    assert findings["id"].to_list() == dropped["id"].to_list() == ["2", "3"]
    assert entry["dropped_by_reason"] == {"exact_duplicate": 1, "near_duplicate": 1}
    stats = json.loads((stage_dir / "stats.json").read_text())
    assert stats["metrics"]["cluster_sizes"] == {"3": 1}
    assert "text" not in findings.columns and a not in json.dumps(stats)
    again = make_run(rows, kind="text", stages=["dedup"], name="again")  # a fresh run directory: computed again
    assert again.dataset_fingerprint == run.dataset_fingerprint
    assert_frame_equal(pl.read_parquet(again.run_dir / entry["dir"] / "findings.parquet"), findings)


def test_against_an_earlier_run_removes_exactly_the_copies(make_run: Any, tmp_path: Path) -> None:
    first_rows = [{"id": f"a{i}", "text": _text(100 + i, 70)} for i in range(5)]
    first = make_run(first_rows, kind="text", stages=["dedup"], name="day1")
    batch = [
        {"id": "b0", "text": first_rows[1]["text"]},  # exact copy
        {"id": "b1", "text": _edit(first_rows[3]["text"], 25)},  # near copy
        {"id": "b2", "text": _text(200, 70)},  # new
        {"id": "b3", "text": _text(201, 70)},  # new
    ]
    second = make_run(batch, kind="text", stages=[{"dedup": {"against": first.run_id}}], name="day2")
    dedup_dir = next(p for p in (second.run_dir / "stages").iterdir() if p.name.endswith("dedup"))
    findings = pl.read_parquet(dedup_dir / "findings.parquet")
    assert findings.select("id", "kept_id", "reason", "kept_from").rows() == [
        ("b0", "a1", "exact_duplicate", "day1"),
        ("b1", "a3", "near_duplicate", "day1"),
    ]
    assert pl.read_parquet(second.run_dir / "dataset" / "data.parquet")["id"].to_list() == ["b2", "b3"]
    metrics = json.loads((dedup_dir / "stats.json").read_text())["metrics"]["against"]
    assert (metrics["runs"], metrics["rows"], metrics["removed_as_copies"]) == ("day1", 5, 2)
    # a third batch against both earlier runs; a path relative to the config's folder works too
    third = [
        {"id": "c0", "text": batch[2]["text"].upper()},
        {"id": "c1", "text": first_rows[0]["text"]},
        {"id": "c2", "text": _text(300, 70)},
    ]
    ctx = StageContext(kind="text", config_dir=tmp_path, runs_root=first.run_dir.parent)
    res = dedup(pl.DataFrame(third), DedupConfig(against=["runs/day1", "day2"]), ctx)
    assert res.findings.select("id", "kept_id", "kept_from").rows() == [("c0", "b2", "day2"), ("c1", "a0", "day1")]
    with pytest.raises(ConfigError, match="`dedup.against`: no tuneprep run"):
        dedup(pl.DataFrame(batch), DedupConfig(against="nope"), StageContext(kind="text", config_dir=tmp_path, runs_root=tmp_path))
