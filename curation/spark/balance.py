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

In file mode (``spark_balance_files``, ``FILE_STAGES["balance"]``) the same numbers come from
the workers reading their units of the stage's input, over the kept rows only; the driver
decides from the ids and the target facet's values, and the workers write the kept and
dropped rows.
"""

from __future__ import annotations

import functools
import hashlib
import io
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
from curation.core.schema import Kind
from curation.core.stage import StageContext, StageResult
from curation.spark import unit_files as uf
from curation.spark.features import prefetch_embeddings
from curation.spark.files import FileStageResult, concat_parquet
from curation.spark.session import arrow_batches, ship, to_polars
from curation.stages.balance import bias_metrics as bm
from curation.stages.balance import representativeness as rep
from curation.stages.balance import stage as bs
from curation.stages.balance.profile import RowProfile, length_summary
from curation.stages.balance.rebalance import rebalance

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

POS = "_tuneprep_pos"
GRAMS_SCHEMA = "n int, gram string, total long"


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
    kernel = functools.partial(_row_kernel, work=_RowNumbers.of(cols, cfg, ctx, ref is not None))
    rows = shipped.mapInArrow(kernel, _rows_ddl(cols, ref is not None)).cache()
    try:
        profile = _aggregate(rows, cols, label, ref is not None)
        profile["distinct"] = _distinct(shipped, ctx.kind)
    finally:
        rows.unpersist()
    if cfg.embeddings:
        _prefetch_sample(spark, kept, ref, cfg, ctx)
    return RowProfile(**profile)


def _rows_ddl(cols: list[str], with_inputs: bool) -> str:
    schema = ", ".join(["pos long, id string", *(f"v{i} string" for i in range(len(cols))), "chars long, tokens long, digest binary"])
    return schema + (", in_chars long, in_tokens long" if with_inputs else "")


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


@dataclass(frozen=True)
class _RowNumbers:
    """What a worker needs to compute the per-row numbers (``_numbers``) of the rows it reads."""

    cols: list[str]
    cfg: bs.BalanceConfig
    kind: Kind
    seed: int
    config_dir: Path
    with_inputs: bool

    @classmethod
    def of(cls, cols: list[str], cfg: bs.BalanceConfig, ctx: StageContext, with_inputs: bool) -> _RowNumbers:
        return cls(cols, cfg, ctx.kind, ctx.seed, ctx.config_dir, with_inputs)

    def kernel(self, frames: Iterator[pl.DataFrame]) -> Iterator[pa.RecordBatch]:
        """In a Python worker: the numbers of each frame, as Arrow batches (heavy engines kept per worker)."""
        from curation.spark.rows import _WORKER_ENGINES

        ctx = StageContext(kind=self.kind, seed=self.seed, config_dir=self.config_dir, engines=_WORKER_ENGINES)
        for frame in frames:
            yield from arrow_batches(_numbers(frame, self.cols, self.cfg, ctx, self.with_inputs))


def _row_kernel(batches: Iterator[pa.RecordBatch], *, work: _RowNumbers) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: the stage's per-row numbers for each shipped blob."""
    return work.kernel(pl.read_ipc(io.BytesIO(blob)) for batch in batches for blob in batch.column(0).to_pylist())


def _numbers(frame: pl.DataFrame, cols: list[str], cfg: bs.BalanceConfig, ctx: StageContext, with_inputs: bool) -> pl.DataFrame:
    """The per-row numbers of ``frame`` (its ``POS`` column: the row's input position)."""
    full = bs._full_text(frame, ctx.kind)
    out = frame.select(pl.col(POS).alias("pos"), "id", *(bs.facet_value(c).alias(f"v{i}") for i, c in enumerate(cols)))
    out = out.with_columns(
        chars=full.str.len_chars().cast(pl.Int64),
        tokens=pl.Series(bs.token_counts(full, cfg, ctx)),
        digest=pl.Series([hashlib.blake2b(t.encode("utf-8"), digest_size=16).digest() for t in full.to_list()], dtype=pl.Binary),
    )
    if with_inputs:
        texts = rep.input_texts(frame)
        out = out.with_columns(in_chars=texts.str.len_chars().cast(pl.Int64), in_tokens=pl.Series(bs.token_counts(texts, cfg, ctx)))
    return out


def _distinct(shipped: DataFrame, kind: Kind) -> dict[str, float | None]:
    """``distinct_n`` of the full texts: distinct words and bigrams per blob, then over all blobs."""
    return _distinct_of(shipped.mapInArrow(functools.partial(_gram_kernel, kind=kind), GRAMS_SCHEMA))


