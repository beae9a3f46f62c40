"""The balance stage on Spark: per-row numbers in ``mapInArrow``, their counts and histograms as aggregates.

The stage itself (``curation.stages.balance.stage.balance``) runs on the driver with
``spark_profile`` as its profiler, so the decisions (weights, re-sampling, which runs on
the driver frame as locally), alerts, Clarify, summaries, drift and charts are the local
stage's own code over the same numbers:

1. ``mapInArrow`` per shipped blob: each row's masked facet values, full-text characters
   and tokens (a configured tokenizer is loaded once per Python worker), a 128-bit digest
   of the full text, and with a reference the input text's characters and tokens;
2. ``groupBy`` counts: rows per facet value, per (facet value, label value), per length
   (histograms; the sorted lengths rebuilt from them give the same summaries and fences,
   which only depend on the multiset), distinct digests;
3. the rows outside the IQR fences, filtered on the cluster and sorted by input position;
4. distinct-1/2: each blob's distinct words and bigrams, counted distinct over all blobs;
5. embeddings of the seeded sample (``curation.spark.features``): the Vendi score, coverage,
   density and topics are computed on the driver over that sample (at most ``max_embed``
   rows a side), whose vectors the topics need anyway. A Gram matrix summed from partition
   partials would differ from the local ``X^T X`` in the last bits, so it is not used.
"""

from __future__ import annotations

import functools
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow as pa

from curation.core.schema import Kind
from curation.core.stage import StageContext, StageResult
from curation.spark.features import prefetch_embeddings
from curation.spark.session import arrow_batches, ship, to_polars
from curation.stages.balance import bias_metrics as bm
from curation.stages.balance import representativeness as rep
from curation.stages.balance import stage as bs
from curation.stages.balance.profile import RowProfile

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

POS = "_tuneprep_pos"


def spark_balance(spark: SparkSession, df: pl.DataFrame, cfg: bs.BalanceConfig, ctx: StageContext, *, batch_rows: int) -> StageResult:
    """``balance(df, cfg, ctx)`` with the per-row work and its aggregation on the cluster."""
    profiler = functools.partial(spark_profile, spark, batch_rows=batch_rows)
    return bs.balance(df, cfg, ctx, profiler=profiler)


def spark_profile(
    spark: SparkSession,
    kept: pl.DataFrame,
    facets: list[str],
    cfg: bs.BalanceConfig,
    ref: rep.Reference | None,
    ctx: StageContext,
    *,
    batch_rows: int,
) -> RowProfile:
    """``row_profile(kept, ...)``, computed on the cluster; the embedding sample is embedded there too."""
    if kept.is_empty():
        return bs.row_profile(kept, facets, cfg, ref, ctx)
    label = cfg.label if cfg.label in kept.columns else None
    cols = list(dict.fromkeys([*facets, *([label] if label else [])]))
    shipped = ship(spark, kept.with_row_index(POS).with_columns(pl.col(POS).cast(pl.Int64)), rows=batch_rows)
    kernel = functools.partial(
        _row_kernel, cols=cols, cfg=cfg, kind=ctx.kind, seed=ctx.seed, config_dir=ctx.config_dir, with_inputs=ref is not None
    )
    schema = ", ".join(["pos long, id string", *(f"v{i} string" for i in range(len(cols))), "chars long, tokens long, digest binary"])
    rows = shipped.mapInArrow(kernel, schema + (", in_chars long, in_tokens long" if ref is not None else "")).cache()
    try:
        profile = _aggregate(rows, cols, label, ref is not None)
        profile["distinct"] = _distinct(shipped, ctx.kind)
    finally:
        rows.unpersist()
    if cfg.embeddings:
        _prefetch_sample(spark, kept, ref, cfg, ctx)
    return RowProfile(**profile)


def _aggregate(rows: DataFrame, cols: list[str], label: str | None, with_inputs: bool) -> dict[str, Any]:
    from pyspark.sql import functions as F

    v = {c: f"v{i}" for i, c in enumerate(cols)}
    counts = {c: _value_counts(to_polars(rows.groupBy(v[c]).count())) for c in cols}
    pairs = None
    if label is not None:
        pairs = {f: {(a, b): int(n) for a, b, n in to_polars(rows.groupBy(v[f], v[label]).count()).iter_rows()} for f in cols if f != label}
    chars, tokens = _values(rows, "chars"), _values(rows, "tokens")
    by_label = None
    if label is not None:
        per = {name: to_polars(rows.groupBy(v[label], name).count()) for name in ("chars", "tokens")}
        by_label = {
            c: tuple(_expand(per[n].filter(pl.col(v[label]) == c).select(n, "count")) for n in ("chars", "tokens"))
            for c in bs.top_classes(counts[label])
        }
    outliers = {}
    for name, values in (("chars", chars), ("tokens", tokens)):
        fences = bm.iqr_fences(values)
        if fences is not None:
            low, high = fences
            found = to_polars(rows.where((F.col(name) < low) | (F.col(name) > high)).select("pos", "id", name)).sort("pos")
            outliers[(name, low, high)] = (found["id"].to_list(), found[name].to_numpy())
    inputs = (_values(rows, "in_chars").astype(np.uint32), _values(rows, "in_tokens")) if with_inputs else None
    unique = rows.select("digest").distinct().count()
    return {
        "counts": counts,
        "pairs": pairs,
        "chars": chars,
        "tokens": tokens,
        "by_label": by_label,
        "outside": lambda name, low, high: outliers[(name, low, high)],
        "unique_texts": unique,
        "inputs": inputs,
    }


