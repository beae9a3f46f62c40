"""The bounded-memory dedup path's keys on disk: steps 1 to 3 of ``spill`` (hashing to Parquet,
exact duplicates by sorting, candidate pairs band by band to partitioned Parquet files)."""

from __future__ import annotations

import os
import shutil
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import polars as pl

from curation.core.stage import StageContext
from curation.stages.dedup import boilerplate as bp
from curation.stages.dedup import minhash as mh
from curation.stages.dedup import stage as ds

if TYPE_CHECKING:
    from curation.stages.dedup.spill import SpillOptions, _Verdicts

MAX_PARTNERS = 32  # minhash.candidate_pairs' default, as the stage calls it
T = TypeVar("T")


# ---------------------------------------------------------------------------- 1. hashing
class _Claims:
    """Which texts are counted for boilerplate: each exact key's first row in rank order.

    ``DocFrequency.claim`` keeps a Python set (about 85 bytes a text: 1.7 GB at 20M); this is
    an open-addressing hash set of the keys' first 64 bits (8 bytes a slot, at most 3/4 full),
    claimed chunk by chunk in rank order: what the stage counts with one hashing thread.
    """

    def __init__(self) -> None:
        self.slots = np.zeros(1 << 16, np.uint64)  # 0: empty (the key 0, an empty text's, is kept apart)
        self.size, self.zero = 0, False

    def claim(self, keys: np.ndarray) -> np.ndarray:
        """Indices of the rows of ``keys`` (n x 2, in rank order) whose key was not claimed before."""
        values, first = np.unique(keys[:, 0], return_index=True)
        return np.sort(first[~self._insert(values)])

    def _insert(self, values: np.ndarray) -> np.ndarray:
        """Add distinct ``values``; whether each was there already."""
        present = np.zeros(values.size, bool)
        zero = values == 0
        if zero.any():
            present[zero], self.zero = self.zero, True
        idx = np.flatnonzero(~zero)
        while 4 * (self.size + idx.size) > 3 * self.slots.size:
            self._grow()
        mask = self.slots.size - 1
        pos = (mh.fmix64(values[idx].copy()) & np.uint64(mask)).astype(np.int64)
        while idx.size:  # linear probing, all pending values a step at a time
            slot = self.slots[pos]
            hit = slot == values[idx]
            present[idx[hit]] = True
            empty = np.flatnonzero((slot == 0) & ~hit)
            winners = empty[np.unique(pos[empty], return_index=True)[1]]  # one value per empty slot
            self.slots[pos[winners]] = values[idx[winners]]
            self.size += winners.size
            done = hit
            done[winners] = True
            moved = ~done & (slot != 0)  # a slot taken by another value: the next one (a loser retries its slot)
            pos[moved] = (pos[moved] + 1) & mask
            idx, pos = idx[~done], pos[~done]
        return present

    def _grow(self) -> None:
        old = self.slots[self.slots != 0]
        self.slots, self.size = np.zeros(2 * self.slots.size, np.uint64), 0
        self._insert(old)


