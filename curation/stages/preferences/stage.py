"""The `preferences` stage: human feedback (`ratings`) in, audited preference pairs out.

Ratings, rankings, multi-aspect scores, pairwise choices or HH-style transcripts from
several annotators become ``prompt, chosen, rejected`` pairs with their ``margin``,
``n_annotators`` and ``agreement`` (the `preference` kind, which DPO reads as is).
Judgements are aggregated per response (scores) or per judged pair (comparisons);
every candidate pair then gets a status: ``tie``, ``identical_responses`` (equal after
case/space folding, or character 5-gram Jaccard at or above ``near_duplicate``),
``below_min_margin``, ``low_agreement``, or valid. The strategy picks among the valid
ones and ``max_pairs_per_prompt`` caps them.

This stage changes the record kind, so its books count input rows: every row feeds at
least one output pair (``stats["rows_used"]``), or is dropped with the reason that kept
its response(s) out of every pair, or is quarantined. ``lineage.parquet`` maps each
pair to the input rows behind it.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any, Literal

import polars as pl
from pydantic import Field, field_validator

from curation.core.errors import SchemaError
from curation.core.options import Strict
from curation.core.schema import FORMS, MESSAGE, detect_form
from curation.core.stage import StageContext, StageResult
from curation.stages.preferences.inputs import EPS, KEY, ROW, Aggregate, Prepared, prepare_comparisons, prepare_scores
from curation.stages.preferences.stats import distribution, rate
from curation.stages.preferences.transcripts import ASSISTANT, HUMAN, prompt_messages

Strategy = Literal["best_vs_worst", "best_vs_random", "all_pairs"]
OutputFormat = Literal["standard", "conversational"]
OUTPUT = ["id", "prompt", "chosen", "rejected", "margin", "n_annotators", "agreement"]
# Why a candidate or row did not make it, from furthest to nearest to being used.
STATUS_ORDER = ["tie", "identical_responses", "below_min_margin", "low_agreement", "not_paired", "pair_cap", "used"]
_SHINGLE = 5  # characters per shingle for the near-identical test


class PreferencesConfig(Strict):
    strategy: Strategy = "best_vs_worst"  # scores input only; every judged pair is a candidate in comparisons
    aggregate: Aggregate = "mean"  # across annotators: mean, median, or majority (mode of scores / net vote)
    aspects: dict[str, float] = Field(default_factory=dict)  # aspect column -> weight; score = weighted mean
    min_margin: float = Field(0.0, ge=0)  # pairs closer than this are dropped (score units; 0-1 for comparisons)
    max_pairs_per_prompt: int | None = Field(None, ge=1)  # widest margins first; None = no cap
    min_agreement: float = Field(0.0, ge=0, le=1)  # 0 keeps contested pairs (they are still reported)
    near_duplicate: float = Field(0.9, gt=0, le=1)  # 5-gram Jaccard at or above -> identical_responses
    format: OutputFormat = "standard"  # standard strings feed DPO and the checks; conversational = message lists
    human_marker: str = Field(HUMAN, min_length=1)  # HH transcripts: marker of a user turn
    assistant_marker: str = Field(ASSISTANT, min_length=1)  # HH transcripts: marker of an assistant turn

    @field_validator("aspects")
    @classmethod
    def _positive_weights(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [f"`{k}`={w}" for k, w in v.items() if not w > 0]
        if bad:
            raise ValueError(f"aspect weights must be positive numbers, got {', '.join(bad)}")
        reserved = sorted(set(v) & {"id", "prompt", "response", "annotator", "rank"})
        if reserved:
            raise ValueError(f"aspects must be numeric rating columns, not {', '.join(f'`{k}`' for k in reserved)}")
        return v


# ---------------------------------------------------------------------------- candidates
def pair_id(prompt: str, chosen: str, rejected: str) -> str:
    """Stable pair id: the first 16 hex digits of the SHA-256 of ``[prompt, chosen, rejected]``."""
    payload = json.dumps([prompt, chosen, rejected], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())


def _shingles(folded: str) -> frozenset[str]:
    return frozenset(folded[i : i + _SHINGLE] for i in range(max(1, len(folded) - _SHINGLE + 1)))


def similarity(a: str, b: str, cache: dict[str, str] | None = None, *, floor: float = 0.0) -> float:
    """1.0 for texts equal after case and whitespace folding, else character 5-gram Jaccard.

    Texts whose folded lengths differ by more than ``floor`` allows are not compared
    shingle by shingle: their length ratio is returned (below ``floor``), which keeps the
    cost to the few candidates of similar length. ``cache`` holds folded texts.
    """
    memo = {} if cache is None else cache
    for t in (a, b):
        if t not in memo:
            memo[t] = _fold(t)
    fa, fb = memo[a], memo[b]
    if fa == fb:
        return 1.0
    ratio = min(len(fa), len(fb)) / max(len(fa), len(fb), 1)
    if ratio < floor:
        return ratio
    sa, sb = _shingles(fa), _shingles(fb)
    return len(sa & sb) / len(sa | sb)


def _annotate(cands: pl.DataFrame, first_row: pl.DataFrame, cfg: PreferencesConfig) -> pl.DataFrame:
    """Ids, prompt order, similarity and the pre-selection status of every candidate."""
    triples = list(zip(cands["prompt"], cands["chosen"], cands["rejected"], strict=True))
    ids = [pair_id(*t) for t in triples]
    cache: dict[str, str] = {}
    sims = [
        similarity(c, r, cache, floor=cfg.near_duplicate) if m > EPS else None
        for (_, c, r), m in zip(triples, cands["margin"], strict=True)
    ]
    cands = cands.with_columns(id=pl.Series(ids, dtype=pl.String), similarity=pl.Series(sims, dtype=pl.Float64))
    status = (
        pl.when(pl.col("margin") <= EPS)
        .then(pl.lit("tie"))
        .when(pl.col("similarity") >= cfg.near_duplicate)
        .then(pl.lit("identical_responses"))
        .when(pl.col("margin") < cfg.min_margin - EPS)
        .then(pl.lit("below_min_margin"))
        .when(pl.col("agreement") < cfg.min_agreement - EPS)
        .then(pl.lit("low_agreement"))
        .otherwise(pl.lit("valid"))
    )
    cands = cands.join(first_row, on="prompt").with_columns(status=status)
    by, descending = candidate_order()
    return cands.sort(by, descending=descending)


def _seeded_key(seed: int) -> pl.Expr:
    # Hash of (seed, pair id): the same pick whatever the row order, a new one per seed.
    return pl.col("id").map_elements(lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest(), return_dtype=pl.String)


def _pick(cands: pl.DataFrame, strategy: Strategy | None, seed: int) -> pl.Series:
    """True for the valid candidates the strategy chooses (None: every valid one)."""
    valid = cands.filter(pl.col("status") == "valid")
    if strategy == "best_vs_worst":  # candidates are sorted by margin, widest first
        chosen_ids = valid.group_by("prompt", maintain_order=True).first()["id"]
    elif strategy == "best_vs_random":
        top = valid.filter(pl.col("chosen_score") >= pl.col("chosen_score").max().over("prompt") - EPS)
        chosen_ids = top.with_columns(key=_seeded_key(seed)).sort("key").group_by("prompt").first()["id"]
    else:
        chosen_ids = valid["id"]
    return cands["id"].is_in(chosen_ids.implode())


def _select(cands: pl.DataFrame, strategy: Strategy | None, cap: int | None, seed: int) -> pl.DataFrame:
    picked = _pick(cands, strategy, seed)
    cands = cands.with_columns(picked=picked)
    rank = pl.col("picked").cast(pl.Int64).cum_sum().over("prompt")
    over_cap = pl.col("picked") & (rank > cap) if cap is not None else pl.lit(False)
    status = (
        pl.when(over_cap)
        .then(pl.lit("pair_cap"))
        .when(pl.col("picked"))
        .then(pl.lit("used"))
        .when(pl.col("status") == "valid")
        .then(pl.lit("not_paired"))
    )
    return cands.with_columns(status=status.otherwise("status")).drop("picked")


# ---------------------------------------------------------------------------- books
def _row_reasons(rows: pl.DataFrame, prep: Prepared, cands: pl.DataFrame) -> pl.DataFrame:
    """``__row, reason`` for every input row; reason null means the row feeds a pair."""
    rank = pl.col("status").replace_strict(STATUS_ORDER, list(range(len(STATUS_ORDER))), return_dtype=pl.Int64)
    fed = prep.members.join(cands.select(*KEY, rank.alias("rank")), on=KEY)
    best = fed.group_by(ROW).agg(pl.col("rank").max())
    reason = pl.col("rank").replace_strict(list(range(len(STATUS_ORDER))), [*STATUS_ORDER[:-1], None], return_dtype=pl.String)
    paired = best.select(ROW, reason.alias("reason"))
    early = pl.concat([prep.row_drops, prep.quarantine.select(ROW, reason=pl.lit("quarantined"))])
    out = rows.select(ROW).join(pl.concat([paired, early]), on=ROW, how="left")
    # Rows that feed no candidate: their prompt has no other response.
    unexplained = pl.col("reason").is_null() & ~pl.col(ROW).is_in(best[ROW].implode())
    return out.with_columns(reason=pl.when(unexplained).then(pl.lit("single_response")).otherwise("reason"))


def _lineage(prep: Prepared, cands: pl.DataFrame, rows: pl.DataFrame) -> bytes:
    used = cands.filter(pl.col("status") == "used").select("id", *KEY)
    table = prep.members.join(used, on=KEY).join(rows.select(ROW, pl.col("id").alias("row_id")), on=ROW)
    buf = io.BytesIO()
    table.select(pl.col("id").alias("pair_id"), "row_id", "role").sort("pair_id", "row_id", "role").write_parquet(buf, statistics=False)
    return buf.getvalue()


# ---------------------------------------------------------------------------- output
def to_conversational(pairs: pl.DataFrame, *, hh_prompts: bool, human: str = HUMAN, assistant: str = ASSISTANT) -> pl.DataFrame:
    """Standard pairs -> conversational: ``prompt`` as messages, replies as one assistant message each."""
    messages = pl.List(MESSAGE)
    if hh_prompts:
        prompts = [prompt_messages(p, human=human, assistant=assistant) for p in pairs["prompt"]]
    else:
        prompts = [[{"role": "user", "content": p}] for p in pairs["prompt"]]
    replies = {
        c: pl.Series(c, [[{"role": "assistant", "content": t.strip()}] for t in pairs[c]], dtype=messages) for c in ("chosen", "rejected")
    }
    return pairs.with_columns(pl.Series("prompt", prompts, dtype=messages), *replies.values())


def _output(cands: pl.DataFrame) -> pl.DataFrame:
    used = cands.filter(pl.col("status") == "used")
    types = {"margin": pl.Float64, "n_annotators": pl.Int64, "agreement": pl.Float64}
    return used.select(
        "id",
        "prompt",
        "chosen",
        "rejected",
        *[pl.col(c).cast(t).round(9) if t == pl.Float64 else pl.col(c).cast(t) for c, t in types.items()],
    )


def _findings(cands: pl.DataFrame, annotators: pl.DataFrame) -> pl.DataFrame:
    rejected = cands.filter(~pl.col("status").is_in(["used", "not_paired"]))
    prompt_id = pl.col("prompt").map_elements(lambda p: hashlib.sha256(p.encode("utf-8")).hexdigest()[:16], return_dtype=pl.String)
    pairs = rejected.select(
        finding=pl.lit("pair_rejected"), key="id", prompt_id=prompt_id, reason="status", margin=pl.col("margin").round(9),
        agreement=pl.col("agreement").round(9), n=pl.col("n_annotators").cast(pl.Int64), similarity=pl.col("similarity").round(6), skew=pl.lit(None, pl.Float64),
    )  # fmt: skip
    people = annotators.select(
        finding=pl.lit("annotator_skew"), key="annotator", prompt_id=pl.lit(None, pl.String), reason=pl.lit(None, pl.String), margin=pl.lit(None, pl.Float64),
        agreement=pl.lit(None, pl.Float64), n="n", similarity=pl.lit(None, pl.Float64), skew="skew",
    )  # fmt: skip
    return pl.concat([pairs, people])


def _stats(
    kept: pl.DataFrame, cands: pl.DataFrame, prep: Prepared, reasons: pl.DataFrame, form: str, cfg: PreferencesConfig
) -> dict[str, Any]:
    lengths = kept.select(c=pl.col("chosen").str.len_chars(), r=pl.col("rejected").str.len_chars())
    decided = lengths.filter(pl.col("c") != pl.col("r"))
    per_prompt = cands.filter(pl.col("status") != "identical_responses").group_by("prompt").agg(pl.col("agreement").mean())
    statuses = cands.group_by("status").len().sort("status")
    return {
        "form": form,
        "strategy": cfg.strategy if form == "scores" else "every_judged_pair",
        "aggregate": cfg.aggregate,
        "rows_used": int(reasons["reason"].is_null().sum()),
        "pairs": kept.height,
        "prompts_with_candidates": cands["prompt"].n_unique() if not cands.is_empty() else 0,
        "prompts_with_pairs": kept["prompt"].n_unique() if not kept.is_empty() else 0,
        "candidates": {s: int(n) for s, n in statuses.iter_rows()},
        "length": {
            "chosen_longer_rate": rate(decided["c"] > decided["r"]),
            "pairs_with_unequal_length": decided.height,
            **{k: v for k, v in prep.diagnostics.items() if k.startswith("judged")},
        },
        **{k: v for k, v in prep.diagnostics.items() if not k.startswith("judged")},
        "margin": distribution(kept["margin"]),
        "agreement": {**distribution(kept["agreement"]), "unanimous_rate": rate(kept["agreement"] >= 1 - EPS)},
        "prompt_agreement": {**distribution(per_prompt["agreement"]), "contested_prompts": int((per_prompt["agreement"] < 0.75).sum())},
    }


# ---------------------------------------------------------------------------- stage
def _form(df: pl.DataFrame, ctx: StageContext) -> str:
    if ctx.kind not in ("ratings", "preference"):
        raise SchemaError(f"the `preferences` stage needs `input.kind: ratings` (or preference), got `{ctx.kind}`")
    form = detect_form(ctx.kind, df.columns)
    missing = [c for c in form.required if c not in df.columns]
    if missing:
        options = "; ".join(", ".join(f.required) for f in FORMS["ratings"])
        raise SchemaError(f"`preferences` input lacks column(s) {', '.join(f'`{c}`' for c in missing)}; ratings need one of: {options}")
    return form.name


def preferences(df: pl.DataFrame, cfg: PreferencesConfig, ctx: StageContext) -> StageResult:
    """Assemble, audit and diagnose preference pairs from ``ratings`` rows."""
    form = _form(df, ctx)
    rows = df.with_row_index(ROW)
    with ctx.progress("pairing preferences", None):
        prep, cands = pair_prompts(rows, form, cfg, ctx.seed)
    return finish(df, rows, form, prep, cands, cfg)


def pair_prompts(
    rows: pl.DataFrame, form: str, cfg: PreferencesConfig, seed: int, *, diagnose_here: bool = True
) -> tuple[Prepared, pl.DataFrame]:
    """The prompt-wise part: the prepared rows and the candidates with their status, in output order.

    Every step joins or groups within a prompt, so running it on any set of whole prompts
    gives those prompts' part of the result (how the Spark engine runs it, ``curation.spark.preferences``).
    """
    if form == "scores":
        prep = prepare_scores(rows, dict(cfg.aspects), cfg.aggregate, diagnose_here=diagnose_here)
    else:
        prep = prepare_comparisons(
            rows, form, cfg.aggregate, human=cfg.human_marker, assistant=cfg.assistant_marker, diagnose_here=diagnose_here
        )
    first_row = prep.members.group_by("prompt").agg(first_row=pl.col(ROW).min())
    cands = _annotate(prep.candidates, first_row, cfg)
    return prep, _select(cands, cfg.strategy if form == "scores" else None, cfg.max_pairs_per_prompt, seed)


def candidate_order() -> tuple[list[str], list[bool]]:
    """The candidates' output order (``_annotate``'s sort): prompt's first row, widest margin, most agreement, id."""
    return ["first_row", "margin", "agreement", "id"], [False, True, True, False]


def finish(df: pl.DataFrame, rows: pl.DataFrame, form: str, prep: Prepared, cands: pl.DataFrame, cfg: PreferencesConfig) -> StageResult:
    """The books, pairs, findings, stats and lineage from the prepared rows and the candidates."""
    reasons = _row_reasons(rows, prep, cands)
    kept = _output(cands)
    dropped = rows.join(reasons.filter(pl.col("reason").is_not_null(), pl.col("reason") != "quarantined"), on=ROW).sort(ROW).drop(ROW)
    quarantined = rows.join(prep.quarantine, on=ROW).sort(ROW).select("id", "error")
    stats = _stats(kept, cands, prep, reasons, form, cfg)
    if cfg.format == "conversational":
        kept = to_conversational(
            kept, hh_prompts=form == "transcripts" and "prompt" not in df.columns, human=cfg.human_marker, assistant=cfg.assistant_marker
        )
    files: dict[str, str | bytes] = {"lineage.parquet": _lineage(prep, cands, rows)}
    return StageResult(
        kept=kept,
        dropped=dropped,
        findings=_findings(cands, prep.annotators),
        stats=stats,
        quarantined=quarantined,
        kind="preference",
        files=files,
    )
