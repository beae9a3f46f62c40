"""Is the dataset like the inputs the model will meet? Comparison with a reference sample.

The reference is a file of real inputs (e.g. production traffic), read with
``curation.core.ingest.read_any``. Against it the balance stage measures drift of each
categorical facet (PSI, JS), of lengths (KS), and in embedding space (MiniLM) the
coverage and density of Naeem et al. 2020 and k-means topics: topics the reference has
and the dataset lacks are listed with masked example texts. The same embeddings give
the dataset's Vendi score. Embeddings come from ``curation.embeddings.embed``, which
caches them on the context, so texts label_audit already embedded are not embedded again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curation.core.errors import ConfigError, InputError
from curation.core.masking import EMAIL, URL, mask_example
from curation.core.stage import StageContext
from curation.stages.balance import bias_metrics as bm

NN_K = 5  # neighbours for coverage/density radii (Naeem et al. use k=5)
LACKING_RATIO = 0.25  # a topic is lacking when the dataset has under a quarter of the reference's share
MIN_TOPIC_SHARE = 0.02  # ...and the reference gives it at least this share (ignore stray points)
EXAMPLES_PER_TOPIC = 2
KEYWORDS_PER_TOPIC = 6
KEYWORD_MIN_TEXTS = 3  # a keyword occurs in at least this many texts: no one-off (personal) word becomes a keyword
_HANDLE = re.compile(r"(?<!\w)@\w{1,64}")
_KEYWORD = r"(?u)\b[a-z][a-z'-]{2,}\b"  # lowercase words only: names, codes and numbers never qualify
EXAMPLE_CHARS = 160


def mask_text(text: str, *, limit: int = EXAMPLE_CHARS) -> str:
    """An example text as the report shows it: ``curation.core.masking.mask_example``."""
    return mask_example(text, limit=limit)


def _pii_scrubber(ctx: StageContext) -> Callable[[list[str]], list[str]] | None:
    """The PII stage's text scrubbing with its default rules, when the PII stage exists.

    Default detection options share the analyzer that a default `pii` stage built earlier
    in the run (``ctx.engine``), so nothing is loaded twice.
    """
    try:
        from curation.stages.pii.stage import PiiConfig, scrub_texts
    except ImportError:
        return None
    cfg = PiiConfig.model_validate({})
    return lambda texts: scrub_texts(texts, cfg, ctx)


def mask_examples(texts: list[str], ctx: StageContext) -> tuple[list[str], str]:
    """Example texts masked by the PII stage's rules when available, then by ``mask_text``.

    Returns the masked texts and the name of the masking applied (recorded in stats).
    """
    scrub = _pii_scrubber(ctx) if texts else None
    if scrub is not None:
        return [mask_text(t) for t in scrub(list(texts))], "pii.scrub_texts+regex"
    return [mask_text(t) for t in texts], "regex"


# ---------------------------------------------------------------------------- inputs
def input_text_expr(columns: list[str] | set[str]) -> pl.Expr | None:
    """The column holding the model's input: text, prompt, first user message, or chosen."""
    cols = set(columns)
    if "text" in cols:
        return pl.col("text")
    if "prompt" in cols:
        return pl.col("prompt")
    if "messages" in cols:
        user = pl.element().struct.field("role") == "user"
        return pl.col("messages").list.eval(pl.element().filter(user).struct.field("content")).list.first()
    if "chosen" in cols:
        return pl.col("chosen")
    return None


def input_texts(df: pl.DataFrame) -> pl.Series:
    """The input text of every row as a string series (empty string where missing)."""
    expr = input_text_expr(df.columns)
    if expr is None:
        return pl.Series("input", [""] * df.height, dtype=pl.String)
    return df.select(expr.cast(pl.String).fill_null("").alias("input")).to_series()


@dataclass(frozen=True)
class Reference:
    path: Path
    frame: pl.DataFrame
    texts: pl.Series
    sha256: str


