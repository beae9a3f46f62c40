"""Boilerplate-aware near duplicates: different messages under one footer stay, edited copies go."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from curation.core.config import parse_config
from curation.core.errors import ConfigError
from curation.core.stage import StageContext, StageResult
from curation.stages.dedup import boilerplate as bp
from curation.stages.dedup.stage import DedupConfig, dedup

FOOTER = (
    "This message and any attachments are confidential and intended solely for the addressee. If you received it in error, "
    "please notify the sender and delete it. Any unauthorised use or disclosure is prohibited."
)
BANNER = "Thank you for contacting our support team. Your request has been logged and an agent will reply within two business days."
VOCAB = [
    f"{a}{b}" for a in ("bro", "kel", "mar", "tis", "dun", "fap", "gor", "hil") for b in ("ak", "en", "ot", "ix", "um", "ed", "ar", "yl")
]


def _body(seed: int, n: int = 8) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(VOCAB, size=n, replace=False)).capitalize() + "."


def _with(block: str, body: str, *, top: bool = False) -> str:
    return f"{block}\n\n{body}" if top else f"{body}\n\n{block}"


def _replace_word(text: str, index: int, word: str = "zzyzx") -> str:
    words = text.split(" ")
    words[index] = word
    return " ".join(words)


def _run(df: pl.DataFrame, **options: Any) -> StageResult:
    return dedup(df, DedupConfig.model_validate(options), StageContext(kind="text"))


def _corpus() -> pl.DataFrame:
    """24 different short messages under one footer (or a banner on top), then copies of some."""
    texts = [_with(FOOTER, _body(i)) for i in range(16)] + [_with(BANNER, _body(100 + i), top=True) for i in range(8)]
    copies = {
        "edit_body": _replace_word(texts[0], 3),  # one word of the message edited
        "edit_footer": _replace_word(texts[1], -6),  # one word of the footer edited
        "exact": texts[2],
        "edit_banner_doc": _replace_word(texts[16], -2),  # under the banner, a word of the message edited
    }
    ids = [f"m{i:02d}" for i in range(len(texts))] + list(copies)
    return pl.DataFrame({"id": ids, "text": texts + list(copies.values())})


def test_different_messages_under_the_same_boilerplate_are_kept() -> None:
    df = _corpus()
    old = _run(df, boilerplate={"enabled": False})
    assert old.findings.filter(pl.col("id").str.starts_with("m")).height > 5  # plain Jaccard calls them duplicates
    res = _run(df)
    assert not res.findings["id"].str.starts_with("m").any(), res.findings
    assert res.stats["boilerplate"]["pairs_kept_apart"] > 0


def test_light_edits_and_exact_copies_under_boilerplate_are_still_removed() -> None:
    res = _run(_corpus())
    rows = {r["id"]: r for r in res.findings.iter_rows(named=True)}
    assert set(rows) == {"edit_body", "edit_footer", "exact", "edit_banner_doc"}
    assert (rows["edit_body"]["kept_id"], rows["edit_footer"]["kept_id"], rows["exact"]["kept_id"]) == ("m00", "m01", "m02")
    assert rows["edit_banner_doc"]["kept_id"] == "m16"
    assert rows["exact"]["reason"] == "exact_duplicate" and not rows["exact"]["boilerplate_discounted"]
    # the findings say that the similarity left the footer out
    assert rows["edit_body"]["reason"] == "near_duplicate" and rows["edit_body"]["boilerplate_discounted"]
    assert rows["edit_footer"]["boilerplate_discounted"] and rows["edit_footer"]["similarity"] > 0.8  # the edit is inside the block
    assert res.stats["boilerplate"]["removed_with_discount"] == 3


def test_a_text_that_is_all_boilerplate() -> None:
    df = _corpus()
    extra = pl.DataFrame({"id": ["only", "only_edit"], "text": [FOOTER, _replace_word(FOOTER, 5)]})
    res = _run(pl.concat([df, extra]))
    kept_by = dict(res.findings.select("id", "kept_id").rows())
    assert kept_by.get("only_edit") == "only"  # compared as plain Jaccard: the edited auto-reply goes
    assert not any(k.startswith("m") for k in kept_by)  # the footer alone removes no message written above it


def test_many_edited_copies_of_one_template_are_removed() -> None:
    template = " ".join(f"{VOCAB[i]}" for i in range(40))
    copies = [_replace_word(template, 3 + 3 * i, f"edit{i}") for i in range(8)]  # its phrases become common
    reply = _with(template, _body(7))  # a distinct message quoting it stays
    df = pl.DataFrame({"id": ["t", *[f"c{i}" for i in range(8)], "reply"], "text": [template, *copies, reply]})
    res = _run(df)
    assert res.kept["id"].to_list() == ["t", "reply"]
    assert set(res.findings["kept_id"]) == {"t"}


def test_exact_copies_do_not_make_boilerplate() -> None:
    message = " ".join(VOCAB[:30])
    df = pl.DataFrame({"id": [f"x{i}" for i in range(10)] + ["y"], "text": [message] * 10 + [_with(message, _body(3))]})
    res = _run(df)
    assert res.stats["boilerplate"]["distinct_texts"] == 2
    assert res.stats["boilerplate"]["blocks"] == [] and res.stats["boilerplate"]["rows_with_blocks"] == 0


def test_stats_list_the_common_blocks_masked() -> None:
    res = _run(_corpus())
    blocks = res.stats["boilerplate"]["blocks"]
    assert [b["rows"] for b in blocks] == [16, 8]  # the footer, then the banner
    assert blocks[0]["words"] == len(FOOTER.split()) and blocks[0]["pct_of_rows_examined"] == pytest.approx(100 * 16 / 24, abs=0.01)
    assert blocks[0]["example"].startswith("T*** message and any attachments are confidential")  # capitalised words masked
    assert res.stats["boilerplate"]["rows_with_blocks"] == 24 and res.stats["boilerplate"]["rows_examined"] == 24
    json.dumps(res.stats)


def test_strip_boilerplate_removes_the_blocks_from_the_kept_text() -> None:
    df = pl.concat([_corpus(), pl.DataFrame({"id": ["only"], "text": [FOOTER]})])
    res = _run(df, strip_boilerplate=True)
    kept = dict(res.kept.select("id", "text").rows())
    assert kept["m03"] == _body(3) and kept["m17"] == _body(101)
    assert kept["only"] == FOOTER  # nothing would be left: the row stays as it was
    assert res.stats["boilerplate"]["stripped_rows"] == 24 and res.stats["boilerplate"]["strip_skipped_rows"] == 1
    plain = _run(df)
    assert_frame_equal(res.findings, plain.findings)
    assert res.kept.height + res.dropped.height == df.height
    assert res.dropped["text"].to_list() == plain.dropped["text"].to_list()  # dropped rows keep their text


def test_books_balance_and_rerun_is_identical() -> None:
    df = _corpus()
    first, second = _run(df, workers=1), _run(df, workers=3)
    assert sorted(first.kept["id"].to_list() + first.dropped["id"].to_list()) == sorted(df["id"].to_list())
    assert first.findings["id"].to_list() == first.dropped["id"].to_list()
    for a, b in [(first.kept, second.kept), (first.dropped, second.dropped), (first.findings, second.findings)]:
        assert_frame_equal(a, b)
    assert first.stats == second.stats


def test_several_fields_compare_each_field_without_boilerplate() -> None:
    prompts = [_with(BANNER, _body(200 + i), top=True) for i in range(8)]
    answers = [_with(FOOTER, _body(300 + i)) for i in range(8)]
    df = pl.DataFrame(
        {"id": [f"r{i}" for i in range(9)], "prompt": [*prompts, prompts[0]], "completion": [*answers, _replace_word(answers[0], 2)]}
    )
    res = dedup(df, DedupConfig(), StageContext(kind="instruction"))
    assert res.findings.select("id", "kept_id").rows() == [("r8", "r0")]


def test_vectorised_similarities_equal_the_one_pair_reference() -> None:
    rng = np.random.default_rng(5)
    pool = rng.integers(0, 2**62, size=60).astype(np.uint64) * np.uint64(2)  # hashes: random 64-bit values, lowest bit 0
    full = [np.unique(rng.choice(pool, size=int(rng.integers(0, 40)))) for _ in range(12)]
    rare = [f[rng.random(f.size) < 0.5] if i % 3 else f for i, f in enumerate(full)]
    pairs = np.array([(i, j) for i in range(12) for j in range(i + 1, 12)])
    blocked = np.array([r.size < f.size for f, r in zip(full, rare, strict=True)])
    weighted, discounted, whole = bp.pair_similarities([bp.flagged(f, r) for f, r in zip(full, rare, strict=True)], blocked, pairs, 0.1)
    for k, (i, j) in enumerate(pairs.tolist()):
        assert (weighted[k], discounted[k], whole[k]) == pytest.approx(bp.compare((full[i], full[j]), (rare[i], rare[j]), 0.1))


def test_boilerplate_options_are_validated() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(
            {
                "input": {"path": "x.jsonl", "kind": "text"},
                "stages": [{"dedup": {"strip_boilerplate": True, "minhash": {"shingle": "char"}}}],
            }
        )
    assert "`strip_boilerplate` needs" in err.value.problems[0] and "\n" not in err.value.problems[0]
    with pytest.raises(ConfigError, match="weight"):
        parse_config({"input": {"path": "x.jsonl", "kind": "text"}, "stages": [{"dedup": {"boilerplate": {"weight": 2}}}]})
    pc = pl.DataFrame({"id": ["1"], "prompt": ["a"], "completion": ["b"]})
    with pytest.raises(ConfigError, match="`dedup.strip_boilerplate` needs one text field"):
        dedup(pc, DedupConfig(strip_boilerplate=True), StageContext(kind="instruction"))


def test_report_lists_the_blocks(make_run: Any) -> None:
    from curation.report import assemble, build_report

    rows = [{"id": r["id"], "text": r["text"]} for r in _corpus().iter_rows(named=True)]
    run = make_run(rows, kind="text", stages=["dedup"])
    section = next(s for s in assemble(run.run_dir)["sections"] if s["id"] == "dedup")
    blocks = section["boilerplate"]["blocks"]
    assert [b["rows"] for b in blocks] == [16, 8] and all(b["example"] for b in blocks)
    assert section["boilerplate"]["rule"]["pairs_kept_apart"] > 0
    assert "boilerplate" not in json.dumps(section["other_metrics"])
    build_report(run.run_dir)
    md, page = (run.run_dir / "report/report.md").read_text(), (run.run_dir / "report/report.html").read_text()
    assert "Example (masked)" in md and "Example (masked)" in page
    assert "This message and any attachments" not in md + page  # examples only masked


@pytest.mark.slow
def test_generated_boilerplate_corpus_precision_and_recall() -> None:
    from tests.data.dedup_data import generate_boilerplate, score

    df, truth = generate_boilerplate(3000, seed=7)
    res = _run(df)
    s = score(res.findings, truth, res.kept["id"])
    assert s["precision"] >= 0.99 and s["recall"] >= 0.95 and s["groups_lost"] == 0, s
    old = _run(df, boilerplate={"enabled": False})
    assert score(old.findings, truth, old.kept["id"])["groups_lost"] > 100  # what plain Jaccard does to this corpus


def test_a_corpus_without_common_phrases_compares_as_plain_jaccard() -> None:
    """No phrase reaches the frequency threshold: no block is looked for, and the result is the plain rule's."""
    texts = [_body(i, 12) for i in range(6)] + [_replace_word(_body(0, 12), 2), _body(1, 12)]
    df = pl.DataFrame({"id": [f"r{i}" for i in range(len(texts))], "text": texts})
    on, off = _run(df), _run(df, boilerplate={"enabled": False})
    assert on.findings.height == 2
    assert_frame_equal(on.findings.drop("boilerplate_discounted"), off.findings.drop("boilerplate_discounted"))
    assert not on.findings["boilerplate_discounted"].any()
    assert on.stats["boilerplate"]["rows_with_blocks"] == 0 and on.stats["boilerplate"]["blocks"] == []


