"""Boilerplate-aware near duplicates: blocks of text that many distinct documents share.

Two different messages under the same long support footer or legal disclaimer overlap a
lot: with a 30-word footer and 8 words of their own, their word-bigram Jaccard is about
0.6, like a lightly edited copy's. So:

1. **Phrase frequencies.** While hashing, runs of ``phrase`` consecutive shingles (a
   5-word phrase for word bigrams) of every distinct text are counted in a hashed table
   of saturating 16-bit counters (``DocFrequency``); exact copies count once. Only a
   winnowed sample is counted (``WINDOW``: at least one phrase in every 4 consecutive
   ones, 40% of them), chosen by the text alone, so a block has the same sampled
   phrases wherever it occurs; ``strip_boilerplate`` counts them all (exact edges).
2. **Blocks.** A phrase in at least ``min_df = max(min_docs, ceil(min_share * texts))``
   texts is common. The shingles covered by common sampled phrases form runs; runs a
   few shingles apart are joined (a word edited inside a footer); a run of at least
   ``min_block - WINDOW + 1`` covered shingles is a block, its edges moved halfway to
   the sampled phrases next to it. Frequent words and bigrams of ordinary prose do not
   make blocks: they are not 5-word phrases recurring in many texts.
3. **Comparison** (``compare``, vectorised in ``pair_similarities``): weighted Jaccard,
   a shingle outside every block (in either text) weighs 1, one inside blocks weighs
   ``weight``. Texts that are both all boilerplate compare as plain Jaccard.

The blocks of the kept rows are also counted for the report (keyed by their smallest
shingle hash, so variants of one footer usually share a key) and can be stripped.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from curation.core.masking import mask_example
from curation.stages.dedup import minhash as mh

_PAIR_BATCH = 50_000  # pairs compared at once (bounded memory)
WINDOW = 4  # of every WINDOW consecutive phrases at least one is counted (winnowing: 2 in WINDOW + 1 on average)
_SPACE_RE = re.compile(r"[\s\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")


class BoilerplateConfig(BaseModel):
    """When shared text counts as boilerplate, and how pairs are compared around it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True  # compare near-duplicate candidates on their non-boilerplate shingles
    min_docs: int = Field(5, ge=2)  # a shingle is common in at least this many distinct documents...
    min_share: float = Field(0.0001, ge=0, le=1)  # ...and this share of them (the larger wins)
    phrase: int = Field(4, ge=1)  # consecutive shingles counted together (4 word bigrams: a 5-word phrase)
    min_block: int = Field(10, ge=1)  # shingles in a run of common phrases for it to be a block (about a sentence)
    max_gap: int = Field(4, ge=0)  # other shingles bridged inside a block (an edited word leaves `ngram`)
    weight: float = Field(0.1, ge=0, le=1)  # of a boilerplate shingle, against 1 for a distinctive one
    top: int = Field(10, ge=0)  # blocks listed in the stats and the report


