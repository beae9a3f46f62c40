"""Boilerplate-aware dedup on Spark: the local stage's phrase counts, blocks and weighted comparison.

The local stage (``curation.stages.dedup.boilerplate``) counts the winnowed phrases of every
distinct text in a hashed table of saturating counters, calls a phrase common when its
counter reaches ``min_df``, and finds each text's blocks from its common phrases. All of it
depends on one text at a time (winnowing is per text), except the counts. So:

1. The hashing kernel gives each text its distinct counter slots (``slot_lists``): the
   slots the local table would add one to for that text.
2. ``common_slots``: per exact key (its first 64 bits, as ``DocFrequency.claim``) the
   best-ranked row's slots, exploded, ``groupBy(slot).count()``: the local table's
   counters exactly, collisions included (a counter counts the distinct texts with a phrase
   in its slot). The slots reaching ``min_df`` come to the driver (few: the boilerplate
   phrases) and travel back to the workers inside the kernels' arguments.
3. Profiles, blocks and the weighted Jaccard of each candidate pair in ``mapInArrow``
   (``pair_scores``), with a table that knows only the common slots (``CommonSlots``).
4. The report's blocks (of at most 2,000 sampled kept rows) on the driver, with the local
   stage's code; with ``strip_boilerplate`` the kept rows' exact blocks on the cluster, the
   frequent ones chosen by ``groupBy(key)``, the stripping on the driver.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa

from curation.core.errors import ConfigError
from curation.core.stage import StageContext, StageResult
from curation.spark.session import ship, to_polars, unpack
from curation.stages.dedup import boilerplate as bp
from curation.stages.dedup import minhash as mh
from curation.stages.dedup import stage as ds

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


@dataclass(frozen=True)
class Phrases:
    """What a worker needs to count phrases or find blocks as the local stage does."""

    cfg: bp.BoilerplateConfig
    bits: int  # the local table's size: 2**bits counters
    most: int  # a counter's largest value (255 or 65,535)
    counted: int  # phrases counted while hashing: winnowed over this many (1 with ``strip_boilerplate``)
    common: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))  # sorted slots reaching ``min_df``
    min_df: int = 0
    documents: int = 0  # distinct texts

    @classmethod
    def for_table(cls, table: ds._Table, cfg: ds.DedupConfig) -> Phrases:
        """The local stage's table for this corpus (``Boilerplate.for_corpus``; its counters are never touched here)."""
        return cls.for_sizes(int(table.key.str.len_bytes().sum() or 0), table.key.len(), cfg)

    @classmethod
    def for_sizes(cls, text_bytes: int, texts: int, cfg: ds.DedupConfig) -> Phrases:
        """``for_table`` of ``texts`` key texts of ``text_bytes`` bytes in all."""
        freq = bp.DocFrequency.for_bytes(text_bytes, bp._threshold(cfg.boilerplate, texts))
        return cls(cfg.boilerplate, int(freq.mask).bit_length(), freq.most, 1 if cfg.strip_boilerplate else bp.WINDOW)

    def boiler(self, window: int = bp.WINDOW) -> bp.Boilerplate:
        """A ``Boilerplate`` that finds the local stage's blocks (``window`` 1: exact edges, for stripping)."""
        out = bp.Boilerplate(self.cfg, CommonSlots(self), counted=self.counted, window=window)
        out.min_df, out.any_common = self.min_df, bool(self.common.size)
        return out


class CommonSlots(bp.DocFrequency):
    """``DocFrequency`` reduced to what finding blocks asks of it: is a phrase's counter at ``min_df`` or more."""

    def __init__(self, phrases: Phrases) -> None:  # no table: the common slots alone
        self.mask = np.uint64((1 << phrases.bits) - 1)
        self.most, self.documents = phrases.most, phrases.documents
        self.table = np.zeros(0, np.uint16)
        self._common = phrases.common

    def count(self, hashes: np.ndarray) -> np.ndarray:
        slots = ((hashes >> np.uint64(24)) & self.mask).astype(np.int64)
        at = np.minimum(np.searchsorted(self._common, slots), max(self._common.size - 1, 0))
        found = self._common[at] == slots if self._common.size else np.zeros(slots.size, bool)
        return np.where(found, self.most, 0)