def _distinct_of(grams: DataFrame) -> dict[str, float | None]:
    """``distinct_ratios`` from each piece's distinct grams (``n``, ``gram``) and totals (``gram`` null)."""
    from pyspark.sql import functions as F

    got = to_polars(grams.groupBy("n").agg(F.countDistinct("gram").alias("unique"), F.sum("total").alias("total")))
    per = {n: (int(u), int(t)) for n, u, t in got.iter_rows()}
    (u1, t1), (u2, t2) = per.get(1, (0, 0)), per.get(2, (0, 0))
    return bs.distinct_ratios(t1, u1, t2, u2)


def _gram_kernel(batches: Iterator[pa.RecordBatch], *, kind: Kind) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: a blob's distinct words (n=1) and bigrams (n=2), and one row of totals each."""
    for batch in batches:
        for blob in batch.column(0).to_pylist():
            yield from _grams(pl.read_ipc(io.BytesIO(blob)), kind)


def _grams(frame: pl.DataFrame, kind: Kind) -> Iterator[pa.RecordBatch]:
    words, bigrams = bs.word_grams(bs._full_text(frame, kind))
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


# ---------------------------------------------------------------------------- file mode
def spark_balance_files(
    spark: SparkSession, src: Path, out_dir: Path, cfg: bs.BalanceConfig, ctx: StageContext, *, batch_rows: int
) -> FileStageResult:
    """``spark_balance`` of the Parquet file ``src`` without its rows on the driver (file mode).

    With a ``target`` the driver reads the ``id`` and target facet columns and decides there
    with the local ``rebalance`` (without one every row is kept as it is, and the driver reads
    the ids only for an embedding sample smaller than the rows): each row's ``reason``
    (``rebalance`` for a row ``down`` drops), ``repeat`` (``up``) and ``sample_weight``,
    written as a small file by row.
    The workers read their units of ``src`` (``curation.spark.unit_files``) and that file: the
    kept rows' per-row numbers (as ``spark_profile``, aggregated the same way), their distinct
    words and bigrams, and each unit's kept rows (with the weight columns) and dropped rows
    (with ``reason``) as part files, put together in input order here. The embedding sample
    (at most ``max_embed`` kept rows, seeded as locally) is read here and embedded on the
    cluster. No option needs the whole rows on the driver (``up`` adds a ``repeat`` count, it
    does not copy rows), so this never falls back to the adapter.
    """
    src, out_dir = Path(src).resolve(), Path(out_dir)
    empty = pl.DataFrame(schema=pl.read_parquet_schema(src))
    facets = bs._facets(empty, cfg)
    ref = rep.load_reference(cfg.reference, ctx) if cfg.reference else None
    verdicts, kept_ids, re_stats = _decide(src, empty, cfg, ctx)
    kept_rows = verdicts.filter(pl.col("reason").is_null())[ROW].to_numpy()
    work = out_dir / "_balance_work"  # scratch the workers read and write: a folder of the stage's own
    (work / "parts").mkdir(parents=True, exist_ok=True)
    try:
        verdicts.write_parquet(work / "verdicts.parquet", row_group_size=65_536)  # by row, with statistics: a unit reads its groups only
        units = uf.units_frame(spark, uf.units(src, batch_rows))
        job = _Job(str(src), str(work / "verdicts.parquet"), str(work / "parts"))
        profile = _file_profile(spark, units, job, empty, facets, cfg, ref, ctx) if kept_rows.size else None
        written = _write_parts(units, job, empty, out_dir, ctx.kind, extra=[c for c in EXTRA if c in verdicts.columns])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sample = _sample(src, kept_rows, kept_ids, cfg, ctx) if cfg.embeddings and kept_rows.size else None
    if sample is not None:
        _prefetch_sample(spark, sample, ref, cfg, ctx)
    if profile is None:
        profile = bs.row_profile(empty, facets, cfg, ref, ctx)
    stats, findings, lengths = _describe(profile, int(kept_rows.size), sample, facets, cfg, ref, ctx)
    if re_stats is not None:
        stats["rebalance"] = re_stats
    files = bs.charts(stats, lengths)
    stats["charts"] = sorted(files)
    pl.DataFrame(findings, schema=bs.FINDINGS_SCHEMA).write_parquet(out_dir / "findings.parquet", statistics=False)
    assert written["kept"] == kept_rows.size and written["kept"] + written["dropped"] == verdicts.height, "balance books do not balance"
    return FileStageResult(
        stats=bs._round(stats),
        kept=written["kept"],
        dropped=written["dropped"],
        quarantined=0,
        dropped_by_reason={"rebalance": written["dropped"]} if written["dropped"] else {},
        fidelity=written["fidelity"],
        files=files,
    )


ROW = "_tuneprep_row"
EXTRA = ("repeat", "sample_weight")  # what ``rebalance`` adds to kept rows, in its order


