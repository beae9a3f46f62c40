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

import dataclasses
import functools
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from curation.core import fidelity
from curation.core.stage import StageContext, StageResult
from curation.spark import boilerplate as sb
from curation.spark import unit_files as uf
from curation.spark.files import FileStageResult
from curation.spark.session import arrow_batches, ship, to_polars, unpack
from curation.stages.dedup import minhash as mh
from curation.stages.dedup import stage as ds

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

MAX_PARTNERS = 32  # minhash.candidate_pairs' default: pairs per bucket member


def spark_dedup(spark: SparkSession, df: pl.DataFrame, cfg: ds.DedupConfig, ctx: StageContext, *, batch_rows: int = 5000) -> StageResult:
    """``dedup(df, cfg, ctx)`` with the hashing, phrase counting, bucketing and verification on the cluster."""
    table = ds._ranked(df, cfg, ctx)
    texts_pl = pl.DataFrame({"rank": np.arange(len(table.ids), dtype=np.int64)}).with_columns(key=table.key)
    if table.parts is not None:
        texts_pl = texts_pl.with_columns(table.parts)
    texts = unpack(ship(spark, texts_pl, rows=batch_rows), _texts_ddl(texts_pl.columns))
    phrases = sb.Phrases.for_table(table, cfg) if ds._boilerplate_on(cfg) else None
    found = _on_cluster(texts, table, cfg, phrases)
    result = ds._result(df, table, found.verdicts, cfg, found.near_stats)
    if found.phrases is not None:
        result = sb.with_blocks(result, df, table, texts, found.verdicts, found.sample, found.live, cfg, ctx, found.phrases, batch_rows)
    return StageResult(
        kept=result.kept, dropped=result.dropped, findings=result.findings, stats={**result.stats, "spark": found.spark_stats}
    )


def spark_dedup_files(
    spark: SparkSession, src: Path, out_dir: Path, cfg: ds.DedupConfig, ctx: StageContext, *, batch_rows: int = 5000
) -> FileStageResult:
    """``spark_dedup`` of the Parquet file ``src`` without its texts on the driver (file mode).

    The workers read their units of ``src``: the keep order's numbers (key lengths, quality), then the key texts for
    hashing, verification and the report's sample; the driver holds ids, ranks and verdicts. ``out_dir`` gets
    ``output.parquet``, ``dropped.parquet`` (written by the workers per unit, put together in input order) and
    ``findings.parquet``. With ``strip_boilerplate`` (the kept texts are rewritten), or no rows, the stage runs on
    the frame read here, as ``spark_dedup``.
    """
    if cfg.strip_boilerplate or not pq.ParquetFile(src).metadata.num_rows:
        return _on_driver(spark, src, out_dir, cfg, ctx, batch_rows)
    ids = pl.read_parquet(src, columns=["id"])["id"]
    empty = pl.DataFrame(schema=pl.read_parquet_schema(src))
    fields = ds.resolve_fields(cfg, ctx.kind, empty.columns)
    keyed = ds.key_columns(empty, fields)  # the key text's columns: ``key``, and ``part0``... with several parts
    work = out_dir / "_dedup_work"  # scratch the workers read and write: a folder of the stage's own
    work.mkdir(parents=True, exist_ok=True)
    try:
        units = uf.units_frame(spark, uf.units(src, batch_rows))
        prior, against = _against(cfg, ctx, fields, keyed)
        order, text_bytes = _keep_order(units, src, fields, prior, cfg, ctx, ids)
        texts = _file_texts(spark, units, src, fields, prior, order, work, batch_rows)
        n_in, n_fixed = ids.len(), prior.height
        row = np.concatenate([np.full(n_fixed, -1), order])
        parts = keyed.drop("key") if keyed.width > 1 else None
        table = ds._Table(
            np.arange(n_fixed + n_in),  # table rows stand in for the ids (``_named``): no Python string per row here
            row,
            pl.Series("key", [], pl.String).extend_constant(None, n_fixed + n_in),  # only the report's sample is read
            parts,
            row < 0,
            fields,
            np.concatenate([prior["source"].to_numpy(), np.full(n_in, "input", object)]),
            against,
        )
        phrases = sb.Phrases.for_sizes(text_bytes, n_fixed + n_in, cfg) if ds._boilerplate_on(cfg) else None
        found = _on_cluster(texts, table, cfg, phrases)
        result = _named(ds._result(pl.DataFrame({"id": ids}), table, found.verdicts, cfg, found.near_stats), prior["id"], ids, order)
        if found.phrases is not None:
            table.key = _sample_texts(spark, texts, sb.report_sample(found.verdicts, table, found.sample), n_fixed + n_in)
            result = sb.report_blocks(result, table, found.verdicts, found.sample, found.live, cfg, ctx, found.phrases)
        removed = np.flatnonzero(found.verdicts.kept_by >= 0)
        drop = pl.DataFrame(
            {"row": row[removed], "reason": found.verdicts.reason[removed].astype(str)}, schema={"row": pl.Int64, "reason": pl.String}
        )
        written = uf.write_parts(units, src, drop.sort("row"), out_dir, work, ctx.kind)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.findings.write_parquet(out_dir / "findings.parquet", statistics=False)
    assert written["kept"] == result.kept.height and written["dropped"] == result.dropped.height, "dedup books do not balance"
    return FileStageResult(
        stats={**result.stats, "spark": found.spark_stats},
        kept=written["kept"],
        dropped=written["dropped"],
        quarantined=0,
        dropped_by_reason=_by_reason(result.dropped),
        fidelity=written["fidelity"],
    )