def slot_lists(hashes: np.ndarray, offsets: np.ndarray, phrases: Phrases) -> pa.ListArray:
    """Per text its distinct counter slots: those ``DocFrequency.chunk_counts`` adds one to when the text is counted."""
    found, _, phrase_offsets = phrases.boiler().phrases(hashes, offsets, phrases.counted)
    slots = (found >> np.uint64(24)) & np.uint64((1 << phrases.bits) - 1)
    values, set_offsets = mh.shingle_sets(slots, phrase_offsets)
    return pa.ListArray.from_arrays(pa.array(set_offsets.astype(np.int32)), pa.array(values.astype(np.int32)))


def common_slots(hashed: DataFrame, phrases: Phrases) -> Phrases:
    """The counts of the local table, on the cluster: ``phrases`` with its common slots, ``min_df`` and distinct texts."""
    from pyspark.sql import functions as F

    firsts = hashed.groupBy("h1").agg(F.min_by("slots", "rank").alias("slots"))  # each distinct text once, as `claim`
    documents = firsts.count()
    min_df = min(bp._threshold(phrases.cfg, documents), phrases.most)
    counts = firsts.select(F.explode("slots").alias("slot")).groupBy("slot").count()
    common = to_polars(counts.where(F.col("count") >= min_df).select("slot"))["slot"].to_numpy().astype(np.int64)
    return dataclasses.replace(phrases, common=np.sort(common), min_df=min_df, documents=documents)


def pair_scores(frame: pl.DataFrame, cols: list[str], cfg: ds.DedupConfig, phrases: Phrases) -> tuple[np.ndarray, ...]:
    """``stage._verify_jaccard`` of the pairs of ``frame`` (``u_<col>``, ``v_<col>`` texts): similarities, discounted, whole."""
    boiler, n = phrases.boiler(), frame.height
    scores, discounted, whole = np.ones(n), np.zeros(n, bool), np.ones(n)
    if not n:
        return scores, discounted, whole
    pairs = np.c_[np.arange(n), np.arange(n, 2 * n)]
    for c in cols:
        profiles, blocked = boiler.profiles(*ds._hashes_of(pl.concat([frame[f"u_{c}"], frame[f"v_{c}"]]), cfg))
        weighted, discount, plain = bp.pair_similarities(profiles, blocked, pairs, cfg.boilerplate.weight)
        np.minimum(scores, weighted, out=scores)
        discounted |= discount
        np.minimum(whole, plain, out=whole)
    return scores, discounted, whole