@dataclass(frozen=True)
class _Job:
    src: str  # the stage's input
    verdicts: str  # ROW, reason (null: kept) and the EXTRA columns ``rebalance`` set, by row
    parts: str  # the folder the workers write their parts into


def _decide(
    src: Path, empty: pl.DataFrame, cfg: bs.BalanceConfig, ctx: StageContext
) -> tuple[pl.DataFrame, pl.Series, dict[str, Any] | None]:
    """Each row's verdict (``ROW``, ``reason``, and with a target ``repeat``/``sample_weight``), the kept rows' ids, ``rebalance``'s stats."""
    if cfg.target is None:  # every row kept as it is; the ids only for a seeded sample smaller than the rows
        n = int(pq.ParquetFile(src).metadata.num_rows)
        ids = pl.read_parquet(src, columns=["id"])["id"] if cfg.embeddings and n > cfg.max_embed else pl.Series("id", [], pl.String)
        verdicts = pl.DataFrame({ROW: np.arange(n, dtype=np.int64), "reason": pl.Series("reason", [], pl.String).extend_constant(None, n)})
        return verdicts, ids, None
    if cfg.target.facet not in empty.columns:
        rebalance(empty, cfg.target, ctx.seed)  # raises the local stage's error, which names the columns
    narrow = pl.read_parquet(src, columns=list(dict.fromkeys(["id", cfg.target.facet]))).with_row_index(ROW)
    kept, dropped, re_stats = rebalance(narrow, cfg.target, ctx.seed)
    verdicts = pl.concat(
        [
            kept.select(ROW, pl.lit(None, pl.String).alias("reason"), *[c for c in EXTRA if c in kept.columns]),
            dropped.select(ROW, "reason"),
        ],
        how="diagonal",
    )
    return verdicts.with_columns(pl.col(ROW).cast(pl.Int64)).sort(ROW), kept["id"], re_stats


def _verdicts(job: _Job, start: int, rows: int) -> pl.DataFrame:
    return pl.scan_parquet(job.verdicts).filter(pl.col(ROW).is_between(start, start + rows - 1)).collect().sort(ROW)


def _file_profile(
    spark: SparkSession,
    units: DataFrame,
    job: _Job,
    empty: pl.DataFrame,
    facets: list[str],
    cfg: bs.BalanceConfig,
    ref: rep.Reference | None,
    ctx: StageContext,
) -> RowProfile:
    """``spark_profile`` of the kept rows of ``job.src``, each unit read by a worker."""
    label = cfg.label if cfg.label in empty.columns else None
    cols = list(dict.fromkeys([*facets, *([label] if label else [])]))
    kernel = functools.partial(_unit_kernel, job=job, work=_RowNumbers.of(cols, cfg, ctx, ref is not None))
    rows = units.mapInArrow(kernel, _rows_ddl(cols, ref is not None)).cache()
    try:
        profile = _aggregate(rows, cols, label, ref is not None)
        profile["distinct"] = _distinct_of(units.mapInArrow(functools.partial(_unit_gram_kernel, job=job, kind=ctx.kind), GRAMS_SCHEMA))
    finally:
        rows.unpersist()
    return RowProfile(**profile)


def _kept_of(job: _Job, start: int, rows: int) -> pl.DataFrame:
    """In a worker: the kept rows of a unit, with their input position as ``POS``."""
    frame = uf.read_unit(job.src, start, rows).with_columns(pl.int_range(start, start + rows, dtype=pl.Int64).alias(POS))
    return frame.filter(_verdicts(job, start, rows)["reason"].is_null())


def _unit_kernel(batches: Iterator[pa.RecordBatch], *, job: _Job, work: _RowNumbers) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: the per-row numbers of each unit's kept rows."""
    return work.kernel(_kept_of(job, start, rows) for _, start, rows in uf.unit_rows(batches))


def _unit_gram_kernel(batches: Iterator[pa.RecordBatch], *, job: _Job, kind: Kind) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: each unit's kept rows' distinct words and bigrams, and their totals."""
    for _, start, rows in uf.unit_rows(batches):
        yield from _grams(_kept_of(job, start, rows).drop(POS), kind)


def _split_kernel(batches: Iterator[pa.RecordBatch], *, job: _Job, extra: list[str], fields: list[str]) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: each unit's kept rows (with ``extra``, as ``rebalance`` adds them) and dropped rows
    (with ``reason``) as two part files; per unit the counts and the characters of the kept rows' ``fields``."""
    for unit, start, rows in uf.unit_rows(batches):
        frame, verdicts = uf.read_unit(job.src, start, rows), _verdicts(job, start, rows)
        gone = verdicts["reason"].is_not_null()
        kept = frame.filter(~gone)
        for column in extra:  # one at a time, as ``rebalance`` adds them: an input column of that name is replaced in place
            kept = kept.with_columns(verdicts.filter(~gone)[column])
        frame.filter(gone).with_columns(verdicts.filter(gone)["reason"]).write_parquet(
            f"{job.parts}/dropped-{unit:06d}.parquet", statistics=False
        )
        kept.write_parquet(f"{job.parts}/kept-{unit:06d}.parquet", statistics=False)
        lengths = fidelity._digests(kept, fields).select(pl.sum_horizontal(f"{f}__chars" for f in fields)) if fields else None
        chars = int(lengths.to_series().sum()) if lengths is not None else 0
        yield pa.RecordBatch.from_pylist([{"unit": unit, "kept": kept.height, "dropped": int(gone.sum()), "chars": chars}])