def load_reference(path: str, ctx: StageContext) -> Reference:
    """Read the reference sample; relative paths start at the config file's folder.

    Raises:
        ConfigError: the file does not exist.
        InputError: it cannot be read or has no text column.
    """
    from curation.core.ingest import file_sha256, read_any

    full = Path(path).expanduser()
    full = full if full.is_absolute() else ctx.config_dir / full
    if not full.is_file():
        raise ConfigError(
            f"`balance.reference` file '{full}' not found; give a .jsonl, .parquet or .csv of real inputs (relative paths start at the config file's folder)"
        )
    try:
        frame = read_any(full)
    except (pl.exceptions.PolarsError, ValueError, OSError) as e:
        raise InputError(
            f"cannot read `balance.reference` file '{full.name}': {type(e).__name__}; check that it is valid {full.suffix}"
        ) from None
    if input_text_expr(frame.columns) is None:
        raise InputError(
            f"`balance.reference` file '{full.name}' has no `text`, `prompt`, `messages` or `chosen` column to compare against"
        )
    if frame.is_empty():
        raise InputError(f"`balance.reference` file '{full.name}' has no rows")
    return Reference(full, frame, input_texts(frame), file_sha256(full))


def seeded_sample(n: int, size: int, seed: int, order_key: pl.Series | None = None) -> np.ndarray:
    """Indices of a seeded sample of ``size`` rows out of ``n``, sorted.

    With ``order_key`` (row ids) the sample does not depend on the input's row order.
    """
    if n <= size:
        return np.arange(n)
    keys = np.random.default_rng(seed).random(n)
    if order_key is not None:  # give the i-th smallest id the i-th key
        rank = order_key.rank("ordinal").to_numpy() - 1
        keys = keys[rank]
    return np.sort(np.argpartition(keys, size)[:size])


# ---------------------------------------------------------------------------- facets and lengths
def facet_drift(current: dict[str, int], reference: dict[str, int], *, limit: int = 50) -> dict[str, Any]:
    """PSI and JS of one categorical facet against the reference, with both share tables.

    The metrics use every value; the share tables and value lists keep the ``limit``
    values with the largest combined share (the report's tables stay readable).
    """
    total_c, total_r = max(sum(current.values()), 1), max(sum(reference.values()), 1)
    keys = sorted(set(current) | set(reference), key=lambda k: (-(current.get(k, 0) / total_c + reference.get(k, 0) / total_r), k))[:limit]
    return {
        "PSI": bm.psi(current, reference),
        "JS": bm.js_divergence(current, reference),
        "dataset_shares": {k: current.get(k, 0) / total_c for k in keys},
        "reference_shares": {k: reference.get(k, 0) / total_r for k in keys},
        "only_in_reference": [k for k in keys if current.get(k, 0) == 0],
        "only_in_dataset": [k for k in keys if reference.get(k, 0) == 0],
    }


