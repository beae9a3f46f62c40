"""Dedup in bounded memory: the stage's method with band keys and candidate pairs on disk.

``dedup`` takes this path when ``dedup.spill`` is on, or left unset and the input has
``SPILL_ROWS`` rows or more. It gives the in-memory path's findings, computed by the same
functions (``minhash``, ``boilerplate``, ``stage``), while per row only fixed-width
arrays stay in memory (rank order, verdicts, whether a text has shingles): MinHash
signatures, which take 512 bytes a row in memory, are never kept.

1. **Hashing.** The stage's chunks of key texts, in threads with a few in flight, give each
   row's exact key and LSH band keys, written to Parquet files of about ``chunk_rows`` rows
   under a private temporary folder (in the run directory, named like the runner's
   interrupted writes, so a killed run's leftovers are swept; removed when done).
   Boilerplate phrase counts are taken as in the stage.
2. **Exact duplicates.** The exact keys are read back (16 bytes a row) and sorted.
3. **Candidate pairs.** One band at a time, the band keys of the rows left are read back,
   sorted into buckets and paired as ``minhash.candidate_pairs`` pairs them (each member
   with the at most 32 best-ranked members before it); the pairs go to disk, partitioned
   by their second row.
4. **Boilerplate blocks** of the candidates and of the report's sample, ``block_rows`` texts
   at a time, hashed again: a text's blocks depend on it alone (each text is winnowed on its
   own), so any batches give the in-memory path's blocks; no shingles are cached.
5. **Verification**, one partition at a time: its distinct pairs, exact Jaccard (or the
   signatures' estimate, signatures hashed again) in batches of ``verify_pairs``. Only the
   verified edges stay in memory.
6. The keeper rule (``star_clusters``) over the verified edges, and the stage's findings:
   the kept and the dropped rows are filters of the input (sharing its texts, not copies).

Freed memory is handed back to the system after each big step (``malloc_trim``): glibc
keeps freed heap pages, and the steps' temporaries would otherwise add up to the peak.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import polars as pl

from curation.core.stage import StageContext, StageResult
from curation.stages.dedup import boilerplate as bp
from curation.stages.dedup import minhash as mh
from curation.stages.dedup import stage as ds

SPILL_ROWS = 1_000_000  # with `dedup.spill` unset, inputs from this many rows on take this path
MAX_PARTNERS = 32  # minhash.candidate_pairs' default, as the stage calls it
T = TypeVar("T")


@dataclass(frozen=True)
class SpillOptions:
    """Sizes of the pieces held in memory at once (tests make them tiny)."""

    chunk_rows: int = 1 << 18  # rows per file of exact and band keys
    part_rows: int = 1 << 18  # candidate pairs are partitioned by their second row, this many rows a partition
    pair_batch: int = 1 << 22  # candidate pairs built and written at once
    verify_pairs: int = 1 << 17  # candidate pairs verified at once (their shingle sets: ~1 KB a pair)
    block_rows: int = 1 << 16  # rows whose boilerplate blocks are found at once
    directory: Path | None = None  # where the temporary folder goes; default: the run directory, else the system's


def wanted(df: pl.DataFrame, cfg: ds.DedupConfig) -> bool:
    """Whether ``dedup`` takes the bounded-memory path."""
    return cfg.spill if cfg.spill is not None else df.height >= SPILL_ROWS


def dedup(df: pl.DataFrame, cfg: ds.DedupConfig, ctx: StageContext, *, options: SpillOptions | None = None) -> StageResult:
    """``stage.dedup``'s result, computed with signatures and candidate pairs on disk."""
    opts = options or SpillOptions()
    table = _table(df, cfg, ctx)
    quiet = replace(ctx, progress_factory=None)  # the stage's helpers run many times here: one bar per step instead
    with _spill_dir(ctx, opts) as tmp:
        hashed, files = _hash_to_disk(table, cfg, ctx, tmp, opts)
        _release()
        verdicts = _Verdicts.all_kept(len(table.row))
        with ctx.progress("dedup: exact duplicates", None):
            nodes = _exact(files, table.fixed, verdicts) if cfg.exact else np.arange(len(table.row))
        _release()
        near_stats = _near(table, hashed, nodes, files, cfg, ctx, quiet, verdicts, tmp, opts) if cfg.near else {}
        del nodes
    _repoint(verdicts)
    _release()
    result = _result(df, table, verdicts, cfg, near_stats)
    _release()
    if hashed.boiler is not None:
        result = ds._with_boilerplate_blocks(result, df, table, hashed, verdicts, cfg, quiet)
    return result


_REASONS = ("", "exact_duplicate", "near_duplicate")  # the reason codes of ``_Verdicts``