def _write_parts(units: DataFrame, job: _Job, empty: pl.DataFrame, out_dir: Path, kind: Kind, *, extra: list[str]) -> dict[str, Any]:
    """``output.parquet`` and ``dropped.parquet`` from the units' parts, in input order; the counts and ``fidelity``
    (the stage rewrites no text: the kept rows compared, none rewritten)."""
    base = fidelity.measure(empty, empty, kind)
    fields = base["fields"] if base is not None else []
    kernel = functools.partial(_split_kernel, job=job, extra=extra, fields=fields)
    counts = to_polars(units.mapInArrow(kernel, "unit long, kept long, dropped long, chars long")).sort("unit")
    for name, part in (("output.parquet", "kept"), ("dropped.parquet", "dropped")):
        paths = [Path(job.parts) / f"{part}-{u:06d}.parquet" for u in counts["unit"].to_list()]
        concat_parquet(paths, out_dir / name, row_group_size=65_536)
    kept = int(counts["kept"].sum())
    if base is not None:
        base |= {"rows_compared": kept, "chars_compared": int(counts["chars"].sum())}
    return {"kept": kept, "dropped": int(counts["dropped"].sum()), "fidelity": base}


def _sample(src: Path, kept_rows: np.ndarray, kept_ids: pl.Series, cfg: bs.BalanceConfig, ctx: StageContext) -> pl.DataFrame:
    """The kept rows ``embedding_stats`` embeds (``seeded_sample`` over the kept rows' ids), in kept order, read here."""
    rows = kept_rows[rep.seeded_sample(kept_rows.size, cfg.max_embed, ctx.seed, kept_ids)]
    picked = pl.Series(rows, dtype=pl.Int64)
    scan = pl.scan_parquet(src).with_row_index(ROW).filter(pl.col(ROW).cast(pl.Int64).is_in(picked.implode()))
    return scan.collect().sort(ROW).drop(ROW)


def _describe(
    rows: RowProfile,
    n: int,
    sample: pl.DataFrame | None,
    facets: list[str],
    cfg: bs.BalanceConfig,
    ref: rep.Reference | None,
    ctx: StageContext,
) -> tuple[dict[str, Any], list[dict[str, Any]], bs.Lengths]:
    """``bs.describe`` of ``n`` kept rows from their profile, and the embedding sample (at most ``max_embed`` rows, whose
    own seeded sample is all of them)."""
    stats: dict[str, Any] = {"rows": n, "facet_columns": facets, "facets": {}, "undefined": {}}
    findings: list[dict[str, Any]] = []
    for facet in facets:
        stats["facets"][facet], alerts = bs.facet_stats(rows.counts[facet], cfg, facet)
        findings += alerts
    extra = bs._extra_values(facets, ref, cfg.target)
    stats["clarify"] = bs.clarify_from_counts(rows.counts, rows.pairs, facets, cfg.label, extra, str(ctx.kind))
    unit = f"tokenizer:{cfg.tokenizer}" if cfg.tokenizer else "whitespace"
    stats["lengths"], outliers = length_summary(rows.chars, rows.tokens, rows.by_label, unit, rows.outside)
    stats["diversity"] = {**rows.distinct, **bs.duplicate_stats(rows.unique_texts, n, ctx)}
    lengths: bs.Lengths = {"dataset:chars": rows.chars, "dataset:tokens": rows.tokens}
    if ref is not None:
        stats["representativeness"], missing, lengths = bs._compare(rows, ref, facets, cfg, ctx)
        findings += outliers + missing
    else:
        stats["undefined"]["representativeness"] = "no `reference` configured"
        findings += outliers
    if cfg.embeddings and sample is not None:
        stats["embeddings"], lacking = bs.embedding_stats(rep.input_texts(sample), sample["id"], ref, cfg, ctx)
        findings += lacking
    else:
        stats["undefined"]["embeddings"] = "`embeddings` is off" if not cfg.embeddings else "no rows"
    return stats, findings, lengths
