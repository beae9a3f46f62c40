"""Vectorised MinHash: normalised words, shingle hashes, signatures, LSH bands, Jaccard.

Everything works on whole chunks of documents with numpy instead of one Python object
per word or per document, and stays compatible with datasketch:

- Texts are normalised in bulk (``tokenize``; ``normalize`` is the one-text reference):
  NFKC and case folding (in Python, only for the rare non-ASCII rows), ASCII lowercase
  and punctuation removal on the UTF-8 bytes, words split on whitespace.
- A word's hash mixes its 8-byte blocks (``word_hash``); a word n-gram's hash is a 64-bit
  polynomial hash of its word hashes, a character n-gram's of its code points, both
  finished with the MurmurHash3 mixer. ``datasketch_hashfunc(shingle)`` computes the same
  value for one shingle in plain Python, so ``MinHash(num_perm, seed, hashfunc=...)`` fed
  with ``reference_shingles(text)`` has exactly the ``hashvalues`` of our signature row,
  and a row wrapped in ``LeanMinHash(seed=..., hashvalues=row, scheme="affine32")`` works
  with ``MinHashLSH`` and ``MinHash.jaccard``.
- Signatures use datasketch's default scheme (``affine32``): the same permutations
  ``a * fmix32(h) + b mod 2**32`` drawn from ``np.random.RandomState(seed)``, applied to
  a block of shingles at once, reduced per document with ``np.minimum.reduceat``.
- Polynomial hashes of many ranges come from one prefix sum: modulo 2**64 an odd base
  ``Q`` is invertible, so ``sum u[j] Q**(e-1-j)`` over ``[s, e)`` equals
  ``Q**(e-1) * (P[e] - P[s])`` with ``P`` the running sum of ``u[j] * Q**-j``.
"""

from __future__ import annotations

import itertools
import re
import string
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

Shingle = Literal["word", "char"]

_M64 = (1 << 64) - 1
_Q = 0x9E3779B97F4A7C15  # odd, so invertible modulo 2**64
_QINV = pow(_Q, -1, 1 << 64)
MAX_WINDOWS = 100_000  # shingles per document; see ``windows``
_BLOCK = 16_384  # shingles per arithmetic block: (num_perm x block) uint32 stays in cache
U64 = np.uint64

# Whitespace: ASCII blanks in bulk; the other Unicode spaces become " " in the Python pass.
_ASCII_SPACE_RE = re.compile(r"[\t\n\x0b\x0c\r ]+")
_UNICODE_SPACES = dict.fromkeys([0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000], " ")
_ASCII_PUNCT = np.zeros(256, bool)  # string.punctuation: exactly the ASCII P* and S* characters
_ASCII_PUNCT[[ord(c) for c in string.punctuation]] = True
_ASCII_PUNCT_DELETE = str.maketrans("", "", string.punctuation)
_TAIL_MASK = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [_M64], dtype=U64)  # low k bytes of a block


# ---------------------------------------------------------------------------- hashing primitives
def fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, in place on a fresh uint64 array (wrapping arithmetic is intended)."""
    x ^= x >> U64(33)
    x *= U64(0xFF51AFD7ED558CCD)
    x ^= x >> U64(33)
    x *= U64(0xC4CEB9FE1A85EC53)
    x ^= x >> U64(33)
    return x


def _fmix64_int(x: int) -> int:
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & _M64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & _M64
    return x ^ (x >> 33)


def _fmix32(x: np.ndarray) -> np.ndarray:
    """datasketch's pre-mix of 32-bit input hashes (MurmurHash3 fmix32)."""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x85EBCA6B)
    x = x ^ (x >> np.uint32(13))
    x = x * np.uint32(0xC2B2AE35)
    return x ^ (x >> np.uint32(16))


def _poly_int(units: list[int]) -> int:
    h = 0
    for u in units:
        h = (h * _Q + u) & _M64
    return h