def _named(result: StageResult, prior: pl.Series, ids: pl.Series, order: np.ndarray) -> StageResult:
    """The findings' ``id`` and ``kept_id`` (table rows, from ``_result`` over row numbers) as the rows' ids."""
    names = pl.concat([prior, ids.gather(order)])
    found = result.findings
    at = {c: names.gather(found[c].cast(pl.Int64)) for c in ("id", "kept_id")}
    return dataclasses.replace(result, findings=found.with_columns(**at))


def _by_reason(dropped: pl.DataFrame) -> dict[str, int]:
    return {r: int(n) for r, n in dropped.group_by("reason").len().sort("reason").iter_rows()}


def _on_driver(spark: SparkSession, src: Path, out_dir: Path, cfg: ds.DedupConfig, ctx: StageContext, batch_rows: int) -> FileStageResult:
    """``spark_dedup_files`` over the frame read here (``strip_boilerplate`` rewrites the kept texts; an empty input)."""
    df = pl.read_parquet(src)
    result = spark_dedup(spark, df, cfg, ctx, batch_rows=batch_rows) if df.height else ds.dedup(df, cfg, ctx)
    for name, frame in (("output.parquet", result.kept), ("dropped.parquet", result.dropped), ("findings.parquet", result.findings)):
        frame.write_parquet(out_dir / name, statistics=False)
    kept, dropped = result.kept.height, result.dropped.height
    fid = fidelity.measure(df, result.kept, ctx.kind)
    return FileStageResult(result.stats, kept, dropped, 0, _by_reason(result.dropped), fid)


def _against(cfg: ds.DedupConfig, ctx: StageContext, fields: list[str], keyed: pl.DataFrame) -> tuple[pl.DataFrame, list[Path]]:
    """The key texts (``key``, parts), ``id`` and ``source`` of the ``against`` runs' rows, first run first, as ``_ranked``."""
    against = [ds.resolve_run(r, ctx) for r in ([cfg.against] if isinstance(cfg.against, str) else cfg.against or [])]
    frames = []
    for run_dir in against:
        prior = ds._load_against(run_dir, fields)
        frames.append(ds.key_columns(prior, fields).with_columns(id=prior["id"].cast(pl.String), source=pl.lit(run_dir.name)))
    if frames:
        return pl.concat(frames), against
    return keyed.with_columns(id=pl.lit(None, pl.String), source=pl.lit(None, pl.String)), against


def _keep_order(
    units: DataFrame, src: Path, fields: list[str], prior: pl.DataFrame, cfg: ds.DedupConfig, ctx: StageContext, ids: pl.Series
) -> tuple[np.ndarray, int]:
    """Input row numbers, best keeper first (``stage._keep_order``), and the key texts' bytes in all (boilerplate's table size).

    The numbers come from the workers: key lengths, and for ``best`` the quality parts."""
    from pyspark.sql import functions as F

    n = ids.len()
    prior_bytes = int(prior["key"].str.len_bytes().sum() or 0)
    if cfg.keep == "first" and not ds._boilerplate_on(cfg):
        return np.arange(n), prior_bytes
    kernel = functools.partial(_sizes_kernel, src=str(src), fields=fields, kind=ctx.kind, best=cfg.keep == "best")
    sizes = units.mapInArrow(kernel, "row long, bytes long, chars long, complete long, response long")
    if cfg.keep == "first":
        return np.arange(n), prior_bytes + int(to_polars(sizes.agg(F.sum("bytes").alias("b")))["b"][0] or 0)
    got = to_polars(sizes).sort("row")
    if cfg.keep == "longest":
        order = got.sort(["chars", "row"], descending=[True, False])["row"].to_numpy()
    else:
        score = got.with_columns(id=ids).join(ds.pii_counts(ctx), on="id", how="left", maintain_order="left")
        score = score.with_columns(pl.col("pii").fill_null(0))
        order = score.sort(["complete", "pii", "response", "row"], descending=[True, False, True, False])["row"].to_numpy()
    return order, prior_bytes + int(got["bytes"].sum())


