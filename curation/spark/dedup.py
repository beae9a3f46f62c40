"""The dedup stage on Spark, giving the local stage's verdicts exactly.

The driver builds the key texts in keep-priority order (``_ranked``: ``against`` runs
first, then the input ranked by the keep policy); each row's rank is its position there.
On the cluster, with the same functions as the local stage (``curation.stages.dedup.minhash``):

1. ``mapInArrow``: exact keys (128 bits), MinHash signatures and their LSH band keys;
2. exact duplicates: ``groupBy`` the exact key, the lowest rank is the group's first row;
3. candidate pairs: ``posexplode`` the band keys, ``groupBy`` bucket, each member paired with
   the (at most 32) best-ranked members before it, as ``minhash.candidate_pairs`` does;
   buckets that hit the cap are counted in ``stats["spark"]["capped_buckets"]``;
4. verification: each pair joined with both texts, exact Jaccard in ``mapInArrow``.

With boilerplate discounting (the default), the hashing kernel also gives each text's phrase
counter slots, the common phrases are counted by ``groupBy`` and the verification is the
weighted Jaccard around each text's blocks (``curation.spark.boilerplate``).

Only the exact duplicates' ranks and the verified edges come back; the keeper rule
(``star_clusters``, no chaining) and the findings are the local stage's own code.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow as pa

from curation.core.stage import StageContext, StageResult
from curation.spark import boilerplate as sb
from curation.spark.session import ship, to_polars, unpack
from curation.stages.dedup import minhash as mh
from curation.stages.dedup import stage as ds

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

MAX_PARTNERS = 32  # minhash.candidate_pairs' default: pairs per bucket member


def spark_dedup(spark: SparkSession, df: pl.DataFrame, cfg: ds.DedupConfig, ctx: StageContext, *, batch_rows: int = 5000) -> StageResult:
    """``dedup(df, cfg, ctx)`` with the hashing, phrase counting, bucketing and verification on the cluster."""
    from pyspark.sql import functions as F

    table = ds._ranked(df, cfg, ctx)
    n, n_fixed = len(table.ids), int(table.fixed.sum())
    assert table.fixed[:n_fixed].all(), "rows of `against` runs rank first"
    texts_pl = pl.DataFrame({"rank": np.arange(n, dtype=np.int64)}).with_columns(key=table.key)
    if table.parts is not None:
        texts_pl = texts_pl.with_columns(table.parts)
    ddl = ", ".join(["rank long", *(f"{c} string" for c in texts_pl.columns[1:])])
    texts = unpack(ship(spark, texts_pl, rows=batch_rows), ddl)
    bands, rows = cfg.minhash.lsh_params() if cfg.near else (0, 0)
    with_sigs = cfg.near and cfg.minhash.verify == "minhash"
    phrases = sb.Phrases.for_table(table, cfg) if ds._boilerplate_on(cfg) else None
    schema = "rank long, h1 long, h2 long, live boolean, bands array<long>" + (", sig binary" if with_sigs else "")
    schema += ", slots array<int>" if phrases is not None else ""
    kernel = functools.partial(_hash_kernel, cfg=cfg, bands=bands, rows=rows, with_sigs=with_sigs, phrases=phrases)
    hashed = texts.select("rank", "key").mapInArrow(kernel, schema).cache()
    try:
        phrases = sb.common_slots(hashed, phrases) if phrases is not None else None
        verdicts = ds._Verdicts.all_kept(n)
        nodes, near_input = _exact(hashed, table.fixed, verdicts) if cfg.exact else (np.arange(n), hashed)
        near_stats: dict[str, Any] = {}
        spark_stats: dict[str, Any] = {}
        if cfg.near:
            near_stats, spark_stats, sample, live = _near(near_input, texts, table, nodes, n_fixed, cfg, verdicts, F, phrases)
        ds._repoint(verdicts)
        result = ds._result(df, table, verdicts, cfg, near_stats)
        if phrases is not None:
            result = sb.with_blocks(result, df, table, texts, verdicts, sample, live, cfg, ctx, phrases, batch_rows)
    finally:
        hashed.unpersist()
    return StageResult(kept=result.kept, dropped=result.dropped, findings=result.findings, stats={**result.stats, "spark": spark_stats})


def _hash_kernel(
    batches: Iterator[pa.RecordBatch], *, cfg: ds.DedupConfig, bands: int, rows: int, with_sigs: bool, phrases: sb.Phrases | None = None
) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: per text, the exact key, whether it has shingles, its band keys (and signature, and
    with ``phrases`` its phrase counter slots)."""
    m = cfg.minhash
    perms = mh.permutations(m.num_perm, m.seed)
    for batch in batches:
        tok = mh.tokenize(pl.Series(batch.column(1)), strip_punctuation=cfg.strip_punctuation)
        keys = mh.exact_keys(tok).view(np.int64)
        if cfg.near:
            hashes, offsets = mh.shingle_hashes(tok, m.shingle, m.ngram)
            sigs = mh.signatures(hashes, offsets, perms)
            live, band = np.diff(offsets) > 0, mh.band_keys(sigs, bands, rows).view(np.int64)
        else:
            live, band = np.diff(tok.word_offsets) > 0, np.zeros((batch.num_rows, 0), np.int64)
            sigs = np.zeros((batch.num_rows, 0), np.uint32)
        band_lists = pa.ListArray.from_arrays(pa.array(np.arange(batch.num_rows + 1, dtype=np.int32) * band.shape[1]), band.ravel())
        arrays = [batch.column(0), pa.array(keys[:, 0]), pa.array(keys[:, 1]), pa.array(live), band_lists]
        names = ["rank", "h1", "h2", "live", "bands"]
        if with_sigs:
            arrays.append(pa.array([row.tobytes() for row in sigs], pa.binary()))
            names.append("sig")
        if phrases is not None:
            arrays.append(sb.slot_lists(hashes, offsets, phrases))
            names.append("slots")
        yield pa.RecordBatch.from_arrays(arrays, names=names)