@dataclass
class _Verdicts(ds._Verdicts):
    """``stage._Verdicts`` in narrow arrays (14 bytes a row, not 25): keepers as int32, reasons as ``_REASONS`` codes."""

    @classmethod
    def all_kept(cls, n: int) -> _Verdicts:
        index = np.int32 if n < 2**31 else np.int64
        return cls(np.full(n, -1, index), np.ones(n), np.zeros(n, np.int8), np.zeros(n, bool))

    def remove(self, rows: np.ndarray, keepers: np.ndarray, similarity: np.ndarray | float, reason: str) -> None:
        self.kept_by[rows], self.similarity[rows], self.reason[rows] = keepers, similarity, _REASONS.index(reason)


def _repoint(verdicts: _Verdicts) -> None:
    """``stage._repoint`` on the reason codes: an exact copy of a near-removed row points at that row's keeper."""
    kept_by = verdicts.kept_by
    moved = np.flatnonzero((kept_by >= 0) & (verdicts.reason == _REASONS.index("exact_duplicate")))
    moved = moved[kept_by[kept_by[moved]] >= 0]
    via = kept_by[moved]
    verdicts.remove(moved, kept_by[via], verdicts.similarity[via], "near_duplicate")
    verdicts.discounted[moved] = verdicts.discounted[via]


def _release() -> None:
    """Hand the heap's free pages back to the system after a big step: glibc keeps them (they count in the
    process's RSS), and the steps' numpy temporaries, freed, would add up to the peak. A no-op without glibc."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


@contextmanager
def _spill_dir(ctx: StageContext, opts: SpillOptions) -> Iterator[Path]:
    where = opts.directory or (ctx.run_dir if ctx.run_dir is not None and ctx.run_dir.is_dir() else None)
    path = Path(tempfile.mkdtemp(prefix=".dedup-spill.", suffix=".tmp", dir=where))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------- the rows
class _Gather:
    """A polars Series indexed like the numpy array the stage's ``_Table.ids`` is (``ids[rows]``),
    without a Python string per row held for the whole run."""

    def __init__(self, series: pl.Series) -> None:
        self.series = series

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        return self.series.gather(np.asarray(rows, np.int64)).to_numpy()

    def __len__(self) -> int:
        return self.series.len()


class _Sources:
    """``_Table.source`` from runs of rows: the `against` runs first, then the input."""

    def __init__(self, names: list[str], sizes: list[int]) -> None:
        self.names, self.ends = np.array(names, dtype=object), np.cumsum(sizes)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        return self.names[np.searchsorted(self.ends, np.asarray(rows, np.int64), side="right")]


def _table(df: pl.DataFrame, cfg: ds.DedupConfig, ctx: StageContext) -> ds._Table:
    """``stage._ranked``'s table, with ids and sources gathered on demand."""
    fields = ds.resolve_fields(cfg, ctx.kind, df.columns)
    texts = ds.key_columns(df, fields)
    order = ds._keep_order(df, texts["key"], cfg.keep, ctx)
    ids = df["id"].cast(pl.String)
    if cfg.keep != "first":
        texts, ids = texts[order], ids.gather(order)
    frames, rows, names = [texts.with_columns(id=ids)], [order], ["input"]
    against = [ds.resolve_run(r, ctx) for r in ([cfg.against] if isinstance(cfg.against, str) else cfg.against or [])]
    for run_dir in reversed(against):
        prior = ds._load_against(run_dir, fields)
        frames.insert(0, ds.key_columns(prior, fields).with_columns(id=prior["id"].cast(pl.String)))
        rows.insert(0, np.full(prior.height, -1))
        names.insert(0, run_dir.name)
    table = pl.concat(frames) if len(frames) > 1 else frames[0]
    parts = table.drop("key", "id") if table.width > 2 else None
    row = np.concatenate(rows).astype(np.int64)
    ids_at, sources = cast(np.ndarray, _Gather(table["id"])), cast(np.ndarray, _Sources(names, [len(r) for r in rows]))
    return ds._Table(ids_at, row, table["key"], parts, row < 0, fields, sources, against)