class _Powers:
    """Q**j and Q**-j modulo 2**64 for j < n, grown on demand and shared by threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.pw = np.ones(1, U64)
        self.ipw = np.ones(1, U64)

    def get(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if len(self.pw) < n:
                size = max(n, 2 * len(self.pw))
                self.pw = np.cumprod(np.r_[U64(1), np.full(size - 1, _Q, U64)], dtype=U64)
                self.ipw = np.cumprod(np.r_[U64(1), np.full(size - 1, _QINV, U64)], dtype=U64)
            return self.pw, self.ipw


_POWERS = _Powers()


def range_hash(units: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Polynomial hashes (base ``Q``, mod 2**64) of ``units[s:e]`` for every range; ``e > s``."""
    pw, ipw = _POWERS.get(len(units))
    prefix = np.zeros(len(units) + 1, U64)
    np.cumsum(units * ipw[: len(units)], out=prefix[1:])
    return pw[ends - 1] * (prefix[ends] - prefix[starts])


# ---------------------------------------------------------------------------- normalised text
def _fold_unicode(text: str, strip_punctuation: bool) -> str:
    text = unicodedata.normalize("NFKC", text).casefold().translate(_UNICODE_SPACES)
    if strip_punctuation:
        text = "".join(c for c in text if c.isascii() or unicodedata.category(c)[0] not in "PS")
    return text


def normalize(text: str, *, strip_punctuation: bool = False) -> str:
    """The key text of one text: NFKC, case-folded, punctuation optionally removed, words
    joined by single spaces. The reference for what ``tokenize`` computes in bulk."""
    text = text.lower() if text.isascii() else _fold_unicode(text, strip_punctuation)
    if strip_punctuation:
        text = text.translate(_ASCII_PUNCT_DELETE)
    return " ".join(w for w in _ASCII_SPACE_RE.split(text) if w)


@dataclass(frozen=True)
class Tokens:
    """A chunk of texts as normalised UTF-8 bytes and word ranges (no Python object per word).

    ``data`` holds the texts lowercased and punctuation-stripped but with their original
    whitespace, with a newline before, between and after them; text ``d`` starts at
    ``doc_starts[d]``. Words are the
    maximal runs of non-space bytes: ``starts``/``ends`` their byte ranges, ``word_hashes``
    their hashes, ``word_offsets`` the words of each text.
    """

    data: np.ndarray
    doc_starts: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    word_offsets: np.ndarray
    word_hashes: np.ndarray


def tokenize(texts: pl.Series, *, strip_punctuation: bool = False) -> Tokens:
    """Normalise and split a chunk of texts in bulk; equal to ``normalize`` text by text."""
    s = texts.fill_null("")
    wide = (s.str.len_bytes() != s.str.len_chars()).arg_true()  # non-ASCII rows: Unicode folding in Python
    if wide.len():
        s = s.scatter(wide, [_fold_unicode(t, strip_punctuation) for t in s.gather(wide).to_list()])
    sizes = s.str.len_bytes().to_numpy().astype(np.int64) + 1
    doc_starts = np.cumsum(sizes) - sizes + 1
    # Newlines before, between and after the texts: words never run from one text into the
    # next, and every word has a space on both sides.
    raw = np.frombuffer(("\n" + "\n".join(s.to_list()) + "\n").encode("utf-8"), np.uint8)
    data = raw + (((raw - np.uint8(65)) < 26).view(np.uint8) << np.uint8(5))  # A-Z -> a-z; multi-byte UTF-8 is >= 0x80
    if strip_punctuation:
        keep = ~_ASCII_PUNCT[data]
        doc_starts = np.r_[0, np.cumsum(keep, dtype=np.int64)][doc_starts]
        data = data[keep]
    space = (data == 32) | ((data - np.uint8(9)) <= 4)  # space, \t \n \v \f \r
    edges = np.flatnonzero(space[1:] != space[:-1]) + 1
    starts, ends = edges[0::2], edges[1::2]
    word_offsets = np.r_[np.searchsorted(starts, doc_starts), len(starts)]
    return Tokens(data, doc_starts, starts, ends, word_offsets, word_hashes(data, starts, ends))


