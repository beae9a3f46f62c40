"""Millions of short messages with known duplicates, generated in chunks straight to Parquet.

For the scale benchmark (``tests/benchmarks/bench_scale.py``): 100-300 byte messages
(chat lines, support tickets, notifications), built with numpy and polars a chunk at a
time, so 20M documents never sit in the generator's memory. Per chunk of originals:

- a message is 12-45 words from a Zipf-distributed vocabulary (Faker's English word list
  as the frequent head, made-up words as the long tail);
- ``boilerplate`` of them are 4-20 words of their own under (a fifth of them: over) one of
  ``blocks`` shared blocks of 10-24 words (signatures, auto-reply notes, short
  disclaimers), after a line break: distinct messages that overlap a lot, the hard negatives;
- ``dup_groups`` of the originals get 1-3 copies: ``exact`` (byte copy), ``format`` (case,
  spacing or line breaks changed) or ``edit`` (3-8% of the words, at least one,
  substituted, deleted or inserted, the block's words included).

Rows are shuffled within a chunk, and half of a chunk's copies are held back to the next
chunk, so copies are not always next to their original. The truth (``id, group,
variant``) says which rows are duplicates of each other (same ``group``), like
``dedup_data.generate``'s; ``dedup_data.score`` scores findings against it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

_SYLLABLES = np.array(["ba", "ko", "ri", "tel", "mun", "sa", "ve", "dor", "li", "quen", "pa", "tro", "mi", "gan", "zu", "fel", "ra", "no"])
_VARIANTS = ("exact", "format", "edit")


@dataclass(frozen=True)
class ShortSpec:
    """Knobs of the short-message corpus; the defaults are the benchmark's."""

    words: tuple[int, int] = (12, 46)  # words of a plain message (a half-open range)
    boilerplate: float = 0.25  # share of originals under a shared block
    own_words: tuple[int, int] = (4, 21)  # their own words
    block_words: tuple[int, int] = (10, 25)
    blocks: int = 200  # distinct shared blocks
    top: float = 0.2  # share of blocks above the message
    dup_groups: float = 0.25  # share of originals that get copies
    max_copies: int = 3
    variants: tuple[float, float, float] = (0.25, 0.25, 0.5)  # exact, format, edit
    edit_rate: tuple[float, float] = (0.03, 0.08)
    chunk: int = 200_000  # originals generated at once


class _Words:
    """The vocabulary (its last entry is a line break, never sampled) and a Zipf sampler."""

    def __init__(self, rng: np.random.Generator, size: int = 30_000) -> None:
        from faker.providers.lorem.en_US import Provider

        head = list(dict.fromkeys(Provider.word_list))
        n_tail = size - len(head)
        sylls = _SYLLABLES[rng.integers(0, len(_SYLLABLES), size=(n_tail, 4))]
        lens = rng.integers(2, 5, size=n_tail)
        tail = ["".join(row[:k]) for row, k in zip(sylls.tolist(), lens.tolist(), strict=True)]
        self.words = pl.Series([*head, *tail, "\n"], dtype=pl.String)
        self.newline = size
        p = 1.0 / np.arange(1, size + 1) ** 1.05
        self.cdf = np.cumsum(p / p.sum())
        self.rng = rng

    def sample(self, n: int) -> np.ndarray:
        return np.minimum(np.searchsorted(self.cdf, self.rng.random(n)), len(self.cdf) - 1).astype(np.int32)

    def join(self, ids: np.ndarray, offsets: np.ndarray) -> pl.Series:
        """Each document's words (``ids[offsets[d]:offsets[d+1]]``) joined by spaces."""
        lists = pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), self.words.gather(ids).to_arrow())
        return pl.Series(lists).list.join(" ")


