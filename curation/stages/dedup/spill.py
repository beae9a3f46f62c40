"""Dedup in bounded memory: the stage's method with band keys and candidate pairs on disk.

``dedup`` takes this path when ``dedup.spill`` is on, or left unset and the input has
``SPILL_ROWS`` rows or more. It gives the in-memory path's findings, computed by the same
functions (``minhash``, ``boilerplate``, ``stage``), while per row only fixed-width
arrays stay in memory (rank order, verdicts, whether a text has shingles): MinHash
signatures, which take 512 bytes a row in memory, are never kept.

Steps 1 to 3 are in ``spill_keys``.

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
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl

from curation.core.stage import StageContext, StageResult
from curation.stages.dedup import minhash as mh
from curation.stages.dedup import stage as ds
from curation.stages.dedup.spill_keys import _candidates, _exact, _hash_to_disk, _PairFiles

SPILL_ROWS = 1_000_000  # with `dedup.spill` unset, inputs from this many rows on take this path


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
                    scores, discounted, whole = ds._verify_jaccard(table, hashed, batch, cfg, quiet, part_blocks=blocks)
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