def length_drift(current: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """Two-sample KS statistic and its asymptotic p-value (scipy) for one length measure."""
    from scipy.stats import ks_2samp

    stat = bm.ks_statistic(current, reference)
    if stat is None:
        return {"KS": None, "p_value": None}
    p = float(ks_2samp(current, reference, method="asymp").pvalue)
    return {"KS": stat, "p_value": p}


# ---------------------------------------------------------------------------- embeddings
def _kmeans(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and centroids of a seeded k-means (k capped at the number of distinct rows)."""
    from sklearn.cluster import KMeans

    k = max(1, min(k, len(np.unique(x.round(5), axis=0))))
    model = KMeans(n_clusters=k, random_state=seed, n_init=4).fit(x)
    return model.labels_, model.cluster_centers_


def _examples(texts: list[str], emb: np.ndarray, centre: np.ndarray) -> list[str]:
    """Distinct reference texts nearest the topic's centre (raw: the caller masks them)."""
    out: list[str] = []
    for i in np.argsort(-(emb @ centre), kind="stable"):
        if texts[i] not in out:
            out.append(texts[i])
        if len(out) == EXAMPLES_PER_TOPIC:
            break
    return out


def topic_keywords(texts: list[str], labels: np.ndarray, k: int) -> list[list[str]]:
    """The words that set each topic apart (class-based TF-IDF over the topic's texts).

    Only lowercase words of 3+ letters that occur in at least KEYWORD_MIN_TEXTS texts, with
    emails, URLs and handles removed first and English stop words skipped: a keyword is a
    word many rows share, never a name or a number from one row.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    cleaned = [_HANDLE.sub(" ", URL.sub(" ", EMAIL.sub(" ", t))) for t in texts]
    vec = CountVectorizer(token_pattern=_KEYWORD, lowercase=False, stop_words="english", min_df=KEYWORD_MIN_TEXTS)
    try:
        counts = vec.fit_transform(cleaned)
    except ValueError:  # no word qualifies (tiny or numeric data)
        return [[] for _ in range(k)]
    per_topic = np.vstack([np.asarray(counts[labels == t].sum(axis=0)).ravel() for t in range(k)]).astype(np.float64)
    tf = per_topic / np.maximum(per_topic.sum(axis=1, keepdims=True), 1.0)
    idf = np.log1p(per_topic.sum(axis=1).mean() / np.maximum(per_topic.sum(axis=0), 1.0))
    scores, vocab = tf * idf, vec.get_feature_names_out()
    return [[str(vocab[i]) for i in np.argsort(-scores[t], kind="stable")[:KEYWORDS_PER_TOPIC] if scores[t, i] > 0] for t in range(k)]


def topics(
    ds_emb: np.ndarray, ref_emb: np.ndarray | None, ref_texts: list[str], *, k: int, seed: int, ds_texts: list[str] | None = None
) -> list[dict[str, Any]]:
    """k-means topics over dataset (+ reference) embeddings, with each side's share, keywords and examples.

    A topic is ``lacking`` when the reference gives it at least MIN_TOPIC_SHARE and the
    dataset under LACKING_RATIO of the reference's share. Every topic carries ``keywords``
    (see ``topic_keywords``) and, given ``ds_texts``, ``examples``: the texts nearest its
    centre, from the reference for a lacking topic, else from the dataset. Examples are
    still raw here: ``embedding_metrics`` masks them before they reach stats.
    """
    both = ds_emb if ref_emb is None else np.concatenate([ds_emb, ref_emb])
    labels, centres = _kmeans(both, k, seed)
    ds_lab, ref_lab = labels[: len(ds_emb)], labels[len(ds_emb) :]
    keywords = topic_keywords([*(ds_texts or []), *ref_texts], labels if ds_texts is not None else ref_lab, len(centres))
    out = []
    for t in range(len(centres)):
        ds_share = float((ds_lab == t).mean()) if len(ds_lab) else 0.0
        row: dict[str, Any] = {"topic": t, "dataset_share": ds_share, "keywords": keywords[t], "examples": []}
        centre = centres[t] / max(np.linalg.norm(centres[t]), 1e-12)
        lacking = False
        if ref_emb is not None:
            ref_share = float((ref_lab == t).mean())
            lacking = ref_share >= MIN_TOPIC_SHARE and ds_share < LACKING_RATIO * ref_share
            row.update(reference_share=ref_share, lacking=lacking)
        side, emb, lab = (ref_texts, ref_emb, ref_lab) if lacking else (ds_texts, ds_emb, ds_lab)
        if side and emb is not None:
            members = np.flatnonzero(lab == t)
            row["examples"] = _examples([side[i] for i in members], emb[members], centre)
        out.append(row)
    return out


def embedding_metrics(ds_texts: list[str], ref_texts: list[str] | None, *, k_topics: int, seed: int, ctx: StageContext) -> dict[str, Any]:
    """Vendi score, coverage/density against the reference, and topics.

    ``ds_texts`` and ``ref_texts`` are the (already sampled) texts to embed.
    """
    from curation.embeddings import embed

    ds_emb = embed(ds_texts, ctx)
    out: dict[str, Any] = {"vendi": bm.vendi_score(ds_emb), "embedded": {"dataset": len(ds_texts)}, "undefined": {}}
    ref_emb = None
    if ref_texts is not None:
        ref_emb = embed(ref_texts, ctx)
        out["embedded"]["reference"] = len(ref_texts)
        out["reference_vendi"] = bm.vendi_score(ref_emb)
        # Duplicate reference texts would shrink k-NN radii to 0: count each text once.
        distinct = np.fromiter({t: i for i, t in reversed(list(enumerate(ref_texts)))}.values(), dtype=np.int64)
        real = ref_emb[np.sort(distinct)]
        if len(real) > NN_K and len(ds_emb):
            out.update(bm.coverage_density(real, ds_emb, NN_K), k=NN_K, reference_distinct=len(real))
        else:
            out.update(coverage=None, density=None)
            out["undefined"]["coverage"] = f"needs more than {NN_K} distinct reference texts and at least one dataset row"
    out["topics"] = topics(ds_emb, ref_emb, ref_texts or [], k=k_topics, seed=seed, ds_texts=ds_texts) if len(ds_emb) else []
    out["lacking_topics"] = [t["topic"] for t in out["topics"] if t.get("lacking")]
    raw = [e for t in out["topics"] for e in t.get("examples", [])]
    masked, out["examples_masked_by"] = mask_examples(raw, ctx)
    for t in (t for t in out["topics"] if "examples" in t):  # each topic gets its own back, masked
        n = len(t["examples"])
        t["examples"], masked = list(dict.fromkeys(masked[:n])), masked[n:]
    return out
