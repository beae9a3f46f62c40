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
from curation.spark.session import ship, to_polars, unpack
from curation.stages.dedup import minhash as mh
from curation.stages.dedup import stage as ds

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

MAX_PARTNERS = 32  # minhash.candidate_pairs' default: pairs per bucket member


def spark_dedup(spark: SparkSession, df: pl.DataFrame, cfg: ds.DedupConfig, ctx: StageContext, *, batch_rows: int = 5000) -> StageResult:
    """``dedup(df, cfg, ctx)`` with the hashing, bucketing and verification on the cluster.

    With boilerplate discounting on (the default), the stage runs on the driver: counting
    phrases over all rows has no distributed path yet.
    """
    from pyspark.sql import functions as F

    if ds._boilerplate_on(cfg):
        return ds.dedup(df, cfg, ctx)

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
    schema = "rank long, h1 long, h2 long, live boolean, bands array<long>" + (", sig binary" if with_sigs else "")
    kernel = functools.partial(_hash_kernel, cfg=cfg, bands=bands, rows=rows, with_sigs=with_sigs)
    hashed = texts.select("rank", "key").mapInArrow(kernel, schema).cache()
    try:
        verdicts = ds._Verdicts.all_kept(n)
        nodes, near_input = _exact(hashed, table.fixed, verdicts) if cfg.exact else (np.arange(n), hashed)
        near_stats: dict[str, Any] = {}
        spark_stats: dict[str, Any] = {}
        if cfg.near:
            near_stats, spark_stats = _near(near_input, texts, table, nodes, n_fixed, cfg, verdicts, F)
    finally:
        hashed.unpersist()
    ds._repoint(verdicts)
    result = ds._result(df, table, verdicts, cfg, near_stats)
    return StageResult(kept=result.kept, dropped=result.dropped, findings=result.findings, stats={**result.stats, "spark": spark_stats})


def _hash_kernel(
    batches: Iterator[pa.RecordBatch], *, cfg: ds.DedupConfig, bands: int, rows: int, with_sigs: bool
) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: per text, the exact key, whether it has shingles, its band keys (and signature)."""
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
    hashed: DataFrame, texts: DataFrame, table: Any, nodes: np.ndarray, n_fixed: int, cfg: ds.DedupConfig, verdicts: ds._Verdicts, F: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Near duplicates among ``nodes``: candidate pairs and their scores on the cluster, the keeper rule here."""
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
        scored = _scored(pairs, texts, hashed, table, cfg, F).cache()
        try:
            candidates = scored.count()
            edges = to_polars(scored.where(F.col("score") >= m.threshold)).sort("u", "v")
        finally:
            scored.unpersist()
    finally:
        members.unpersist()
    no_shingles = to_polars(hashed.where(~F.col("live")).select("rank")).height
    su, sv = np.searchsorted(nodes, edges["u"].to_numpy()), np.searchsorted(nodes, edges["v"].to_numpy())
    keeper, similarity = ds.star_clusters(len(nodes), su, sv, edges["score"].to_numpy(), table.fixed[nodes])
    removed = np.flatnonzero(keeper >= 0)
    verdicts.remove(nodes[removed], nodes[keeper[removed]], similarity[removed], "near_duplicate")
    counts = {"candidate_pairs": candidates, "verified_pairs": edges.height, "rows_without_shingles": no_shingles}
    spark_stats = {
        "capped_buckets": int(sizes["capped"][0] or 0),
        "largest_bucket": int(sizes["largest"][0] or 0),
        "max_partners": MAX_PARTNERS,
    }
    return {"bands": bands, "rows": rows, **counts}, spark_stats


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


def _scored(pairs: DataFrame, texts: DataFrame, hashed: DataFrame, table: Any, cfg: ds.DedupConfig, F: Any) -> DataFrame:
    """Each candidate pair with its similarity: exact Jaccard of the texts, or the signatures' estimate."""
    if cfg.minhash.verify == "minhash":
        sides, cols = hashed.select("rank", "sig"), ["sig"]
    else:
        cols = ["key"] if table.parts is None else list(table.parts.columns)
        sides = texts.select("rank", *cols)
    u_side = sides.select(F.col("rank").alias("u"), *[F.col(c).alias(f"u_{c}") for c in cols])
    v_side = sides.select(F.col("rank").alias("v"), *[F.col(c).alias(f"v_{c}") for c in cols])
    joined = pairs.join(u_side, "u").join(v_side, "v").select("u", "v", *[f"{s}_{c}" for c in cols for s in ("u", "v")])
    kernel = functools.partial(_score_kernel, cfg=cfg, cols=cols)
    return joined.mapInArrow(kernel, "u long, v long, score double")


def _sets_of(chunk: pl.Series, cfg: ds.DedupConfig) -> list[np.ndarray]:
    """Each text's sorted distinct shingle hashes, as the local stage verifies pairs without boilerplate discounting."""
    tok = mh.tokenize(chunk, strip_punctuation=cfg.strip_punctuation)
    values, offsets = mh.shingle_sets(*mh.shingle_hashes(tok, cfg.minhash.shingle, cfg.minhash.ngram))
    return np.split(values, offsets[1:-1])


def _score_kernel(batches: Iterator[pa.RecordBatch], *, cfg: ds.DedupConfig, cols: list[str]) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: the local stage's similarity of each pair (the smallest over the parts)."""
    for batch in batches:
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
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
        yield pa.RecordBatch.from_arrays([batch.column(0), batch.column(1), pa.array(scores, pa.float64())], names=["u", "v", "score"])