def _bounded_map(fn: Callable[[Any], T], items: list[Any], workers: int) -> Iterator[T]:
    """``fn`` over ``items`` in threads, in order, at most ``2 * workers`` results waiting."""
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[Any] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _hash_to_disk(table: ds._Table, cfg: ds.DedupConfig, ctx: StageContext, tmp: Path, opts: SpillOptions) -> tuple[ds._Hashed, list[Path]]:
    """Exact keys and band keys to Parquet files (``h1``, ``h2``, ``b0``...), in rank order; what else
    ``_hash_all`` gives (whether a text has shingles, boilerplate phrase counts) in memory."""
    m = cfg.minhash
    bands, rows = m.lsh_params() if cfg.near else (0, 0)
    perms = mh.permutations(m.num_perm, m.seed)
    boiler = None
    if ds._boilerplate_on(cfg):
        text_bytes = int(table.key.str.len_bytes().sum() or 0)
        boiler = bp.Boilerplate(cfg.boilerplate, bp.DocFrequency.for_bytes(text_bytes), 1 if cfg.strip_boilerplate else bp.WINDOW)

    def one(span: tuple[int, int]) -> tuple[Any, ...]:
        tok = mh.tokenize(table.key.slice(span[0], span[1] - span[0]), strip_punctuation=cfg.strip_punctuation)
        keys = mh.exact_keys(tok)
        if not cfg.near:
            return keys, np.diff(tok.word_offsets) > 0, np.zeros((len(keys), 0), np.uint64), None
        hashes, offsets = mh.shingle_hashes(tok, m.shingle, m.ngram)
        band = mh.band_keys(mh.signatures(hashes, offsets, perms), bands, rows)
        phrases = None if boiler is None else boiler.phrases(hashes, offsets, boiler.counted)
        return keys, np.diff(offsets) > 0, band, phrases

    bounds = ds.chunk_starts(table.key)
    spans = list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))
    files: list[Path] = []
    has_shingles, buffer, claims = [], [], _Claims()
    workers = cfg.workers or min(os.cpu_count() or 1, 8)
    with ctx.progress("dedup: hashing", table.key.len()) as bar:
        for (lo, hi), (keys, live, band, phrases) in zip(spans, _bounded_map(one, spans, workers), strict=True):
            has_shingles.append(live)
            buffer.append((keys, band))
            if boiler is not None and phrases is not None:  # counted here, in rank order
                fresh = claims.claim(keys)
                boiler.df.add(*boiler.df.chunk_counts(phrases[0], phrases[2], fresh), fresh.size)
            if sum(len(k) for k, _ in buffer) >= opts.chunk_rows or hi == bounds[-1]:
                files.append(_write_keys(tmp / f"keys-{len(files):05d}.parquet", buffer))
                buffer = []
            bar.advance(hi - lo)
    if boiler is not None:
        boiler.finish()
    live_all = np.concatenate(has_shingles) if has_shingles else np.zeros(0, bool)
    empty = np.zeros((0, 0), np.uint64)
    return ds._Hashed(empty, empty, live_all, {}, boiler), files  # no shingle cache: blocks are found from the texts again


def _write_keys(path: Path, buffer: list[tuple[np.ndarray, np.ndarray]]) -> Path:
    keys, band = np.concatenate([k for k, _ in buffer]), np.concatenate([b for _, b in buffer])
    columns = {"h1": keys[:, 0], "h2": keys[:, 1], **{f"b{k}": band[:, k] for k in range(band.shape[1])}}
    pl.DataFrame(columns).write_parquet(path, compression="uncompressed", statistics=False)
    return path


def _column(files: list[Path], *names: str) -> list[np.ndarray]:
    """Columns of the key files, whole (fixed-width: 8 bytes a row each)."""
    if not files:
        return [np.zeros(0, np.uint64) for _ in names]
    frame = pl.scan_parquet(files).select(names).collect()
    return [frame[name].to_numpy() for name in names]


# ---------------------------------------------------------------------------- 2. exact
def _exact(files: list[Path], fixed: np.ndarray, verdicts: _Verdicts) -> np.ndarray:
    """``stage._exact`` by sorting, a sixteenth of the key space at a time: exact duplicates of each key's
    first row; returns the rows left."""
    h1, h2 = _column(files, "h1", "h2")
    slice_of = (h1 >> np.uint64(60)).astype(np.int8)
    is_first = np.zeros(h1.size, bool)
    for p in range(16):
        rows = np.flatnonzero(slice_of == p)  # ascending: rank order
        order = rows[np.lexsort((h2[rows], h1[rows]))]  # stable: each key's rows in rank order
        a, b = h1[order], h2[order]
        new = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])] if order.size else np.zeros(0, bool)
        first = order[np.flatnonzero(new)][np.cumsum(new) - 1]
        is_first[order[new]] = True
        dup = ~new & ~fixed[order]
        verdicts.remove(order[dup], first[dup], 1.0, "exact_duplicate")
    return np.flatnonzero(is_first)


# ---------------------------------------------------------------------------- 3. candidate pairs
def _pair_index(k0: int, k1: int, max_partners: int) -> tuple[np.ndarray, np.ndarray]:
    """``minhash._pair_index`` for the members ``k0 <= k < k1`` of a bucket only (same pairs, same order)."""
    ks = np.arange(k0, k1)
    c = np.minimum(ks, max_partners)
    return np.arange(c.sum()) - np.repeat(np.cumsum(c) - c, c), np.repeat(ks, c)