def _sizes_kernel(batches: Iterator[pa.RecordBatch], *, src: str, fields: list[str], kind: Any, best: bool) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: per row of its units the key text's bytes and characters, and the ``best`` quality parts."""
    for _, start, rows in uf.unit_rows(batches):
        frame = uf.read_unit(src, start, rows, None if best else fields)
        key = ds.key_columns(frame, fields)["key"]
        out = pl.DataFrame({"row": np.arange(start, start + rows, dtype=np.int64)}).with_columns(
            bytes=key.str.len_bytes().cast(pl.Int64), chars=key.str.len_chars().cast(pl.Int64)
        )
        parts = ds.quality(frame, StageContext(kind=kind)) if best else pl.DataFrame({"complete": [0] * rows, "response": [0] * rows})
        yield from arrow_batches(out.with_columns(parts["complete"].cast(pl.Int64), parts["response"].cast(pl.Int64)))


def _file_texts(
    spark: SparkSession, units: DataFrame, src: Path, fields: list[str], prior: pl.DataFrame, order: np.ndarray, work: Path, batch_rows: int
) -> DataFrame:
    """The key texts (``rank``, ``key``, parts) of every table row on the cluster: the input's read by the workers from
    ``src``, the ``against`` rows' shipped from here. A row's rank is its place in the keep order, after the ``against`` rows."""
    n_fixed, ranks_path = prior.height, None
    if not np.array_equal(order, np.arange(len(order))):
        ranks = np.empty(len(order), np.int64)
        ranks[order] = np.arange(n_fixed, n_fixed + len(order))
        ranks_path = str(work / "ranks.npy")
        np.save(ranks_path, ranks)
    columns = ["rank", *prior.drop("id", "source").columns]
    kernel = functools.partial(_texts_kernel, src=str(src), fields=fields, n_fixed=n_fixed, ranks=ranks_path)
    texts = units.mapInArrow(kernel, _texts_ddl(columns))
    if not n_fixed:
        return texts
    shipped = prior.with_row_index("rank").select(pl.col("rank").cast(pl.Int64), *columns[1:])
    return texts.unionByName(unpack(ship(spark, shipped, rows=batch_rows), _texts_ddl(columns)))


def _texts_kernel(
    batches: Iterator[pa.RecordBatch], *, src: str, fields: list[str], n_fixed: int, ranks: str | None
) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: the key texts of its units' rows, with their ranks."""
    rank_of = np.load(ranks, mmap_mode="r") if ranks is not None else None
    for _, start, rows in uf.unit_rows(batches):
        keys = ds.key_columns(uf.read_unit(src, start, rows, fields), fields)
        rank = np.arange(start, start + rows) + n_fixed if rank_of is None else np.asarray(rank_of[start : start + rows])
        yield from arrow_batches(keys.insert_column(0, pl.Series("rank", rank, pl.Int64)))


def _sample_texts(spark: SparkSession, texts: DataFrame, rows: np.ndarray, n: int) -> pl.Series:
    """A key Series of ``n`` table rows holding only the texts of ``rows`` (collected from the cluster), nulls elsewhere."""
    key = pl.Series("key", [], pl.String).extend_constant(None, n)
    if not rows.size:
        return key
    wanted = unpack(ship(spark, pl.DataFrame({"rank": rows.astype(np.int64)}), rows=100_000), "rank long")
    got = to_polars(texts.join(wanted, "rank").select("rank", "key"))
    return key.scatter(got["rank"].to_numpy(), got["key"])


def _texts_ddl(columns: list[str]) -> str:
    return ", ".join(["rank long", *(f"{c} string" for c in columns[1:])])


@dataclass
class _Found:
    """What the cluster decided: every table row's verdict, the near stats, and what the report's blocks need."""

    verdicts: ds._Verdicts
    near_stats: dict[str, Any]
    spark_stats: dict[str, Any]
    sample: np.ndarray  # the rows whose boilerplate blocks the report counts
    live: np.ndarray  # whether each table row has shingles
    phrases: sb.Phrases | None  # with the common slots counted


def _on_cluster(texts: DataFrame, table: ds._Table, cfg: ds.DedupConfig, phrases: sb.Phrases | None) -> _Found:
    """Exact and near duplicates of the ``texts`` (``rank``, ``key``, parts) of ``table``'s rows, decided as locally."""
    from pyspark.sql import functions as F

    n, n_fixed = len(table.ids), int(table.fixed.sum())
    assert table.fixed[:n_fixed].all(), "rows of `against` runs rank first"
    bands, rows = cfg.minhash.lsh_params() if cfg.near else (0, 0)
    with_sigs = cfg.near and cfg.minhash.verify == "minhash"
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
        sample, live = np.zeros(0, np.int64), np.ones(n, bool)
        if cfg.near:
            near_stats, spark_stats, sample, live = _near(near_input, texts, table, nodes, n_fixed, cfg, verdicts, F, phrases)
        ds._repoint(verdicts)
    finally:
        hashed.unpersist()
    return _Found(verdicts, near_stats, spark_stats, sample, live, phrases)


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