def test_counters_are_8_bit_when_no_threshold_passes_255_and_saturate() -> None:
    small, large = bp.DocFrequency.for_bytes(10_000, 255), bp.DocFrequency.for_bytes(10_000, 256)
    assert small.table.dtype == np.uint8 and large.table.dtype == np.uint16
    for df, most in ((small, 255), (large, 65_535)):
        slots = np.array([3, 7])
        for _ in range(3):
            df.add(slots, np.array([200, 1], np.uint32), 200)
        assert df.table[slots].tolist() == [min(600, most), 3]
    boiler = bp.Boilerplate.for_corpus(bp.BoilerplateConfig(min_docs=300), 10_000, 50)
    assert boiler.df.table.dtype == np.uint16  # a threshold of 300 documents is still countable


def test_profiles_flag_the_boilerplate_shingles_of_each_text() -> None:
    from curation.stages.dedup import minhash as mh

    texts = _corpus()["text"]
    boiler = bp.Boilerplate.for_corpus(bp.BoilerplateConfig(), int(texts.str.len_bytes().sum() or 0), texts.len())
    hashes, offsets = mh.shingle_hashes(mh.tokenize(texts), "word", 2)
    phrases, _, phrase_offsets = boiler.phrases(hashes, offsets, boiler.counted)
    boiler.df.add(*boiler.df.chunk_counts(phrases, phrase_offsets, boiler.df.claim(mh.exact_keys(mh.tokenize(texts)))), texts.len())
    boiler.finish()
    blocks = boiler.blocks(hashes, offsets)[:3]
    profiles, blocked = boiler.profiles(hashes, offsets, blocks)
    for d in range(texts.len()):
        own = hashes[offsets[d] : offsets[d + 1]] & ~np.uint64(1)
        inside = np.zeros(own.size, bool)
        for b in np.flatnonzero(blocks[0] == d):
            inside[blocks[1][b] : blocks[2][b]] = True
        reference = bp.flagged(np.unique(own), np.unique(own[~inside]))
        assert np.array_equal(profiles[d], reference) and blocked[d] == bool((reference & np.uint64(1)).any())
    assert blocked[:24].all()  # every message sits under the footer or the banner
    some = np.array([1, 5, 17, 24])
    sub, sub_blocked = boiler.profiles_of(hashes, offsets, blocks, some)
    assert all(np.array_equal(a, profiles[d]) for a, d in zip(sub, some.tolist(), strict=True))
    assert sub_blocked.tolist() == blocked[some].tolist()
    none, none_blocked = boiler.profiles_of(hashes, offsets, blocks, some[:0])  # a batch with no candidate: no profile
    assert none == [] and none_blocked.size == 0