def _blocks_kernel(batches: Iterator[pa.RecordBatch], *, cfg: ds.DedupConfig, phrases: Phrases, window: int) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: the boilerplate blocks of each (``rank``, ``key``) text."""
    boiler = phrases.boiler(window)
    for batch in batches:
        doc, start, end, key = boiler.blocks(*ds._hashes_of(pl.Series(batch.column(1)), cfg))
        rank = batch.column(0).to_numpy()[doc]
        arrays = [pa.array(rank, pa.int64()), pa.array(start, pa.int64()), pa.array(end, pa.int64()), pa.array(key.view(np.int64))]
        yield pa.RecordBatch.from_arrays(arrays, names=["rank", "start", "end", "key"])


def with_blocks(
    result: StageResult,
    df: pl.DataFrame,
    table: ds._Table,
    texts: DataFrame,
    verdicts: ds._Verdicts,
    block_sample: np.ndarray,
    live: np.ndarray,
    cfg: ds.DedupConfig,
    ctx: StageContext,
    phrases: Phrases,
    batch_rows: int,
) -> StageResult:
    """``stage._with_boilerplate_blocks``: the kept rows' frequent blocks in the stats, and with ``strip_boilerplate``
    stripped from their text (``live``: whether each table row has shingles)."""
    out = report_blocks(result, table, verdicts, block_sample, live, cfg, ctx, phrases)
    kept = np.flatnonzero((verdicts.kept_by < 0) & ~table.fixed)
    if not cfg.strip_boilerplate:
        return out
    if len(table.fields) != 1 or df.schema[table.fields[0]] != pl.String:
        raise ConfigError(f"`dedup.strip_boilerplate` needs one text field to strip; the dedup fields are {', '.join(table.fields)}")
    found_all = _frequent_exact_blocks(texts, kept[live[kept]], cfg, phrases, batch_rows)
    at = np.searchsorted(np.sort(table.row[kept]), table.row[found_all["rank"].to_numpy()])  # the rows' places in `kept`
    found_all = found_all.select(pl.Series("row", at, pl.Int64), "start", "end")
    kept_frame, stripped, skipped = bp.strip_column(out.kept, table.fields[0], found_all, **ds._word_options(cfg))
    stats = {**out.stats, "boilerplate": {**out.stats["boilerplate"], "stripped_rows": stripped, "strip_skipped_rows": skipped}}
    return dataclasses.replace(out, kept=kept_frame, stats=stats)


def report_sample(verdicts: ds._Verdicts, table: ds._Table, block_sample: np.ndarray) -> np.ndarray:
    """The kept rows of ``block_sample``: the rows whose blocks the report counts (their key texts are all it reads)."""
    return np.intersect1d(block_sample, np.flatnonzero((verdicts.kept_by < 0) & ~table.fixed))


def report_blocks(
    result: StageResult,
    table: ds._Table,
    verdicts: ds._Verdicts,
    block_sample: np.ndarray,
    live: np.ndarray,
    cfg: ds.DedupConfig,
    ctx: StageContext,
    phrases: Phrases,
) -> StageResult:
    """``stage._with_boilerplate_blocks`` without stripping: the kept rows' frequent blocks in the stats, found here
    in the key texts of the ``report_sample`` rows (``table.key`` needs no other text)."""
    sample = report_sample(verdicts, table, block_sample)
    boiler = phrases.boiler()
    hashed = ds._Hashed(np.zeros((0, 2), np.uint64), np.zeros((0, 0), np.uint32), live, {}, boiler)
    hashed.blocks, hashed.block_sample, hashed.block_rows = _driver_blocks(table.key, sample, boiler, cfg), block_sample, sample
    unstripped = cfg.model_copy(update={"strip_boilerplate": False})
    return ds._with_boilerplate_blocks(result, result.kept.clear(), table, hashed, verdicts, unstripped, ctx)


def _driver_blocks(texts: pl.Series, rows: np.ndarray, boiler: bp.Boilerplate, cfg: ds.DedupConfig) -> pl.DataFrame:
    """``stage._find_blocks`` of a few rows (the report's sample), here: a text's blocks depend on it alone."""
    schema = {"row": pl.Int64, "start": pl.Int64, "end": pl.Int64, "key": pl.UInt64}
    if not rows.size or not boiler.any_common:
        return pl.DataFrame(schema=schema)
    doc, start, end, key = boiler.blocks(*ds._hashes_of(texts.gather(rows), cfg))
    return pl.DataFrame({"row": rows[doc], "start": start, "end": end, "key": key}, schema=schema).sort("row", "start")


def _frequent_exact_blocks(texts: DataFrame, rows: np.ndarray, cfg: ds.DedupConfig, phrases: Phrases, batch_rows: int) -> pl.DataFrame:
    """The exact-edged blocks (``rank``, ``start``, ``end``) of ``rows`` whose key is in ``min_df`` of them or more
    (``frequent_blocks``), found on the cluster."""
    from pyspark.sql import functions as F

    empty = pl.DataFrame(schema={"rank": pl.Int64, "start": pl.Int64, "end": pl.Int64})
    if not rows.size or not phrases.common.size:
        return empty
    spark = texts.sparkSession
    wanted = unpack(ship(spark, pl.DataFrame({"rank": rows.astype(np.int64)}), rows=max(batch_rows, 100_000)), "rank long")
    kernel = functools.partial(_blocks_kernel, cfg=cfg, phrases=phrases, window=1)
    blocks = texts.join(wanted, "rank").select("rank", "key").mapInArrow(kernel, "rank long, start long, end long, key long").cache()
    try:
        frequent = blocks.groupBy("key").agg(F.countDistinct("rank").alias("docs")).where(F.col("docs") >= phrases.min_df).select("key")
        return to_polars(blocks.join(frequent, "key").select("rank", "start", "end")).cast(empty.schema)  # type: ignore[arg-type]
    finally:
        blocks.unpersist()


def rows_of_sample(live_nodes: np.ndarray) -> np.ndarray:
    """The rows whose blocks the report counts: ``stage._near``'s even sample of the live rows left after exact dedup."""
    return live_nodes[:: max(1, -(-live_nodes.size // ds._BLOCK_SAMPLE))]