# ---------------------------------------------------------------------------- document frequency
class DocFrequency:
    """Phrase document frequencies in a hashed table of saturating 8- or 16-bit counters.

    Hash collisions can only add to a count. With several counters per word of the
    corpus a rare phrase is rarely pushed over the threshold, and a stray one does no
    harm: a block needs ``min_block`` consecutive shingles covered by common phrases.
    Each distinct text counts once: the hashing threads ``claim`` the exact keys of their
    chunk, and only the texts claimed first are counted. Which copy of a text is counted
    does not matter (copies have the same phrases), so the counts do not depend on the
    order the threads run in. The counters saturate at 255 when no threshold can be above
    that (``needed``), else at 65,535: half the memory for most corpora, and fewer cache misses.
    """

    def __init__(self, bits: int, needed: int = np.iinfo(np.uint16).max) -> None:
        self.mask = np.uint64((1 << bits) - 1)  # of the hash bits 24.., at most 26 bits: below the text number
        self.most = 255 if needed <= 255 else 65_535  # a counter's largest value
        self.table = np.zeros(1 << bits, np.uint8 if self.most == 255 else np.uint16)
        self.documents = 0
        self._seen: set[int] = set()
        self._lock = threading.Lock()

    @classmethod
    def for_bytes(cls, text_bytes: int, needed: int = np.iinfo(np.uint16).max) -> DocFrequency:
        """Sized for a corpus of ``text_bytes``: 1.5 to 3 counters per word (4 to 8 per sampled phrase), 2**16 to 2**26;
        counting up to ``needed`` at least (the largest threshold the corpus can have)."""
        return cls(int(np.clip(math.ceil(math.log2(max(text_bytes // 4, 1))), 16, 26)), needed)

    def claim(self, keys: np.ndarray) -> np.ndarray:
        """Indices of the texts (exact keys, n x 2) not claimed before (by the first 64 bits of their key)."""
        column, seen = keys[:, 0].tolist(), self._seen
        with self._lock:  # ``seen.add`` returns None: a key not seen before is added and kept
            fresh = [i for i, key in enumerate(column) if not (key in seen or seen.add(key))]  # type: ignore[func-returns-value]
        return np.array(fresh, np.int64)

    def chunk_counts(self, phrases: np.ndarray, offsets: np.ndarray, documents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(counters, increments) for the distinct phrases of ``documents``; in the hashing threads."""
        sizes = np.diff(offsets)
        doc = np.repeat(np.arange(sizes.size, dtype=np.uint64), sizes)
        if documents.size < sizes.size:
            fresh = np.zeros(sizes.size, bool)
            fresh[documents] = True
            take = fresh[doc]
            phrases, doc = phrases[take], doc[take]
        # one (counter, text) key per phrase of a text: sorted, each distinct pair counts once, grouped by counter (one sort)
        bits = np.uint64(max(int(sizes.size).bit_length(), 1))
        key = phrases >> np.uint64(24)
        key &= self.mask
        key <<= bits
        key |= doc
        key.sort()
        pairs = _distinct(key)
        slots = (pairs >> bits).astype(np.int64)
        first = np.flatnonzero(np.r_[True, slots[1:] != slots[:-1]]) if slots.size else np.zeros(0, np.int64)
        return slots[first], np.diff(np.r_[first, slots.size]).astype(np.uint32)

    def add(self, slots: np.ndarray, counts: np.ndarray, documents: int) -> None:
        """Add one chunk's ``chunk_counts`` (its counters are distinct)."""
        total = self.table[slots].astype(np.uint32)
        total += counts
        np.minimum(total, self.most, out=total)
        self.table[slots] = total
        self.documents += documents

    def count(self, hashes: np.ndarray) -> np.ndarray:
        """Estimated document frequency of each hash (never below the true count, at most ``most``)."""
        return self.table[((hashes >> np.uint64(24)) & self.mask).astype(np.int64)]


# ---------------------------------------------------------------------------- blocks
@dataclass
class Boilerplate:
    """The frequency table and its threshold: where the blocks of a document are."""

    cfg: BoilerplateConfig
    df: DocFrequency
    counted: int = WINDOW  # phrases counted while hashing: winnowed over this many (1: all, for exact stripping)
    window: int = WINDOW  # phrases looked up for the blocks: winnowed over this many (1: all, exact edges)
    min_df: int = field(init=False, default=0)
    any_common: bool = field(init=False, default=True)  # some phrase reaches ``min_df``

    @classmethod
    def for_corpus(cls, cfg: BoilerplateConfig, text_bytes: int, texts: int, counted: int = WINDOW) -> Boilerplate:
        """For a corpus of ``texts`` texts, ``text_bytes`` in all (the counters need not count beyond its largest threshold)."""
        return cls(cfg, DocFrequency.for_bytes(text_bytes, _threshold(cfg, texts)), counted)

    def finish(self) -> None:
        self.min_df = min(_threshold(self.cfg, self.df.documents), self.df.most)
        self.any_common = bool(self.df.table.max(initial=0) >= self.min_df)  # else no text has a block: skip looking for them

    def phrases(self, hashes: np.ndarray, offsets: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The sampled phrases of documents (shingle hashes concatenated, split by ``offsets``):
        their hashes, first shingle positions, and per-document offsets into them.

        A phrase is ``phrase`` consecutive shingles of one document. Only some are sampled
        (winnowing): a phrase whose first shingle has the smallest hash of some ``window``
        consecutive shingles. The choice depends on the text, so a block shared by many
        documents has the same sampled phrases in each, and of every ``window`` consecutive
        phrases at least one is sampled. ``window`` 1 samples every phrase.
        """
        n, lengths = self.cfg.phrase, np.diff(offsets)
        sampled = _winnow(hashes, window, offsets) if window > 1 else np.ones(hashes.size, bool)
        for j in range(1, n):  # whole phrases only: none starts in the last n - 1 shingles of a text...
            tail = offsets[1:] - j
            sampled[tail[tail >= offsets[:-1]]] = False
        short = np.flatnonzero((lengths > 0) & (lengths < n))
        sampled[offsets[:-1][short]] = True  # ...but a text shorter than a phrase is one
        at = np.flatnonzero(sampled)
        phrase_offsets = np.searchsorted(at, offsets)
        if short.size:  # the polynomial hash of ``mh.range_hash`` (base Q): sum of hashes[at + j] * Q**(n - 1 - j)
            doc = np.searchsorted(offsets, at, side="right") - 1
            h = mh.range_hash(hashes, at, np.minimum(at + n, offsets[doc + 1]))
        else:
            h = _phrase_hash(hashes, at, n)
        return mh.fmix64(h) if h.size else h, at, phrase_offsets

    def blocks(self, hashes: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The blocks of documents (shingle hashes concatenated, split by ``offsets``): their
        document, first and last-plus-one shingle positions in it, and key (smallest shingle hash).

        Common sampled phrases cover their shingles; covered runs at most ``max_gap + window - 1``
        shingles apart are joined when both are longer than a phrase. A block's first and last
        phrases may not be sampled, so its covered shingles may start or end up to ``window - 1``
        shingles late or early: a run is a block from ``min_block - window + 1`` covered
        shingles on, and its edges are moved halfway to the sampled phrases next to it (``_widen``).
        """
        phrases, starts, phrase_offsets = self.phrases(hashes, offsets, self.window)
        common = self.df.count(phrases) >= self.min_df if self.any_common else np.zeros(phrases.size, bool)
        per_doc = np.diff(phrase_offsets)
        docs = _distinct(np.repeat(np.arange(per_doc.size), per_doc)[common])
        if docs.size == per_doc.size:
            return self._blocks_in(hashes, offsets, starts, common)
        # only a document with a common phrase can have a block: look in those alone
        lengths = np.diff(offsets)[docs]
        sub_offsets = np.r_[0, np.cumsum(lengths)]
        mine = _spans(phrase_offsets[docs], per_doc[docs])
        moved = np.repeat(offsets[docs] - sub_offsets[:-1], per_doc[docs])
        doc, start, end, keys = self._blocks_in(hashes[_spans(offsets[docs], lengths)], sub_offsets, starts[mine] - moved, common[mine])
        return docs[doc], start, end, keys

    def _blocks_in(
        self, hashes: np.ndarray, offsets: np.ndarray, starts: np.ndarray, common: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``blocks`` from the sampled phrases' first shingles (``starts``) and whether each is common."""
        s = starts[common]
        covered = np.zeros(hashes.size, bool)
        ends = offsets[np.searchsorted(offsets, s, side="right")]  # of the phrases' texts
        for j in range(self.cfg.phrase):  # a common phrase covers its shingles (those of its text: a short text is one phrase)
            at = s + j
            covered[at[at < ends]] = True
        doc = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        slack = self.window - 1
        closed = _bridge_gaps(covered, doc, self.cfg.max_gap + slack, max(self.cfg.phrase + 1, self.cfg.min_block // 2))
        run_starts, run_ends = _runs(closed, doc)
        counts = np.add.reduceat(covered, run_starts, dtype=np.int64) if run_starts.size else np.zeros(0, np.int64)  # runs cover all
        is_block = closed[run_starts] & (counts >= max(self.cfg.min_block - slack, 1))
        run_starts, run_ends = run_starts[is_block], run_ends[is_block]
        if slack:
            run_starts, run_ends = _widen(run_starts, run_ends, starts, offsets, doc, self.cfg.phrase)
        bounds = np.c_[run_starts, run_ends].ravel()  # reduceat over [start, end) pairs; the padding ends the last one
        keys = np.minimum.reduceat(np.r_[hashes, np.uint64(0)], bounds)[::2] if run_starts.size else np.zeros(0, np.uint64)
        block_doc = doc[run_starts]
        return block_doc, run_starts - offsets[block_doc], run_ends - offsets[block_doc], keys

    def profiles(
        self, hashes: np.ndarray, offsets: np.ndarray, blocks: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Per document its profile: its distinct shingles, sorted, as ``flagged`` values; and whether it has boilerplate.

        ``blocks``: (document, start, end) of the blocks when known, else found here.
        """
        doc, start, end = blocks if blocks is not None else self.blocks(hashes, offsets)[:3]
        values = hashes & ~np.uint64(1)
        if doc.size:  # the lowest bit: this occurrence is inside a block
            values[_spans(offsets[doc] + start, end - start)] |= np.uint64(1)
        sets, set_offsets = mh.shingle_sets(values, offsets, flagged=True)
        has = np.zeros(len(offsets) - 1, bool)
        if doc.size:
            inside = np.flatnonzero(sets & np.uint64(1))
            has[np.searchsorted(set_offsets, inside, side="right") - 1] = True
        return (np.split(sets, set_offsets[1:-1]) if has.size else []), has  # (np.split of nothing gives one piece)

    def profiles_of(
        self, hashes: np.ndarray, offsets: np.ndarray, blocks: tuple[np.ndarray, np.ndarray, np.ndarray], docs: np.ndarray
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """``profiles`` of the documents ``docs`` (ascending) of a batch whose ``blocks`` are known."""
        lengths = np.diff(offsets)[docs]
        doc, start, end = blocks
        mine = np.isin(doc, docs)
        return self.profiles(
            hashes[_spans(offsets[docs], lengths)], np.r_[0, np.cumsum(lengths)], (np.searchsorted(docs, doc[mine]), start[mine], end[mine])
        )


def flagged(full: np.ndarray, rare: np.ndarray) -> np.ndarray:
    """The profile of a document from its sorted distinct shingles and those outside its blocks (``rare``, a subset).

    A profile holds each shingle with its lowest bit replaced by 1 when the shingle is boilerplate
    in the document (in blocks only), 0 when it is distinctive. Two profiles share a shingle
    when their values agree but for that bit; sorting the values sorts the shingles.
    """
    return (full & ~np.uint64(1)) | (~np.isin(full, rare)).view(np.uint8).astype(np.uint64)


def _threshold(cfg: BoilerplateConfig, documents: int) -> int:
    """The document frequency from which a phrase is common, in a corpus of ``documents`` distinct texts."""
    return max(cfg.min_docs, math.ceil(cfg.min_share * documents))


def _spans(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The positions ``starts[k] .. starts[k] + lengths[k] - 1`` of every range ``k``, one after another."""
    return np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())


def _distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values of a sorted array (``np.unique`` without its hashing path, much slower here)."""
    return values[np.r_[True, values[1:] != values[:-1]]] if values.size else values


def _phrase_hash(hashes: np.ndarray, at: np.ndarray, n: int) -> np.ndarray:
    """``mh.range_hash(hashes, at, at + n)`` for whole phrases, from ``n`` gathers (no prefix sums over every shingle)."""
    h = hashes[at]
    following = at + 1
    for j in range(1, n):  # in place: no new arrays but the gathered hashes
        h *= np.uint64(mh._Q)
        h += hashes[following]
        if j < n - 1:
            following += 1
    return h


def _winnow(hashes: np.ndarray, w: int, offsets: np.ndarray | None = None) -> np.ndarray:
    """Whether each position holds the smallest key (top 16 hash bits) of some window of ``w`` consecutive positions.

    With ``offsets`` (documents one after another) only windows inside one document count, and a
    document of at most ``w`` shingles is sampled whole: each document is winnowed as if alone, so
    its phrases do not depend on the documents next to it in a batch (the Spark engine's batches differ).
    """
    size = hashes.size
    if size <= w:
        return np.ones(size, bool)
    key = (hashes >> np.uint64(48)).astype(np.uint16)
    low = key[: size - w + 1].copy()  # the smallest key of each window
    for t in range(1, w):
        np.minimum(low, key[t : size - w + 1 + t], out=low)
    if offsets is not None and offsets.size > 2:  # windows across a document boundary count as the padding does
        crossing = (offsets[1:-1, None] - np.arange(1, w)).ravel()
        low[crossing[(crossing >= 0) & (crossing < low.size)]] = 0
    padded = np.zeros(size + w - 1, np.uint16)
    padded[w - 1 : w - 1 + low.size] = low
    best = padded[:size].copy()  # the largest window minimum among the windows holding each position
    for t in range(1, w):
        np.maximum(best, padded[t : size + t], out=best)
    sampled = key <= best
    if offsets is not None:
        lengths = np.diff(offsets)
        small = np.flatnonzero((lengths > 0) & (lengths <= w))
        sampled[_spans(offsets[:-1][small], lengths[small])] = True
    return sampled


def _widen(
    run_starts: np.ndarray, run_ends: np.ndarray, sampled: np.ndarray, offsets: np.ndarray, doc: np.ndarray, phrase: int
) -> tuple[np.ndarray, np.ndarray]:
    """Blocks ``[run_starts, run_ends)`` widened halfway towards the sampled phrases next to them.

    A block's first phrase may not be sampled: its true start lies after the sampled phrase
    before it (which is not common) and at or before the first covered shingle; likewise
    its end. Half the way errs by at most ``WINDOW // 2`` shingles either way. With no sampled
    phrase between a block and the start or end of its document (fewer than ``WINDOW`` phrases),
    the block reaches it.
    """
    if not run_starts.size:
        return run_starts, run_ends
    block_doc = doc[run_starts]
    first, last = offsets[block_doc], offsets[block_doc + 1]
    before = np.searchsorted(sampled, run_starts) - 1
    prev = np.where(before >= 0, sampled[np.maximum(before, 0)], -1)
    after = np.searchsorted(sampled, run_ends - phrase, side="right")
    nxt = np.where(after < sampled.size, sampled[np.minimum(after, sampled.size - 1)], offsets[-1])
    # halfway to the neighbouring sampled phrase; with none in the document, all the way to its edge
    start = np.where(prev < first, first, run_starts - np.maximum(run_starts - prev - 1, 0) // 2)
    end = np.where(nxt >= last, last, run_ends + np.maximum(nxt + phrase - 1 - run_ends, 0) // 2)
    return start, end


def _runs(values: np.ndarray, doc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends of the runs of equal ``values`` within each document."""
    if not values.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    change = np.r_[True, (values[1:] != values[:-1]) | (doc[1:] != doc[:-1])]
    starts = np.flatnonzero(change)
    return starts, np.r_[starts[1:], len(values)]


def _bridge_gaps(covered: np.ndarray, doc: np.ndarray, max_gap: int, flank: int) -> np.ndarray:
    """``covered`` with gaps of at most ``max_gap`` shingles between two covered runs of ``flank``+ shingles filled.

    An edited word inside a footer leaves long covered runs on both sides; one common
    phrase in a message's own words (a frequent word next to the footer, a stray count)
    covers only ``phrase`` shingles and is not joined to the footer.
    """
    starts, ends = _runs(covered, doc)
    if starts.size < 3 or max_gap == 0:
        return covered
    length, run_doc = ends - starts, doc[starts]
    inside = np.r_[False, run_doc[1:] == run_doc[:-1]] & np.r_[run_doc[:-1] == run_doc[1:], False]
    long_prev, long_next = np.r_[0, length[:-1]] >= flank, np.r_[length[1:], 0] >= flank
    bridge = ~covered[starts] & (length <= max_gap) & inside & long_prev & long_next
    return covered | np.repeat(bridge, length)


def overlap(a: np.ndarray, b: np.ndarray) -> int:
    """Size of the intersection of two sorted sets of hashes."""
    if a.size > b.size:
        a, b = b, a
    if a.size == 0:
        return 0
    pos = np.searchsorted(b, a)
    return int(np.count_nonzero(b[np.minimum(pos, b.size - 1)] == a))


def compare(full: tuple[np.ndarray, np.ndarray], rare: tuple[np.ndarray, np.ndarray], weight: float) -> tuple[float, bool, float]:
    """(weighted Jaccard similarity, boilerplate discounted, plain Jaccard similarity) of one pair: the reference.

    ``full``: the two documents' sorted distinct shingles; ``rare``: those outside their blocks.
    A shingle weighs 1 when it is distinctive (outside every block) in either document,
    ``weight`` when it is boilerplate in both. Discounted: some shingle of the pair was
    boilerplate. Two documents that are all boilerplate compare as plain Jaccard.
    """
    (a, b), (ra, rb) = full, rare
    both = overlap(a, b)
    union = a.size + b.size - both
    whole = both / union if union else 1.0
    rare_union = ra.size + rb.size - overlap(ra, rb)
    if rare_union == union:  # no boilerplate in the pair
        return whole, False, whole
    rare_both = overlap(ra, b) + overlap(rb, a) - overlap(ra, rb)
    shared = rare_both + weight * (both - rare_both)
    return shared / (rare_union + weight * (union - rare_union)), True, whole


def pair_similarities(
    profiles: list[np.ndarray], blocked: np.ndarray, pairs: np.ndarray, weight: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``compare`` for many pairs at once (``pairs`` index ``profiles``, see ``flagged``).

    Pairs of documents without boilerplate (``blocked`` False) get plain Jaccard one by one
    (small sorted sets, in cache: their profiles are plain shingle sets); the others are
    computed in batches by ``_weighted``.
    """
    weighted, discounted, whole = np.zeros(len(pairs)), np.zeros(len(pairs), bool), np.zeros(len(pairs))
    plain = ~(blocked[pairs[:, 0]] | blocked[pairs[:, 1]]) if len(pairs) else np.zeros(0, bool)
    whole[plain] = [mh.jaccard(profiles[u], profiles[v]) for u, v in pairs[plain].tolist()]
    weighted[plain] = whole[plain]
    rest = np.flatnonzero(~plain)
    for lo in range(0, rest.size, _PAIR_BATCH):
        at = rest[lo : lo + _PAIR_BATCH]
        rows = _distinct(np.sort(pairs[at].ravel()))
        local = np.searchsorted(rows, pairs[at])
        weighted[at], discounted[at], whole[at] = _weighted([profiles[i] for i in rows.tolist()], local, weight)
    return weighted, discounted, whole


def _weighted(profiles: list[np.ndarray], pairs: np.ndarray, weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``compare`` for many pairs, vectorised.

    Each shingle becomes the key ``row << (64 - r) | value >> r`` (``r`` >= 1 bits for the row
    number, so the boilerplate bit is dropped): sorted within a row and across rows, so that
    looking one row's shingles up in another row is one ``searchsorted``. Dropping ``r`` low
    hash bits could merge two shingles of a pair in about ``|A| |B| / 2**(64 - r)`` of pairs
    (1e-9 for 100,000 rows).
    """
    bits = max(int(len(profiles) - 1).bit_length(), 1)
    sizes = np.array([p.size for p in profiles], np.int64)
    values = np.concatenate(profiles) if profiles else np.zeros(0, np.uint64)
    key = (np.repeat(np.arange(len(profiles), dtype=np.uint64), sizes) << np.uint64(64 - bits)) | (values >> np.uint64(bits))
    is_rare = (values & np.uint64(1)) == 0
    offsets = np.r_[0, np.cumsum(sizes)]
    rare_sizes = _sums(is_rare, offsets[:-1], sizes)
    a, b = pairs[:, 0], pairs[:, 1]
    a, b = np.where(sizes[a] <= sizes[b], a, b), np.where(sizes[a] <= sizes[b], b, a)  # look up the smaller set's shingles
    count = sizes[a]
    element = _spans(offsets[a], count)
    shift = np.uint64(64 - bits)
    query = (np.repeat(b.astype(np.uint64) << shift, count)) | (key[element] & np.uint64((1 << (64 - bits)) - 1))
    found, at = _found(key, query)
    in_a, in_b = is_rare[element] & found, is_rare[at] & found
    starts = np.r_[0, np.cumsum(count)][:-1]
    sums = [_sums(w, starts, count) for w in (found, in_a, in_b, in_a & in_b)]
    both, rare_a_in_b, rare_b_in_a, rare_in_both = sums
    union = sizes[a] + sizes[b] - both
    whole = np.divide(both, union, out=np.ones(len(pairs)), where=union > 0)
    rare_union = rare_sizes[a] + rare_sizes[b] - rare_in_both
    rare_shared = rare_a_in_b + rare_b_in_a - rare_in_both
    discounted = rare_union < union
    weighted_union = rare_union + weight * (union - rare_union)
    weighted = np.divide(
        rare_shared + weight * (both - rare_shared), weighted_union, out=whole.copy(), where=discounted & (weighted_union > 0)
    )
    return weighted, discounted, whole


def _sums(flags: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """How many of ``flags[starts[k] : starts[k] + counts[k]]`` are set, for each ``k`` (ranges one after another)."""
    if not flags.size:
        return np.zeros(counts.size, np.int64)
    return np.where(counts > 0, np.add.reduceat(np.r_[flags, False], starts, dtype=np.int64), 0)


def _found(sorted_keys: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whether each query is in ``sorted_keys``, and where."""
    if not sorted_keys.size:
        return np.zeros(queries.size, bool), np.zeros(queries.size, np.int64)
    at = np.minimum(np.searchsorted(sorted_keys, queries), sorted_keys.size - 1)
    return sorted_keys[at] == queries, at


# ---------------------------------------------------------------------------- the kept rows' blocks
def blocks_of(blocks: pl.DataFrame, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(position in ``rows``, start, end) of the blocks (``row``, ``start``, ``end``, sorted by row) of ``rows`` (ascending)."""
    block_rows = blocks["row"].to_numpy()
    lo, hi = np.searchsorted(block_rows, rows, "left"), np.searchsorted(block_rows, rows, "right")
    counts = hi - lo
    index = np.repeat(lo, counts) + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(np.arange(len(rows)), counts), blocks["start"].to_numpy()[index], blocks["end"].to_numpy()[index]


def frequent_blocks(blocks: pl.DataFrame, min_df: int) -> pl.DataFrame:
    """Blocks whose key is in at least ``min_df`` of the rows, most frequent first: ``key``, ``docs``, an example ``row``."""
    return (
        blocks.group_by("key")
        .agg(docs=pl.col("row").n_unique(), row=pl.col("row").min())
        .filter(pl.col("docs") >= min_df)
        .sort(["docs", "key"], descending=[True, False])
    )


def word_spans(text: str, *, strip_punctuation: bool) -> list[tuple[int, int]] | None:
    """Character spans in ``text`` of the words of its key text (``minhash.normalize``); None if they do not line up."""
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", _SPACE_RE.sub(lambda m: " " * len(m.group(0)), text))]
    if strip_punctuation:
        spans = [s for s in spans if mh.normalize(text[s[0] : s[1]], strip_punctuation=True)]
    words = mh.normalize(text, strip_punctuation=strip_punctuation).split(" ")
    return spans if len(spans) == len([w for w in words if w]) else None


def block_words(start: int, end: int, ngram: int) -> tuple[int, int]:
    """The words ``[first, last)`` covered by the word shingles ``[start, end)``."""
    return start, end - 1 + ngram


def strip_blocks(text: str, blocks: list[tuple[int, int]], ngram: int, *, strip_punctuation: bool) -> str | None:
    """``text`` without the words of its blocks (shingle ranges); None when nothing would be left or words do not line up."""
    spans = word_spans(text, strip_punctuation=strip_punctuation)
    if spans is None:
        return None
    pieces, at = [], 0
    for start, end in sorted(blocks):
        first, last = block_words(start, end, ngram)
        last = min(last, len(spans))
        if first >= last or spans[first][0] < at:
            continue
        pieces.append(text[at : spans[first][0]].rstrip())
        at = spans[last - 1][1]
    pieces.append(text[at:].lstrip())
    out = "\n".join(p for p in pieces if p)
    return out if out.strip() else None


def block_examples(
    top: pl.DataFrame, blocks: pl.DataFrame, examined: int, texts: pl.Series, *, ngram: int | None, strip_punctuation: bool
) -> list[dict[str, Any]]:
    """For each frequent block (``frequent_blocks``): the rows it is in (of ``examined``), its words and a masked example.

    The example is the block in its first row, in that row's own words, masked like every
    example text in the stats (``mask_example``). With character shingles (``ngram`` None) no example.
    """

    out = []
    for key, docs, row in top.select("key", "docs", "row").iter_rows():
        block = blocks.filter((pl.col("key") == key) & (pl.col("row") == row)).row(0, named=True)
        text = str(texts[row] or "")
        spans = word_spans(text, strip_punctuation=strip_punctuation) if ngram is not None else None
        words, example = None, None
        if spans and ngram is not None:
            first, last = block_words(block["start"], block["end"], ngram)
            last = min(last, len(spans))
            words, example = last - first, mask_example(text[spans[first][0] : spans[last - 1][1]])
        out.append({"rows": int(docs), "pct_of_rows_examined": round(100 * docs / max(examined, 1), 2), "words": words, "example": example})
    return out


def strip_column(
    kept: pl.DataFrame, column: str, found: pl.DataFrame, *, ngram: int | None, strip_punctuation: bool
) -> tuple[pl.DataFrame, int, int]:
    """``kept`` with the blocks ``found`` (``row``: position in ``kept``, ``start``, ``end``) cut out of ``column``.

    Returns the frame, the rows stripped, and the rows left as they were (nothing would be
    left, or their words do not line up with the key text's).
    """
    assert ngram is not None  # the config allows stripping with word shingles only
    texts, stripped, skipped = kept[column].to_list(), 0, 0
    for at, starts, ends in found.group_by("row").agg("start", "end").iter_rows():
        new = strip_blocks(texts[at], list(zip(starts, ends, strict=True)), ngram, strip_punctuation=strip_punctuation)
        if new is None:
            skipped += 1
        else:
            texts[at], stripped = new, stripped + 1
    return kept.with_columns(pl.Series(column, texts, dtype=pl.String)), stripped, skipped
