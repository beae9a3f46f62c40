"""The preferences stage on Spark: rows grouped by prompt, the local stage's kernel per group of prompts.

1. ``mapInArrow`` per shipped blob: each row's prompt key (a digest of the prompt; for
   HH transcripts, of the prompt their split gives; rows without one share the null key),
   and the blob's rows of each key as one Arrow IPC blob;
2. ``repartition`` by that key: every prompt's rows land in one partition;
3. ``mapInArrow`` per partition: its rows back in input order, then the stage's own
   prompt-wise part (``pair_prompts``: aggregation, candidates, similarity, selection, caps);
4. on the driver: the parts concatenated in the local order, the judgement diagnostics
   (position and length bias, annotator skew, which span prompts) over all parts, and the
   stage's own ``finish`` (books, pairs, findings, stats, lineage).

Only the DataFrame API that Spark Connect and PySpark 3.5 share (no ``applyInArrow``, which
grouped data has only from Spark 4.0).
"""

from __future__ import annotations

import functools
import hashlib
import io
from collections.abc import Iterator
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from curation.core.stage import StageContext, StageResult
from curation.spark.session import ipc_bytes, ship, to_polars
from curation.stages.preferences import stage as ps
from curation.stages.preferences.inputs import ROW, Prepared, diagnose
from curation.stages.preferences.transcripts import split_transcripts

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PARTS = ("cands", "members", "drops", "quarantine", "judgements")


def spark_preferences(
    spark: SparkSession, df: pl.DataFrame, cfg: ps.PreferencesConfig, ctx: StageContext, *, batch_rows: int
) -> StageResult:
    """``preferences(df, cfg, ctx)`` with the prompt-wise work on the cluster."""
    form = ps._form(df, ctx)
    rows = df.with_row_index(ROW)
    shipped = ship(spark, rows, rows=batch_rows)
    keyed = shipped.mapInArrow(functools.partial(_key_kernel, cfg=cfg), "key string, data binary")
    grouped = keyed.repartition(max(2, -(-rows.height // batch_rows)), "key")
    kernel = functools.partial(_pair_kernel, form=form, cfg=cfg, seed=ctx.seed)
    out = to_polars(grouped.mapInArrow(kernel, ", ".join(f"{p} binary" for p in PARTS)))
    parts = {p: pl.concat([pl.read_ipc(io.BytesIO(b)) for b in out[p].to_list()], how="vertical") for p in PARTS}
    by, descending = ps.candidate_order()
    cands = parts["cands"].sort(by, descending=descending)
    diagnostics, annotators = diagnose(form, parts["judgements"])
    prep = Prepared(cands, parts["members"], parts["drops"], parts["quarantine"], diagnostics, annotators)
    return ps.finish(df, rows, form, prep, cands, cfg)


def _prompt_key(frame: pl.DataFrame, cfg: ps.PreferencesConfig) -> pl.Series:
    """Each row's prompt as the stage will see it (null when it has none), as a digest."""
    if "prompt" in frame.columns:
        prompts = frame["prompt"].cast(pl.String).to_list()
    else:  # HH transcripts: the prompt is the shared head of `chosen` and `rejected`
        prompts = [_split_prompt(c, r, cfg) for c, r in zip(frame["chosen"].to_list(), frame["rejected"].to_list(), strict=True)]
    digest = [None if p is None else hashlib.blake2b(p.encode("utf-8"), digest_size=16).hexdigest() for p in prompts]
    return pl.Series("key", digest, dtype=pl.String)


def _split_prompt(chosen: str | None, rejected: str | None, cfg: ps.PreferencesConfig) -> str | None:
    if chosen is None or rejected is None:
        return None
    try:
        split = split_transcripts(chosen, rejected, human=cfg.human_marker, assistant=cfg.assistant_marker)
    except ValueError:
        return None
    return None if isinstance(split, str) else split.prompt


def _key_kernel(batches: Iterator[pa.RecordBatch], *, cfg: ps.PreferencesConfig) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: a shipped blob's rows of each prompt key as one blob."""
    for batch in batches:
        for blob in batch.column(0).to_pylist():
            frame = pl.read_ipc(io.BytesIO(blob))
            keyed = frame.with_columns(_prompt_key(frame, cfg).alias("__key"))
            groups = keyed.partition_by("__key", maintain_order=True, as_dict=True)
            yield pa.RecordBatch.from_pylist([{"key": k[0], "data": ipc_bytes(g.drop("__key"))} for k, g in groups.items()])


def _pair_kernel(batches: Iterator[pa.RecordBatch], *, form: str, cfg: ps.PreferencesConfig, seed: int) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: the stage's prompt-wise part over the whole prompts of this partition."""
    blobs = [blob for batch in batches for blob in batch.column(1).to_pylist()]
    if not blobs:
        return
    rows = pl.concat([pl.read_ipc(io.BytesIO(b)) for b in blobs], how="vertical").sort(ROW)
    prep, cands = ps.pair_prompts(rows, form, cfg, seed, diagnose_here=False)
    assert prep.judgements is not None
    frames = {
        "cands": cands,
        "members": prep.members,
        "drops": prep.row_drops,
        "quarantine": prep.quarantine,
        "judgements": prep.judgements,
    }
    yield pa.RecordBatch.from_pylist([{p: ipc_bytes(frames[p]) for p in PARTS}])