def _result(df: pl.DataFrame, table: ds._Table, verdicts: _Verdicts, cfg: ds.DedupConfig, near_stats: dict[str, Any]) -> StageResult:
    """``stage._result``, with the ids gathered by polars: no Python string per removed row."""
    ids, sources = cast(_Gather, table.ids).series, cast(_Sources, table.source)
    removed = np.flatnonzero(verdicts.kept_by >= 0)
    removed = removed[np.argsort(table.row[removed], kind="stable")]  # input order
    keepers = verdicts.kept_by[removed]
    exact = verdicts.reason[removed] == _REASONS.index("exact_duplicate")  # the only other reason is near_duplicate
    reasons = pl.Series("reason", ["near_duplicate", "exact_duplicate"]).gather(exact.astype(np.int64))
    findings = pl.DataFrame(
        {
            "id": ids.gather(removed),
            "kept_id": ids.gather(keepers),
            "cluster_id": np.unique(keepers, return_inverse=True)[1].astype(np.int64),  # numbered in keeper rank order
            "similarity": verdicts.similarity[removed],
            "reason": reasons,
            "kept_from": pl.Series(sources.names.tolist(), dtype=pl.String).gather(np.searchsorted(sources.ends, keepers, side="right")),
            "boilerplate_discounted": verdicts.discounted[removed],
        },
        schema=ds.FINDINGS_SCHEMA,
    )
    mask = np.ones(df.height, bool)
    mask[table.row[removed]] = False
    keep = pl.Series(mask)
    del mask, removed, keepers, exact
    # ``df[rows]`` would copy the removed texts (190 bytes a row: 1 GB at 20M); a filter, in input order as
    # ``removed`` is, shares them
    dropped = df.filter(~keep).with_columns(reason=reasons)
    stats = ds._stats(findings, table, cfg, near_stats)
    return StageResult(kept=df.filter(keep), dropped=dropped, findings=findings, stats=stats)


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


# ---------------------------------------------------------------------------- 4. boilerplate blocks
def _blocks(
    table: ds._Table, hashed: ds._Hashed, texts: pl.Series, rows: np.ndarray, cfg: ds.DedupConfig, ctx: StageContext, opts: SpillOptions
) -> pl.DataFrame:
    """``stage._find_blocks`` of ``rows`` (ascending) of ``texts`` (the key or a part), ``block_rows`` rows at a time:
    each text's blocks depend on that text alone (``boilerplate._winnow`` samples each text on its own). Each
    piece comes sorted by row and start, and the pieces follow each other: no sort (a copy) of the whole."""
    part_table = table if texts is table.key else replace(table, key=texts)
    step = max(1, opts.block_rows)
    frames = [ds._find_blocks(part_table, hashed, rows[lo : lo + step], cfg, ctx) for lo in range(0, rows.size, step)]
    schema = {"row": pl.Int64, "start": pl.Int64, "end": pl.Int64, "key": pl.UInt64}
    return pl.concat([pl.DataFrame(schema=schema), *frames])


# ---------------------------------------------------------------------------- 5. verification
@dataclass
class _Edges:
    """Verified pairs (table rows), and the counts of the stage's near stats."""

    src: list[np.ndarray]
    dst: list[np.ndarray]
    score: list[np.ndarray]
    discounted: list[np.ndarray]
    candidates: int = 0
    pairs_discounted: int = 0
    kept_apart: int = 0