def _exact(hashed: DataFrame, fixed: np.ndarray, verdicts: ds._Verdicts) -> tuple[np.ndarray, DataFrame]:
    """Mark exact duplicates of each group's first row; the rows left for near dedup (ranks, and on the cluster)."""
    from pyspark.sql import functions as F

    first = hashed.groupBy("h1", "h2").agg(F.min("rank").alias("first"))
    later = hashed.join(first, ["h1", "h2"]).where(F.col("rank") != F.col("first")).select("rank", "first")
    got = to_polars(later)
    rank, keeper = got["rank"].to_numpy(), got["first"].to_numpy()
    removable = ~fixed[rank]
    verdicts.remove(rank[removable], keeper[removable], 1.0, "exact_duplicate")
    firsts = np.ones(len(fixed), bool)
    firsts[rank] = False
    return np.flatnonzero(firsts), hashed.join(later.select("rank"), "rank", "left_anti")


def _near(
    hashed: DataFrame,
    texts: DataFrame,
    table: Any,
    nodes: np.ndarray,
    n_fixed: int,
    cfg: ds.DedupConfig,
    verdicts: ds._Verdicts,
    F: Any,
    phrases: sb.Phrases | None = None,
) -> tuple[dict[str, Any], dict[str, Any], np.ndarray, np.ndarray]:
    """Near duplicates among ``nodes``: candidate pairs and their scores on the cluster, the keeper rule here.

    Also returns the rows whose boilerplate blocks the report counts, and whether each table row has shingles."""
    m = cfg.minhash
    bands, rows = m.lsh_params()
    members = (
        hashed.where("live")
        .select("rank", F.posexplode("bands").alias("band", "bucket"))
        .groupBy("band", "bucket")
        .agg(F.sort_array(F.collect_list("rank")).alias("members"))
        .where(F.size("members") > 1)
        .select("members")
        .cache()
    )
    try:
        sizes = to_polars(
            members.agg(
                F.sum((F.size("members") > MAX_PARTNERS + 1).cast("long")).alias("capped"), F.max(F.size("members")).alias("largest")
            )
        )
        pairs = members.mapInArrow(_pair_kernel, "u long, v long").distinct().where(F.col("v") >= n_fixed)
        scored = _scored(pairs, texts, hashed, table, cfg, F, phrases).cache()
        try:
            ok, apart = F.col("score") >= m.threshold, F.col("discounted") & (F.col("whole") >= m.threshold)
            counted = scored.agg(
                F.count(F.lit(1)).alias("candidates"),
                F.sum(F.col("discounted").cast("long")).alias("discounted"),
                F.sum((apart & ~ok).cast("long")).alias("apart"),
            )
            totals = to_polars(counted).row(0, named=True)
            candidates = int(totals["candidates"])
            edges = to_polars(scored.where(ok).select("u", "v", "score", "discounted")).sort("u", "v")
        finally:
            scored.unpersist()
    finally:
        members.unpersist()
    dead = to_polars(hashed.where(~F.col("live")).select("rank"))["rank"].to_numpy()
    no_shingles = dead.size
    live = np.ones(len(table.ids), bool)
    live[dead] = False  # the rows exact dedup removed are not looked at (`hashed` is what it left)
    su, sv = np.searchsorted(nodes, edges["u"].to_numpy()), np.searchsorted(nodes, edges["v"].to_numpy())
    keeper, similarity = ds.star_clusters(len(nodes), su, sv, edges["score"].to_numpy(), table.fixed[nodes])
    removed = np.flatnonzero(keeper >= 0)
    verdicts.remove(nodes[removed], nodes[keeper[removed]], similarity[removed], "near_duplicate")
    counts: dict[str, Any] = {"candidate_pairs": candidates, "verified_pairs": edges.height, "rows_without_shingles": no_shingles}
    if phrases is not None:
        flags = edges["discounted"].to_numpy()
        verdicts.discounted[nodes[removed]] = ds._edge_flags(len(nodes), np.c_[su, sv], flags, keeper[removed], removed)
        counts["boilerplate"] = {
            "pairs_discounted": int(totals["discounted"] or 0),
            "pairs_kept_apart": int(totals["apart"] or 0),
            "removed_with_discount": int(verdicts.discounted[nodes[removed]].sum()),
        }
    spark_stats = {
        "capped_buckets": int(sizes["capped"][0] or 0),
        "largest_bucket": int(sizes["largest"][0] or 0),
        "max_partners": MAX_PARTNERS,
    }
    return {"bands": bands, "rows": rows, **counts}, spark_stats, sb.rows_of_sample(nodes[live[nodes]]), live