def _gather(ids: np.ndarray, offsets: np.ndarray, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The word ids of documents ``docs`` of a CSR layout, as a new CSR layout."""
    lengths = np.diff(offsets)[docs]
    out_off = np.r_[0, np.cumsum(lengths)]
    at = np.repeat(offsets[docs] - out_off[:-1], lengths) + np.arange(out_off[-1])
    return ids[at], out_off


def _messages(words: _Words, blocks: tuple[np.ndarray, np.ndarray], n: int, spec: ShortSpec) -> tuple[np.ndarray, np.ndarray]:
    """``n`` original messages as word ids (CSR): own words, and for some a shared block above or below."""
    rng = words.rng
    boiler = rng.random(n) < spec.boilerplate
    own = np.where(boiler, rng.integers(*spec.own_words, size=n), rng.integers(*spec.words, size=n))
    own_off = np.r_[0, np.cumsum(own)]
    own_ids = words.sample(int(own_off[-1]))
    block_ids, block_off = blocks
    which = rng.integers(0, len(block_off) - 1, size=n)
    blk = np.where(boiler, np.diff(block_off)[which] + 1, 0)  # the block and a line break
    off = np.r_[0, np.cumsum(own + blk)]
    doc = np.repeat(np.arange(n), own + blk)
    pos = np.arange(off[-1]) - off[doc]
    top = (rng.random(n) < spec.top)[doc]
    in_block = np.where(top, pos < blk[doc], pos >= own[doc])
    block_pos = np.where(top, pos, pos - own[doc])  # the line break is position blk - 1 above, 0 below
    own_pos = np.where(top, pos - blk[doc], pos)
    is_break = in_block & (block_pos == np.where(top, blk[doc] - 1, 0))
    block_word = block_ids[np.minimum(block_off[which[doc]] + np.where(top, block_pos, block_pos - 1), len(block_ids) - 1)]
    out = np.where(in_block, np.where(is_break, words.newline, block_word), own_ids[np.minimum(own_off[doc] + own_pos, own_ids.size - 1)])
    return out.astype(np.int32), off


def _edit(words: _Words, ids: np.ndarray, offsets: np.ndarray, spec: ShortSpec) -> tuple[np.ndarray, np.ndarray]:
    """Copies of the documents with a few words substituted (half), deleted or inserted (a quarter each)."""
    rng, lengths = words.rng, np.diff(offsets)
    n_edits = np.maximum(1, np.round(rng.uniform(*spec.edit_rate, size=lengths.size) * lengths)).astype(np.int64)
    doc = np.repeat(np.arange(lengths.size), n_edits)
    at = offsets[doc] + (rng.random(doc.size) * lengths[doc]).astype(np.int64)  # a word hit twice: one edit fewer
    op = rng.random(doc.size)
    counts = np.ones(ids.size, np.int64)
    counts[at[(op >= 0.5) & (op < 0.75) & (lengths[doc] > 2)]] = 0
    counts[at[op >= 0.75]] = 2  # the word and a new one after it
    out = np.repeat(ids, counts)
    starts = np.cumsum(counts) - counts
    subs = at[(op < 0.5) & (counts[at] == 1)]
    out[starts[subs]] = words.sample(subs.size)
    ins = at[counts[at] == 2]
    out[starts[ins] + 1] = words.sample(ins.size)
    per_doc = np.bincount(np.repeat(np.arange(lengths.size), lengths), weights=counts, minlength=lengths.size).astype(np.int64)
    return out, np.r_[0, np.cumsum(per_doc)]


def _format(texts: pl.Series, rng: np.random.Generator) -> pl.Series:
    """Case, spacing or line-break changes: the same text after normalisation."""
    frame = pl.DataFrame({"t": texts, "c": rng.integers(0, 4, texts.len())})
    t, c = pl.col("t"), pl.col("c")
    return frame.select(
        pl.when(c == 0)
        .then(t.str.to_uppercase())
        .when(c == 1)
        .then(t.str.replace_all(" ", "  ", literal=True))
        .when(c == 2)
        .then("  " + t.str.replace_all("\n", "\r\n", literal=True) + " \n")
        .otherwise(t.str.to_titlecase())
    ).to_series()


def _chunks(n_docs: int, seed: int, spec: ShortSpec) -> Iterator[pl.DataFrame]:
    """Frames of ``text, group, variant`` (shuffled), ``n_docs`` rows in all."""
    rng = np.random.default_rng(seed)
    words = _Words(rng)
    block_len = rng.integers(*spec.block_words, size=spec.blocks)
    blocks = (words.sample(int(block_len.sum())), np.r_[0, np.cumsum(block_len)])
    held = pl.DataFrame(schema={"text": pl.String, "group": pl.Int64, "variant": pl.String})
    made, group = 0, 0
    while made < n_docs:
        n = min(spec.chunk, max(1, int((n_docs - made) / (1 + spec.dup_groups * (1 + spec.max_copies) / 2)) + 1))
        ids, off = _messages(words, blocks, n, spec)
        texts = words.join(ids, off)
        frames = [pl.DataFrame({"text": texts, "group": np.arange(group, group + n), "variant": "original"}), held]
        copies = np.flatnonzero(rng.random(n) < spec.dup_groups)
        copies = np.repeat(copies, rng.integers(1, spec.max_copies + 1, size=copies.size))
        kind = rng.choice(len(_VARIANTS), size=copies.size, p=list(spec.variants))
        for k, name in enumerate(_VARIANTS):
            docs = copies[kind == k]
            if name == "exact":
                made_texts = texts.gather(docs)
            elif name == "format":
                made_texts = _format(texts.gather(docs), rng)
            else:
                made_texts = words.join(*_edit(words, *_gather(ids, off, docs), spec))
            frames.append(pl.DataFrame({"text": made_texts, "group": group + docs, "variant": name}))
        chunk = pl.concat(frames).sample(fraction=1.0, shuffle=True, seed=int(rng.integers(1 << 31)))
        later = (rng.random(chunk.height) < 0.5) & (chunk["variant"] != "original").to_numpy()
        held, chunk = chunk.filter(pl.Series(later)), chunk.filter(pl.Series(~later))
        if made + chunk.height >= n_docs:  # the last chunk takes what is held back
            chunk = pl.concat([chunk, held]).head(n_docs - made)
        yield chunk
        made, group = made + chunk.height, group + n


def generate_short(n_docs: int, *, seed: int = 0, spec: ShortSpec | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``n_docs`` short messages in memory: ``(id, text)`` and the truth ``(id, group, variant)``."""
    frame = pl.concat(list(_chunks(n_docs, seed, spec or ShortSpec())))
    frame = frame.with_columns(id=pl.format("s{}", pl.int_range(pl.len()).cast(pl.String).str.zfill(8)))
    return frame.select("id", "text"), frame.select("id", "group", "variant")


def write_short(docs: Path, truth: Path, n_docs: int, *, seed: int = 0, spec: ShortSpec | None = None) -> None:
    """``generate_short`` straight to two Parquet files, one row group per chunk: ``docs`` (``id, text``)
    and ``truth`` (``id, group, variant``)."""
    docs_writer: pq.ParquetWriter | None = None
    truth_writer: pq.ParquetWriter | None = None
    row = 0
    try:
        for chunk in _chunks(n_docs, seed, spec or ShortSpec()):
            chunk = chunk.with_columns(id=pl.format("s{}", pl.int_range(row, row + pl.len()).cast(pl.String).str.zfill(8)))
            row += chunk.height
            d, t = chunk.select("id", "text").to_arrow(), chunk.select("id", "group", "variant").to_arrow()
            docs_writer = docs_writer or pq.ParquetWriter(docs, d.schema)
            truth_writer = truth_writer or pq.ParquetWriter(truth, t.schema)
            docs_writer.write_table(d)
            truth_writer.write_table(t)
    finally:
        for w in (docs_writer, truth_writer):
            if w is not None:
                w.close()