def test_a_texts_phrases_and_blocks_do_not_depend_on_its_neighbours_in_a_batch() -> None:
    """Winnowing is per text: the Spark engine (other batches) and any hashing chunks count and find the same."""
    from curation.stages.dedup import minhash as mh
    from tests.data.dedup_data import generate_boilerplate

    texts = pl.concat([generate_boilerplate(150, seed=8)[0]["text"], pl.Series(["", "one", "two words", "a b c d e"])])
    boiler = bp.Boilerplate.for_corpus(bp.BoilerplateConfig(), int(texts.str.len_bytes().sum() or 0), texts.len())
    hashes, offsets = mh.shingle_hashes(mh.tokenize(texts), "word", 2)
    phrases, starts, phrase_offsets = boiler.phrases(hashes, offsets, bp.WINDOW)
    boiler.df.add(*boiler.df.chunk_counts(phrases, phrase_offsets, boiler.df.claim(mh.exact_keys(mh.tokenize(texts)))), texts.len())
    boiler.finish()
    together = boiler.blocks(hashes, offsets)
    assert together[0].size > 50
    for d in range(texts.len()):
        alone_hashes, alone_offsets = mh.shingle_hashes(mh.tokenize(texts.slice(d, 1)), "word", 2)
        own, own_starts, _ = boiler.phrases(alone_hashes, alone_offsets, bp.WINDOW)
        lo, hi = phrase_offsets[d], phrase_offsets[d + 1]
        assert np.array_equal(own, phrases[lo:hi]) and np.array_equal(own_starts + offsets[d], starts[lo:hi])
        alone = boiler.blocks(alone_hashes, alone_offsets)
        mine = together[0] == d
        assert all(np.array_equal(a, b[mine]) for a, b in zip(alone[1:], together[1:], strict=True))