def _verify(
    table: ds._Table, hashed: ds._Hashed, blocks: list[pl.DataFrame | None], pairs: np.ndarray, cfg: ds.DedupConfig, ctx: StageContext
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``stage._verify_jaccard`` with every part's blocks given (found for all candidates at once)."""
    scores, discounted, whole = np.ones(len(pairs)), np.zeros(len(pairs), bool), np.ones(len(pairs))
    if not len(pairs):
        return scores, discounted, whole
    rows = np.unique(pairs)
    local = np.searchsorted(rows, pairs)
    parts = [table.key] if table.parts is None else [table.parts[name] for name in table.parts.columns]
    for texts, part_blocks in zip(parts, blocks, strict=True):
        full, rare = ds._shingle_sets(texts, rows, {}, cfg, ctx, hashed.boiler, part_blocks)
        if rare is None:
            np.minimum(scores, [mh.jaccard(full[u], full[v]) for u, v in local.tolist()], out=scores)
            continue
        weighted, discount, plain = bp.pair_similarities(full, rare, local, cfg.boilerplate.weight)
        np.minimum(scores, weighted, out=scores)
        discounted |= discount
        np.minimum(whole, plain, out=whole)
    return scores, discounted, (whole if hashed.boiler is not None else scores)


def _signature_scores(table: ds._Table, pairs: np.ndarray, cfg: ds.DedupConfig) -> np.ndarray:
    """The signatures' estimate of each pair's similarity (``verify: minhash``), signatures hashed again."""
    rows = np.unique(pairs)
    m = cfg.minhash
    sigs = mh.signatures(*ds._hashes_of(table.key.gather(rows), cfg), mh.permutations(m.num_perm, m.seed))
    local = np.searchsorted(rows, pairs)
    return (sigs[local[:, 0]] == sigs[local[:, 1]]).mean(axis=1) if len(pairs) else np.zeros(0)


def _verified(
    pairs: _PairFiles,
    table: ds._Table,
    hashed: ds._Hashed,
    blocks: list[pl.DataFrame | None],
    cfg: ds.DedupConfig,
    ctx: StageContext,
    quiet: StageContext,
    opts: SpillOptions,
) -> _Edges:
    edges = _Edges([], [], [], [])
    threshold = cfg.minhash.threshold
    with ctx.progress("dedup: verifying", pairs.parts) as bar:
        for part in range(pairs.parts):
            u, v = pairs.distinct(part)
            edges.candidates += u.size
            for lo in range(0, u.size, opts.verify_pairs):
                batch = np.stack([u[lo : lo + opts.verify_pairs], v[lo : lo + opts.verify_pairs]], axis=1)
                if cfg.minhash.verify == "jaccard":
                    scores, discounted, whole = _verify(table, hashed, blocks, batch, cfg, quiet)
                else:
                    scores, discounted, whole = _signature_scores(table, batch, cfg), np.zeros(len(batch), bool), np.zeros(len(batch))
                ok = scores >= threshold
                edges.pairs_discounted += int(discounted.sum())
                edges.kept_apart += int((discounted & (whole >= threshold) & ~ok).sum())
                edges.src.append(batch[ok, 0])
                edges.dst.append(batch[ok, 1])
                edges.score.append(scores[ok])
                edges.discounted.append(discounted[ok])
            bar.advance(1)
    return edges


# ---------------------------------------------------------------------------- near, end to end
def _joined(pieces: list[np.ndarray], dtype: Any) -> np.ndarray:
    """The pieces concatenated; the list emptied, so that they are freed now."""
    out = np.concatenate([np.zeros(0, dtype), *pieces])
    pieces.clear()
    return out


def _near(
    table: ds._Table,
    hashed: ds._Hashed,
    nodes: np.ndarray,
    files: list[Path],
    cfg: ds.DedupConfig,
    ctx: StageContext,
    quiet: StageContext,
    verdicts: _Verdicts,
    tmp: Path,
    opts: SpillOptions,
) -> dict[str, Any]:
    """``stage._near`` over the spilled band keys: candidates on disk, verified edges in memory, the same keeper rule."""
    bands, rows = cfg.minhash.lsh_params()
    n = len(table.row)
    is_live = np.zeros(n, bool)
    is_live[nodes] = True
    is_live &= hashed.has_shingles
    live = np.flatnonzero(is_live)  # rank order, as the stage's positions among the live nodes
    del is_live
    pairs, candidate = _candidates(files, live, table, cfg, ctx, tmp, opts)
    blocks: list[pl.DataFrame | None] = [None] if table.parts is None else [None] * table.parts.width
    if hashed.boiler is not None:
        hashed.block_sample = live[:: max(1, -(-live.size // ds._BLOCK_SAMPLE))]
        hashed.block_rows = np.union1d(np.flatnonzero(candidate), hashed.block_sample)
        hashed.blocks = _blocks(table, hashed, table.key, hashed.block_rows, cfg, quiet, opts)
        if table.parts is None:
            blocks = [hashed.blocks]
        else:
            cand = np.flatnonzero(candidate)
            blocks = [_blocks(table, hashed, table.parts[name], cand, cfg, quiet, opts) for name in table.parts.columns]
    del candidate
    _release()
    edges = _verified(pairs, table, hashed, blocks, cfg, ctx, quiet, opts)
    del blocks
    _release()
    su, sv = (np.searchsorted(nodes, _joined(got, np.int64)) for got in (edges.src, edges.dst))  # the lists are emptied
    score, discounted = _joined(edges.score, np.float64), _joined(edges.discounted, np.bool_)
    verified = int(su.size)
    keeper, similarity = ds.star_clusters(len(nodes), su, sv, score, table.fixed[nodes])
    del score
    removed = np.flatnonzero(keeper >= 0)
    verdicts.remove(nodes[removed], nodes[keeper[removed]], similarity[removed], "near_duplicate")
    counts: dict[str, Any] = {
        "candidate_pairs": edges.candidates,
        "verified_pairs": verified,
        "rows_without_shingles": int((~hashed.has_shingles[nodes]).sum()),
    }
    if hashed.boiler is not None:
        verdicts.discounted[nodes[removed]] = ds._edge_flags(len(nodes), np.stack([su, sv], axis=1), discounted, keeper[removed], removed)
        counts["boilerplate"] = {
            "pairs_discounted": edges.pairs_discounted,
            "pairs_kept_apart": edges.kept_apart,
            "removed_with_discount": int(verdicts.discounted[nodes[removed]].sum()),
        }
    return {"bands": bands, "rows": rows, **counts}
