"""Sentence embeddings on Spark, the same vectors as ``curation.embeddings.embed``.

An encoder's floats depend on which texts share a batch (padding lengths), so the cluster
encodes exactly the chunks ``embed`` would encode here (``missing_chunks``: the texts not
yet cached, in key order, 1,024 per chunk), one chunk per task, with the encoder built once
per Python worker. The vectors go into the run's embedding cache on the driver, where
``embed`` then finds them: the stages (balance, label_audit) run unchanged over them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from curation.core.stage import StageContext
from curation.embeddings import DEFAULT_MODEL, embedding_cache, encode_chunk, load_encoder, missing_chunks
from curation.spark.session import to_polars

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def prefetch_embeddings(spark: SparkSession, texts: list[str], ctx: StageContext, *, model: str = DEFAULT_MODEL) -> int:
    """Embed on the cluster the texts ``embed(texts, ctx)`` would embed; returns how many."""
    cache = embedding_cache(ctx, model)
    chunks = missing_chunks(texts, cache)
    if not chunks:
        return 0
    sdf = spark.createDataFrame([(i, [t for _, t in chunk]) for i, chunk in enumerate(chunks)], "chunk long, texts array<string>")
    sdf = sdf.repartition(len(chunks)) if len(chunks) > 1 else sdf
    kernel = functools.partial(_embed_kernel, model=model)
    out = to_polars(sdf.mapInArrow(kernel, "chunk long, dim long, vectors binary"))
    for i, dim, blob in out.iter_rows():
        vectors = np.frombuffer(blob, dtype=np.float32).reshape(-1, dim)
        cache.update(zip([k for k, _ in chunks[i]], vectors, strict=True))
    return sum(len(c) for c in chunks)


def _embed_kernel(batches: Iterator[pa.RecordBatch], *, model: str) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: each chunk's vectors, with the worker's one encoder."""
    from curation.spark.rows import _WORKER_ENGINES

    key = f"encoder:{model}"
    for batch in batches:
        for i, texts in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
            if key not in _WORKER_ENGINES:
                _WORKER_ENGINES[key] = load_encoder(model)
            vectors = encode_chunk(_WORKER_ENGINES[key], texts)
            yield pa.RecordBatch.from_pylist([{"chunk": i, "dim": vectors.shape[1], "vectors": vectors.tobytes()}])