def _value_counts(table: pl.DataFrame) -> dict[str, int]:
    """``value_counts``' order: by count, then value."""
    table = table.rename({table.columns[0]: "v", "count": "len"}).sort(["len", "v"], descending=[True, False])
    return {k: int(n) for k, n in table.iter_rows()}


def _values(rows: DataFrame, name: str) -> np.ndarray:
    """A per-row number as a sorted array rebuilt from its histogram."""
    return _expand(to_polars(rows.groupBy(name).count()))


def _expand(hist: pl.DataFrame) -> np.ndarray:
    hist = hist.sort(hist.columns[0])
    return np.repeat(hist[hist.columns[0]].to_numpy().astype(np.int64), hist["count"].to_numpy())


def _row_kernel(
    batches: Iterator[pa.RecordBatch],
    *,
    cols: list[str],
    cfg: bs.BalanceConfig,
    kind: Kind,
    seed: int,
    config_dir: Path,
    with_inputs: bool,
) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: the stage's per-row numbers for each shipped blob."""
    from curation.spark.rows import _WORKER_ENGINES

    ctx = StageContext(kind=kind, seed=seed, config_dir=config_dir, engines=_WORKER_ENGINES)
    for batch in batches:
        for blob in batch.column(0).to_pylist():
            frame = pl.read_ipc(io.BytesIO(blob))
            full = bs._full_text(frame, kind)
            out = frame.select(pl.col(POS).alias("pos"), "id", *(bs.facet_value(c).alias(f"v{i}") for i, c in enumerate(cols)))
            out = out.with_columns(
                chars=full.str.len_chars().cast(pl.Int64),
                tokens=pl.Series(bs.token_counts(full, cfg, ctx)),
                digest=pl.Series([hashlib.blake2b(t.encode("utf-8"), digest_size=16).digest() for t in full.to_list()], dtype=pl.Binary),
            )
            if with_inputs:
                texts = rep.input_texts(frame)
                out = out.with_columns(in_chars=texts.str.len_chars().cast(pl.Int64), in_tokens=pl.Series(bs.token_counts(texts, cfg, ctx)))
            yield from arrow_batches(out)


def _distinct(shipped: DataFrame, kind: Kind) -> dict[str, float | None]:
    """``distinct_n`` of the full texts: distinct words and bigrams per blob, then over all blobs."""
    from pyspark.sql import functions as F

    grams = shipped.mapInArrow(functools.partial(_gram_kernel, kind=kind), "n int, gram string, total long")
    got = to_polars(grams.groupBy("n").agg(F.countDistinct("gram").alias("unique"), F.sum("total").alias("total")))
    per = {n: (int(u), int(t)) for n, u, t in got.iter_rows()}
    (u1, t1), (u2, t2) = per.get(1, (0, 0)), per.get(2, (0, 0))
    return bs.distinct_ratios(t1, u1, t2, u2)


def _gram_kernel(batches: Iterator[pa.RecordBatch], *, kind: Kind) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: a blob's distinct words (n=1) and bigrams (n=2), and one row of totals each."""
    for batch in batches:
        for blob in batch.column(0).to_pylist():
            words, bigrams = bs.word_grams(bs._full_text(pl.read_ipc(io.BytesIO(blob)), kind))
            for n, grams in ((1, words.get_column("w")), (2, bigrams.get_column("b"))):
                unique = grams.unique().sort()
                table = pl.DataFrame(
                    {"n": [n] * (len(unique) + 1), "gram": [None, *unique.to_list()], "total": [len(grams), *([0] * len(unique))]},
                    schema={"n": pl.Int32, "gram": pl.String, "total": pl.Int64},
                )
                yield from arrow_batches(table)


def _prefetch_sample(spark: SparkSession, kept: pl.DataFrame, ref: rep.Reference | None, cfg: bs.BalanceConfig, ctx: StageContext) -> None:
    """Embed on the cluster the samples ``embedding_stats`` embeds, in the order it embeds them."""
    inputs = rep.input_texts(kept)
    prefetch_embeddings(spark, inputs.gather(rep.seeded_sample(len(inputs), cfg.max_embed, ctx.seed, kept["id"])).to_list(), ctx)
    if ref is not None:
        prefetch_embeddings(spark, ref.texts.gather(rep.seeded_sample(len(ref.texts), cfg.max_embed, ctx.seed + 1)).to_list(), ctx)