def _pair_kernel(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: a bucket's members (rank order) paired as ``minhash.candidate_pairs`` pairs them."""
    for batch in batches:
        u, v = [], []
        for members in batch.column(0).to_pylist():
            ranks = np.asarray(members, np.int64)
            i, j = mh._pair_index(len(ranks), MAX_PARTNERS)
            u.append(ranks[i])
            v.append(ranks[j])
        flat_u = np.concatenate(u) if u else np.zeros(0, np.int64)
        flat_v = np.concatenate(v) if v else np.zeros(0, np.int64)
        yield pa.RecordBatch.from_arrays([pa.array(flat_u), pa.array(flat_v)], names=["u", "v"])


def _scored(
    pairs: DataFrame, texts: DataFrame, hashed: DataFrame, table: Any, cfg: ds.DedupConfig, F: Any, phrases: sb.Phrases | None = None
) -> DataFrame:
    """Each candidate pair with its similarity: exact Jaccard of the texts (weighted around boilerplate with ``phrases``),
    or the signatures' estimate; whether boilerplate was discounted, and the plain Jaccard of the whole texts."""
    if cfg.minhash.verify == "minhash":
        sides, cols = hashed.select("rank", "sig"), ["sig"]
    else:
        cols = ["key"] if table.parts is None else list(table.parts.columns)
        sides = texts.select("rank", *cols)
    u_side = sides.select(F.col("rank").alias("u"), *[F.col(c).alias(f"u_{c}") for c in cols])
    v_side = sides.select(F.col("rank").alias("v"), *[F.col(c).alias(f"v_{c}") for c in cols])
    joined = pairs.join(u_side, "u").join(v_side, "v").select("u", "v", *[f"{s}_{c}" for c in cols for s in ("u", "v")])
    kernel = functools.partial(_score_kernel, cfg=cfg, cols=cols, phrases=phrases)
    return joined.mapInArrow(kernel, "u long, v long, score double, discounted boolean, whole double")


def _sets_of(chunk: pl.Series, cfg: ds.DedupConfig) -> list[np.ndarray]:
    """Each text's sorted distinct shingle hashes, as the local stage verifies pairs without boilerplate discounting."""
    tok = mh.tokenize(chunk, strip_punctuation=cfg.strip_punctuation)
    values, offsets = mh.shingle_sets(*mh.shingle_hashes(tok, cfg.minhash.shingle, cfg.minhash.ngram))
    return np.split(values, offsets[1:-1])


def _score_kernel(
    batches: Iterator[pa.RecordBatch], *, cfg: ds.DedupConfig, cols: list[str], phrases: sb.Phrases | None = None
) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: the local stage's similarity of each pair (the smallest over the parts)."""
    for batch in batches:
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        if phrases is not None:
            scores, discounted, whole = sb.pair_scores(frame, cols, cfg, phrases)
            arrays = [pa.array(scores, pa.float64()), pa.array(discounted), pa.array(whole, pa.float64())]
            yield pa.RecordBatch.from_arrays([batch.column(0), batch.column(1), *arrays], names=["u", "v", "score", "discounted", "whole"])
            continue
        scores = np.ones(frame.height)
        for c in cols:
            if c == "sig":
                k = cfg.minhash.num_perm
                a = np.frombuffer(b"".join(frame["u_sig"].to_list()), np.uint32).reshape(-1, k)
                b = np.frombuffer(b"".join(frame["v_sig"].to_list()), np.uint32).reshape(-1, k)
                scores = (a == b).mean(axis=1) if frame.height else scores
                continue
            left, right = _sets_of(frame[f"u_{c}"], cfg), _sets_of(frame[f"v_{c}"], cfg)
            np.minimum(scores, [mh.jaccard(x, y) for x, y in zip(left, right, strict=True)], out=scores)
        arrays = [pa.array(scores, pa.float64()), pa.array(np.zeros(frame.height, bool)), pa.array(scores, pa.float64())]
        yield pa.RecordBatch.from_arrays([batch.column(0), batch.column(1), *arrays], names=["u", "v", "score", "discounted", "whole"])