def _band_pairs(keys: np.ndarray, ranks: np.ndarray, batch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One band of ``minhash.candidate_pairs``: pairs of rows (``ranks``, ascending) sharing a bucket, in pieces."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    start = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]) if keys.size else np.zeros(0, np.int64)
    size = np.diff(np.r_[start, keys.size])
    for m in np.unique(size[size > 1]).tolist():
        first = start[size == m]
        per_bucket = min(m - 1, MAX_PARTNERS) * (m - 1)  # at most
        if per_bucket <= batch:
            i, j = _pair_index(1, m, MAX_PARTNERS)
            step = max(1, batch // max(len(i), 1))
            for lo in range(0, first.size, step):
                members = order[first[lo : lo + step, None] + np.arange(m)]  # buckets x m, rank order
                yield ranks[members[:, i].ravel()], ranks[members[:, j].ravel()]
            continue
        for b in first.tolist():  # a huge bucket (thousands of template copies): in slices of its members
            members = ranks[order[b : b + m]]
            step = max(1, batch // MAX_PARTNERS)
            for k0 in range(1, m, step):
                i, j = _pair_index(k0, min(k0 + step, m), MAX_PARTNERS)
                yield members[i], members[j]


class _PairFiles:
    """Candidate pairs on disk as ``u * n + v`` codes, partitioned by ``v`` (ranges of ``width`` rows)."""

    def __init__(self, root: Path, n: int, width: int) -> None:
        self.root, self.n, self.width = root, n, max(width, 1)
        self.parts = max(1, -(-n // self.width))
        self.written = 0

    def write(self, u: np.ndarray, v: np.ndarray) -> None:
        codes = u.astype(np.int64) * self.n + v
        part = v // self.width
        order = np.argsort(part, kind="stable")
        part, codes = part[order], codes[order]
        cuts = np.flatnonzero(np.r_[True, part[1:] != part[:-1]]) if part.size else np.zeros(0, np.int64)
        for lo, hi in zip(cuts.tolist(), [*cuts[1:].tolist(), part.size], strict=True):
            folder = self.root / f"{int(part[lo]):05d}"
            folder.mkdir(parents=True, exist_ok=True)
            pl.DataFrame({"code": codes[lo:hi]}).write_parquet(
                folder / f"{self.written:06d}.parquet", compression="uncompressed", statistics=False
            )
            self.written += 1

    def distinct(self, part: int) -> tuple[np.ndarray, np.ndarray]:
        """The distinct pairs of one partition, sorted: (u, v)."""
        folder = self.root / f"{part:05d}"
        if not folder.is_dir():
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        codes = np.unique(pl.read_parquet(folder)["code"].to_numpy())
        shutil.rmtree(folder)
        return codes // self.n, codes % self.n


def _candidates(
    files: list[Path], live: np.ndarray, table: ds._Table, cfg: ds.DedupConfig, ctx: StageContext, tmp: Path, opts: SpillOptions
) -> tuple[_PairFiles, np.ndarray]:
    """Every band's candidate pairs of the rows ``live`` to disk; also which rows are in a pair."""
    bands, _ = cfg.minhash.lsh_params()
    n = len(table.row)
    pairs = _PairFiles(tmp / "pairs", n, opts.part_rows)
    candidate = np.zeros(n, bool)
    with ctx.progress("dedup: candidate pairs", bands) as bar:
        for band in range(bands):
            (keys,) = _column(files, f"b{band}")
            keys = keys[live]
            got_u, got_v, held = [], [], 0
            for u, v in _band_pairs(keys, live, opts.pair_batch):
                keep = ~(table.fixed[u] & table.fixed[v])
                got_u.append(u[keep])
                got_v.append(v[keep])
                held += int(keep.sum())
                if held >= opts.pair_batch:
                    _flush(pairs, candidate, got_u, got_v)
                    got_u, got_v, held = [], [], 0
            _flush(pairs, candidate, got_u, got_v)
            bar.advance(1)
    return pairs, candidate


def _flush(pairs: _PairFiles, candidate: np.ndarray, us: list[np.ndarray], vs: list[np.ndarray]) -> None:
    if not us:
        return
    u, v = np.concatenate(us), np.concatenate(vs)
    if u.size:
        candidate[u], candidate[v] = True, True
        pairs.write(u, v)