def word_hashes(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """64-bit hashes of the byte ranges ``data[s:e]``, 8 bytes at a time (see ``word_hash``).

    Works on the words, not the bytes: each round loads the next little-endian 8-byte
    block of every word still that long (an overlapping unaligned view), masks off the bytes
    past its end, and mixes it in. Most words take one round.
    """
    padded = np.zeros(len(data) + 16, np.uint8)
    padded[: len(data)] = data
    # blocks[i] is the (unaligned, little-endian) 8-byte word starting at byte i
    blocks = np.ndarray(shape=(len(data) + 8,), dtype="<u8", buffer=padded, strides=(1,))
    lengths = ends - starts
    h = blocks[starts]
    h &= _TAIL_MASK[np.minimum(lengths, 8)]
    h += lengths.astype(U64) * U64(_Q * _Q & _M64)
    fmix64(h)
    long = np.flatnonzero(lengths > 8)
    k = 1
    while long.size:
        block = blocks[starts[long] + 8 * k]
        block &= _TAIL_MASK[np.minimum(lengths[long] - 8 * k, 8)]
        h[long] = fmix64(h[long] * U64(_Q) + block)
        k += 1
        long = long[lengths[long] > 8 * k]
    return h


def word_hash(word: bytes) -> int:
    """The hash of one word, as ``word_hashes`` computes it in bulk."""
    h = (len(word) * _Q) & _M64
    for k in range(0, max(len(word), 1), 8):
        h = _fmix64_int((h * _Q + int.from_bytes(word[k : k + 8], "little")) & _M64)
    return h


def exact_keys(tok: Tokens) -> np.ndarray:
    """128 bits per text (two 64-bit hashes of its word sequence): equal key texts, equal keys."""
    counts = np.diff(tok.word_offsets)
    keys = np.zeros((len(counts), 2), U64)
    full = np.flatnonzero(counts > 0)
    lo, hi = tok.word_offsets[full], tok.word_offsets[full + 1]
    keys[full, 0] = range_hash(tok.word_hashes, lo, hi)
    keys[full, 1] = range_hash(fmix64(tok.word_hashes ^ U64(0x5BD1E9955BD1E995)), lo, hi) ^ counts[full].astype(U64)
    return keys


def _char_units(tok: Tokens) -> tuple[np.ndarray, np.ndarray]:
    """Code points of the normalised texts (words joined by one space) and their offsets."""
    n = len(tok.data)
    inside = np.cumsum(np.bincount(tok.starts, minlength=n + 1) - np.bincount(tok.ends, minlength=n + 1))[:n] > 0
    doc = np.repeat(np.arange(len(tok.word_offsets) - 1), np.diff(tok.word_offsets))
    not_last = np.zeros(len(doc), bool)
    not_last[:-1] = doc[1:] == doc[:-1]
    gap = tok.ends[not_last]  # the byte after every word but a text's last: a space
    data = tok.data.copy()
    data[gap] = 32
    inside[gap] = True
    kept = data[inside]
    offsets = np.r_[0, np.cumsum(inside, dtype=np.int64)][np.r_[tok.doc_starts, n]]
    codes = np.frombuffer(kept.tobytes().decode("utf-8").encode("utf-32-le"), np.uint32).astype(U64) + U64(1)
    starts_of_chars = np.r_[0, np.cumsum((kept & 0xC0) != 0x80, dtype=np.int64)]
    return codes, starts_of_chars[offsets]


# ---------------------------------------------------------------------------- shingles
def windows(offsets: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The n-unit windows of every document whose units span ``offsets[d]:offsets[d+1]``.

    A document shorter than ``n`` units gives one window over all of it; an empty one
    none; a very long one its first ``MAX_WINDOWS`` (a 50 MB row must not take gigabytes
    of window arrays; that many shingles already pin down its near duplicates).
    Returns the window starts, ends and per-document window counts.
    """
    lengths = np.diff(offsets)
    counts = np.minimum(np.where(lengths >= n, lengths - n + 1, np.minimum(lengths, 1)), MAX_WINDOWS)
    first = np.repeat(offsets[:-1], counts)
    rank = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    starts = first + rank
    ends = np.minimum(starts + n, np.repeat(offsets[1:], counts))
    return starts, ends, counts


def shingle_hashes(tok: Tokens, shingle: Shingle, n: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of every shingle (documents one after another, repeats kept) and
    the per-document offsets into them."""
    units, offsets = (tok.word_hashes, tok.word_offsets) if shingle == "word" else _char_units(tok)
    starts, ends, counts = windows(offsets, n)
    hashes = fmix64(range_hash(units, starts, ends)) if starts.size else np.zeros(0, U64)
    return hashes, np.r_[0, np.cumsum(counts)]


def reference_shingles(text: str, shingle: Shingle, n: int) -> list[bytes]:
    """The shingles of one normalised text, as a datasketch loop would feed ``update_batch``."""
    units: list[str] = text.split(" ") if shingle == "word" else list(text)
    if not text:
        return []
    join = " ".join if shingle == "word" else "".join
    if len(units) < n:
        return [join(units).encode("utf-8")]
    return [join(units[i : i + n]).encode("utf-8") for i in range(min(len(units) - n + 1, MAX_WINDOWS))]


def shingle_hash64(shingle_bytes: bytes, shingle: Shingle) -> int:
    """The 64-bit hash of one shingle, equal to ``shingle_hashes``' value for it."""
    if shingle == "word":
        return _fmix64_int(_poly_int([word_hash(w) for w in shingle_bytes.split(b" ")]))
    return _fmix64_int(_poly_int([ord(c) + 1 for c in shingle_bytes.decode("utf-8")]))


def datasketch_hashfunc(shingle: Shingle) -> Callable[[bytes], int]:
    """A ``hashfunc`` for ``datasketch.MinHash`` that reproduces our signatures."""
    return lambda b: shingle_hash64(b, shingle) >> 32


# ---------------------------------------------------------------------------- signatures
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's ``affine32`` permutation parameters (``MinHash(num_perm, seed).permutations``)."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def signatures(hashes: np.ndarray, offsets: np.ndarray, perms: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """MinHash ``hashvalues`` (docs x num_perm, uint32) from shingle hashes and doc offsets.

    Documents without shingles get the empty sketch (all 2**32 - 1), as in datasketch.
    """
    a, b = perms
    n_docs, num_perm = len(offsets) - 1, len(a)
    out = np.full((num_perm, n_docs), np.iinfo(np.uint32).max, np.uint32)
    mixed = _fmix32((hashes >> U64(32)).astype(np.uint32))
    nonempty = np.flatnonzero(np.diff(offsets) > 0)
    starts = offsets[nonempty]
    # Cut the documents into blocks of about _BLOCK shingles; a longer document is its own block.
    cuts = np.unique(np.searchsorted(starts, np.arange(0, len(mixed), _BLOCK), side="right") - 1)
    bounds = np.r_[cuts[cuts >= 0], len(nonempty)]
    buf = np.empty((num_perm, 2 * _BLOCK), np.uint32)
    for lo, hi in itertools.pairwise(bounds):
        s0, s1 = starts[lo], offsets[nonempty[hi - 1] + 1]
        block = buf[:, : s1 - s0] if s1 - s0 <= buf.shape[1] else np.empty((num_perm, s1 - s0), np.uint32)
        np.multiply(a[:, None], mixed[None, s0:s1], out=block)
        np.add(block, b[:, None], out=block)
        out[:, nonempty[lo:hi]] = np.minimum.reduceat(block, starts[lo:hi] - s0, axis=1)
    return np.ascontiguousarray(out.T)


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One uint64 key per (document, band): a hash of the band's ``rows`` hash values.

    Two documents share a key exactly when they would share a ``MinHashLSH`` bucket for
    that band (up to 64-bit hash collisions, which verification absorbs).
    """
    keys = np.empty((sigs.shape[0], bands), U64)
    for band in range(bands):
        cols = sigs[:, band * rows : (band + 1) * rows].astype(U64)
        h = np.full(sigs.shape[0], U64(band + 1))
        for j in range(rows):
            h = h * U64(_Q) + cols[:, j] + U64(1)
        keys[:, band] = fmix64(h)
    return keys


# ---------------------------------------------------------------------------- candidates
def candidate_pairs(keys: np.ndarray, *, max_partners: int = 32) -> np.ndarray:
    """Pairs ``(u, v)``, ``u < v``, of documents sharing a bucket in any band.

    Documents are numbered in keep-priority order, so ``u`` is the one that may be kept.
    In a bucket each member is paired with the (at most ``max_partners``) best-ranked
    members before it: all pairs in ordinary buckets, a bounded number in a huge one
    (thousands of template copies), where the best-ranked member is the likely keeper.
    """
    out = [np.zeros((0, 2), np.int64)]
    for band in range(keys.shape[1]):
        order = np.argsort(keys[:, band], kind="stable")
        sorted_keys = keys[order, band]
        start = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        size = np.diff(np.r_[start, len(order)])
        for m in np.unique(size[size > 1]):
            members = order[start[size == m][:, None] + np.arange(m)]  # buckets x m, in rank order
            i, j = _pair_index(int(m), max_partners)
            out.append(np.stack([members[:, i].ravel(), members[:, j].ravel()], axis=1))
    pairs = np.concatenate(out)
    n = max(int(keys.shape[0]), 1)
    codes = np.unique(pairs[:, 0] * n + pairs[:, 1])
    return np.stack([codes // n, codes % n], axis=1)


def _pair_index(m: int, max_partners: int) -> tuple[np.ndarray, np.ndarray]:
    j = np.repeat(np.arange(1, m), np.minimum(np.arange(1, m), max_partners))
    i = np.concatenate([np.arange(min(k, max_partners)) for k in range(1, m)])
    return i, j


# ---------------------------------------------------------------------------- exact Jaccard
def shingle_sets(hashes: np.ndarray, offsets: np.ndarray, *, flagged: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-document sorted, de-duplicated shingle hashes (CSR: values, offsets).

    ``flagged``: values equal but for their lowest bit are one shingle, the smaller value is kept.
    """
    h = np.empty_like(hashes)
    for lo, hi in itertools.pairwise(offsets.tolist()):
        h[lo:hi] = np.sort(hashes[lo:hi])  # small sorts stay in cache: faster than one big sort
    first = np.zeros(len(h), bool)
    first[offsets[:-1][offsets[:-1] < len(h)]] = True
    keep = first.copy()
    keep[1:] |= (h[1:] ^ h[:-1]) > U64(1) if flagged else h[1:] != h[:-1]
    doc = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    return h[keep], np.r_[0, np.cumsum(np.bincount(doc[keep], minlength=len(offsets) - 1))]


def distinct_sorted(hashes: np.ndarray) -> np.ndarray:
    """The sorted distinct values of one document's shingle hashes (cheaper than ``np.unique``)."""
    h = np.sort(hashes)
    keep = np.ones(len(h), bool)
    np.not_equal(h[1:], h[:-1], out=keep[1:])
    return h[keep]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted sets of hashes."""
    if a.size > b.size:
        a, b = b, a
    if a.size == 0:
        return 1.0 if b.size == 0 else 0.0
    pos = np.searchsorted(b, a)
    inter = int(np.count_nonzero(b[np.minimum(pos, b.size - 1)] == a))
    return inter / (a.size + b.size - inter)
