"""From each form of ``ratings`` input to aggregated pair candidates.

Two families feed the `preferences` stage:

* ``scores``: one row per (prompt, response, annotator) with a ``score`` or ``rank``
  (or several aspect columns combined by weights). Scores are averaged per annotator,
  aggregated across annotators per response, and every two distinct responses to a
  prompt make a candidate oriented from the higher to the lower score.
* comparisons: ``pairwise`` rows (``response_a``, ``response_b``, ``winner``), HH-style
  ``transcripts`` split into prompt and final replies, or explicit ``prompt, chosen,
  rejected`` rows. Judgements of the same two responses are aggregated into one
  candidate, whatever the A/B order they were shown in.

Each returns the candidates, which input rows feed which candidate (for the books and
the lineage file), the rows dropped or quarantined on their own, and the judgement-level
diagnostics (position bias, length bias, annotator skew) that only the raw rows show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

from curation.core.errors import SchemaError
from curation.stages.preferences.stats import annotator_summary, annotator_table, rate
from curation.stages.preferences.transcripts import split_transcripts

ROW = "__row"  # the input row's position, so that results map back to input rows
KEY = ["prompt", "chosen", "rejected"]
EPS = 1e-9  # score differences below this are ties (float means of equal sets can differ in the last bit)
Aggregate = Literal["mean", "median", "majority"]


@dataclass(frozen=True)
class Prepared:
    candidates: pl.DataFrame  # prompt, chosen, rejected, margin, agreement, n_annotators, chosen_score
    members: pl.DataFrame  # __row, prompt, chosen, rejected, role: which candidates each row feeds
    row_drops: pl.DataFrame  # __row, reason: rows dropped before pairing
    quarantine: pl.DataFrame  # __row, error
    diagnostics: dict[str, Any]
    annotators: pl.DataFrame  # annotator, n, skew (see preference_stats.annotator_table)
    judgements: pl.DataFrame | None = None  # what the diagnostics read, with ROW (see ``diagnose``)


def _split_bad(rows: pl.DataFrame, error: pl.Expr | pl.Series) -> tuple[pl.DataFrame, pl.DataFrame]:
    rows = rows.with_columns(error.alias("error"))
    return rows.filter(pl.col("error").is_null()).drop("error"), rows.filter(pl.col("error").is_not_null()).select(ROW, "error")


def _drop_empty(rows: pl.DataFrame, text_cols: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    blank = [pl.col(c).str.strip_chars().str.len_chars() == 0 for c in text_cols]
    reason = (
        pl.when(pl.col("prompt").str.strip_chars().str.len_chars() == 0)
        .then(pl.lit("empty_prompt"))
        .when(pl.any_horizontal(blank))
        .then(pl.lit("empty_response"))
    )
    rows = rows.with_columns(reason.alias("reason"))
    return rows.filter(pl.col("reason").is_null()).drop("reason"), rows.filter(pl.col("reason").is_not_null()).select(ROW, "reason")


def _missing(cols: list[str]) -> pl.Expr:
    return pl.coalesce([pl.when(pl.col(c).is_null()).then(pl.lit(f"missing required field `{c}`")) for c in cols])


def _annotator(df: pl.DataFrame) -> pl.Expr:
    # Rows without an annotator count as one anonymous annotator.
    return (pl.col("annotator").cast(pl.String).fill_null("") if "annotator" in df.columns else pl.lit("")).alias("annotator")


def _vote(diff: pl.Expr) -> pl.Expr:
    """Share of judgements that agree with a positive difference, ties counting half."""
    return ((diff > EPS).cast(pl.Float64) + 0.5 * (diff.abs() <= EPS).cast(pl.Float64)).mean()


# ---------------------------------------------------------------------------- scores
def _score_value(df: pl.DataFrame, aspects: dict[str, float]) -> tuple[pl.Expr, pl.Expr]:
    """The per-row score and the error for rows without a usable one."""
    if aspects:
        absent = [c for c in aspects if c not in df.columns]
        if absent:
            raise SchemaError(
                f"`preferences.aspects` names column(s) {', '.join(f'`{c}`' for c in absent)} that the input lacks; columns are {', '.join(df.columns)}"
            )
        casts = {c: pl.col(c).cast(pl.Float64, strict=False) for c in aspects}
        value = pl.sum_horizontal([casts[c] * w for c, w in aspects.items()]) / sum(aspects.values())
        errors = [pl.when(~casts[c].is_finite().fill_null(False)).then(pl.lit(f"aspect `{c}` is missing or not a number")) for c in aspects]
        return value, pl.coalesce(errors)
    score = pl.col("score").cast(pl.Float64, strict=False) if "score" in df.columns else pl.lit(None, pl.Float64)
    rank = pl.col("rank").cast(pl.Float64, strict=False) if "rank" in df.columns else pl.lit(None, pl.Float64)
    value = pl.coalesce(score, -rank)  # rank 1 is best, so a lower rank is a higher score
    return value, pl.when(~value.is_finite().fill_null(False)).then(pl.lit("ratings rows need a numeric `score` or `rank`"))


def _aggregate_scores(how: Aggregate) -> pl.Expr:
    v = pl.col("value")
    # majority: the score most annotators gave (ties between modes share the difference)
    agg = {"mean": v.mean(), "median": v.median(), "majority": v.mode().mean()}[how]
    return agg.alias("score")


def _score_candidates(resp: pl.DataFrame) -> pl.DataFrame:
    left = resp.rename({"response": "chosen", "score": "chosen_score"})
    right = resp.rename({"response": "rejected", "score": "rejected_score"})
    higher = pl.col("chosen_score") > pl.col("rejected_score")
    tie_order = (pl.col("chosen_score") == pl.col("rejected_score")) & (pl.col("chosen") < pl.col("rejected"))
    pairs = left.join(right, on="prompt").filter(pl.col("chosen") != pl.col("rejected"), higher | tie_order)
    return pairs.with_columns(margin=pl.col("chosen_score") - pl.col("rejected_score")).drop("rejected_score")


def _score_agreement(cands: pl.DataFrame, ann: pl.DataFrame) -> pl.DataFrame:
    """Per candidate: annotators who rated both responses and the share who agree.

    Where no annotator rated both, every rating of one is compared with every rating
    of the other (n_annotators then counts the annotators of either).
    """
    a_c = ann.rename({"response": "chosen", "value": "vc"})
    a_r = ann.rename({"response": "rejected", "value": "vr"})
    base = cands.select(KEY)
    diff = pl.col("vc") - pl.col("vr")
    matched = base.join(a_c, on=["prompt", "chosen"]).join(a_r, on=["prompt", "rejected", "annotator"])
    m = matched.group_by(KEY, maintain_order=True).agg(n_annotators=pl.len(), agreement=_vote(diff))
    crossed = base.join(m.select(KEY), on=KEY, how="anti").join(a_c, on=["prompt", "chosen"]).join(a_r, on=["prompt", "rejected"])
    n_union = pl.col("annotator").append(pl.col("annotator_right")).n_unique().cast(pl.UInt32)
    c = crossed.group_by(KEY, maintain_order=True).agg(n_annotators=n_union, agreement=_vote(diff))
    return pl.concat([m, c])


def _score_members(rows: pl.DataFrame, cands: pl.DataFrame) -> pl.DataFrame:
    parts = []
    for role in ("chosen", "rejected"):
        side = cands.select("prompt", pl.col(role).alias("response"), *KEY[1:])
        parts.append(rows.select(ROW, "prompt", "response").join(side, on=["prompt", "response"]).with_columns(role=pl.lit(role)))
    return pl.concat(parts).select(ROW, *KEY, "role")


def _scores_diagnostics(ann: pl.DataFrame) -> tuple[dict[str, Any], pl.DataFrame]:
    """Annotator skew (mean deviation from the response's mean) and judged length bias."""
    consensus = pl.col("value").mean().over("prompt", "response")
    multi = pl.len().over("prompt", "response") > 1
    dev = ann.filter(multi).with_columns(skew=pl.col("value") - consensus)
    left = ann.with_columns(chars=pl.col("response").str.len_chars())
    both = left.join(left, on=["prompt", "annotator"], suffix="_r").filter(pl.col("response") < pl.col("response_r"))
    decided = both.filter((pl.col("value") - pl.col("value_r")).abs() > EPS, pl.col("chars") != pl.col("chars_r"))
    longer_won = (pl.col("value") > pl.col("value_r")) == (pl.col("chars") > pl.col("chars_r"))
    out = {"judged_chosen_longer_rate": rate(decided.select(longer_won).to_series()), "judged_comparisons": decided.height}
    return {**out, "annotators": annotator_summary(dev, "mean_deviation")}, annotator_table(dev)


def prepare_scores(rows_in: pl.DataFrame, aspects: dict[str, float], aggregate: Aggregate, *, diagnose_here: bool = True) -> Prepared:
    """Score rows -> candidates between every two distinct responses to a prompt.

    With ``diagnose_here=False`` the diagnostics are left empty: the caller prepared part of
    the prompts and runs ``diagnose`` over all parts' ``judgements``.
    """
    value, bad_value = _score_value(rows_in, aspects)
    error = pl.coalesce(_missing(["prompt", "response"]), bad_value)
    rows = rows_in.select(
        ROW,
        pl.col("prompt").cast(pl.String),
        pl.col("response").cast(pl.String),
        _annotator(rows_in),
        value.alias("value"),
        error.alias("bad"),
    )
    rows, quarantine = _split_bad(rows.drop("bad"), rows["bad"])
    rows, drops = _drop_empty(rows, ["response"])
    judged = rows.group_by("prompt", "response", "annotator", maintain_order=True).agg(pl.col("value").mean(), pl.col(ROW).min())
    ann = judged.drop(ROW)
    resp = ann.group_by("prompt", "response", maintain_order=True).agg(_aggregate_scores(aggregate))
    cands = _score_candidates(resp)
    cands = cands.join(_score_agreement(cands, ann), on=KEY, how="left")
    diagnostics = _scores_diagnostics(ann) if diagnose_here else ({}, annotator_table(pl.DataFrame()))
    return Prepared(cands, _score_members(rows, cands), drops, quarantine, *diagnostics, judgements=judged)


def diagnose(form: str, judgements: pl.DataFrame) -> tuple[dict[str, Any], pl.DataFrame]:
    """The diagnostics over every prompt's ``Prepared.judgements`` (in any order: sorted by ROW here)."""
    if form == "scores":  # one row per (prompt, response, annotator), in order of its first input row
        return _scores_diagnostics(judgements.sort(ROW).drop(ROW))
    return _comparisons_diagnostics(judgements.sort(ROW), positional=form == "pairwise")


# ---------------------------------------------------------------------------- comparisons
def _pairwise_rows(df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    winner = pl.col("winner").cast(pl.String).str.strip_chars().str.to_lowercase()
    v = pl.when(winner == "a").then(1.0).when(winner == "b").then(-1.0).when(winner == "tie").then(0.0)
    texts = [pl.col(c).cast(pl.String) for c in ("prompt", "response_a", "response_b")]
    rows = df.select(ROW, *texts, _annotator(df), v.alias("v"), pl.col("winner").cast(pl.String).alias("winner_raw"))
    bad = pl.when(pl.col("v").is_null()).then(
        pl.format("`winner` must be 'a', 'b' or 'tie', got '{}'", pl.col("winner_raw").fill_null("null").str.slice(0, 20))
    )
    rows, quarantine = _split_bad(rows, pl.coalesce(_missing(["prompt", "response_a", "response_b"]), bad))
    return rows.drop("winner_raw").rename({"response_a": "a", "response_b": "b"}), quarantine, _no_drops()


def _transcript_rows(df: pl.DataFrame, human: str, assistant: str) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    good, drops, bad = [], [], []
    for row, ann, chosen, rejected in df.select(ROW, _annotator(df), "chosen", "rejected").iter_rows():
        if chosen is None or rejected is None:
            bad.append((row, f"missing required field `{'chosen' if chosen is None else 'rejected'}`"))
            continue
        try:
            split = split_transcripts(chosen, rejected, human=human, assistant=assistant)
        except ValueError as e:
            bad.append((row, str(e)))
            continue
        if isinstance(split, str):
            drops.append((row, split))
        else:
            good.append((row, split.prompt, split.chosen, split.rejected, ann, 1.0))
    schema = {ROW: pl.UInt32, "prompt": pl.String, "a": pl.String, "b": pl.String, "annotator": pl.String, "v": pl.Float64}
    return (
        pl.DataFrame(good, schema=schema, orient="row"),
        pl.DataFrame(bad, schema={ROW: pl.UInt32, "error": pl.String}, orient="row"),
        pl.DataFrame(drops, schema={ROW: pl.UInt32, "reason": pl.String}, orient="row"),
    )


def _explicit_rows(df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    rows = df.select(ROW, *[pl.col(c).cast(pl.String) for c in KEY], _annotator(df), pl.lit(1.0).alias("v"))
    rows, quarantine = _split_bad(rows, _missing(KEY))
    return rows.rename({"chosen": "a", "rejected": "b"}), quarantine, _no_drops()


def _no_drops() -> pl.DataFrame:
    return pl.DataFrame(schema={ROW: pl.UInt32, "reason": pl.String})


def _aggregate_votes(how: Aggregate) -> pl.Expr:
    v = pl.col("v")
    # majority: net share of annotators for x over y, (for - against) / annotators
    agg = {"mean": v.mean(), "median": v.median(), "majority": ((v > 0).sum().cast(pl.Float64) - (v < 0).sum()) / pl.len()}[how]
    return agg.alias("verdict")


def _comparison_candidates(rows: pl.DataFrame, aggregate: Aggregate) -> pl.DataFrame:
    """Judgements of the same two responses, in either order, become one candidate."""
    swap = pl.col("a") > pl.col("b")
    canon = rows.with_columns(
        x=pl.when(swap).then("b").otherwise("a"),
        y=pl.when(swap).then("a").otherwise("b"),
        v=pl.when(swap).then(-pl.col("v")).otherwise("v"),
    )
    ann = canon.group_by("prompt", "x", "y", "annotator", maintain_order=True).agg(pl.col("v").mean())
    groups = ann.group_by("prompt", "x", "y", maintain_order=True).agg(
        _aggregate_votes(aggregate), n_annotators=pl.len(), pos=(pl.col("v") > 0).sum(), neg=(pl.col("v") < 0).sum()
    )
    forward = pl.col("verdict") >= 0
    n = pl.col("n_annotators").cast(pl.Float64)
    tied = n - pl.col("pos") - pl.col("neg")
    return groups.select(
        "prompt",
        "x",
        "y",
        chosen=pl.when(forward).then("x").otherwise("y"),
        rejected=pl.when(forward).then("y").otherwise("x"),
        margin=pl.col("verdict").abs(),
        agreement=(pl.when(forward).then("pos").otherwise("neg") + 0.5 * tied) / n,
        n_annotators="n_annotators",
        chosen_score=pl.lit(None, pl.Float64),
    )


def _comparisons_diagnostics(rows: pl.DataFrame, positional: bool) -> tuple[dict[str, Any], pl.DataFrame]:
    decided = rows.filter(pl.col("v") != 0)
    chars_a, chars_b = pl.col("a").str.len_chars(), pl.col("b").str.len_chars()
    by_length = decided.filter(chars_a != chars_b).select((pl.col("v") > 0) == (chars_a > chars_b)).to_series()
    out: dict[str, Any] = {"judged_chosen_longer_rate": rate(by_length), "judged_comparisons": by_length.len()}
    if positional:
        out["position"] = {
            "a_win_rate": rate(decided["v"] > 0),
            "bias": None if decided.is_empty() else round(float((decided["v"] > 0).mean()) - 0.5, 6),  # type: ignore[arg-type]
            "tie_rate": rate(rows["v"] == 0),
            "judgements": rows.height,
        }
        skew = decided.select("annotator", skew=(pl.col("v") > 0).cast(pl.Float64) - 0.5)
        out["annotators"] = annotator_summary(skew, "a_win_rate_minus_half")
        return out, annotator_table(skew)
    return out, annotator_table(pl.DataFrame())


def prepare_comparisons(
    df: pl.DataFrame, form: str, aggregate: Aggregate, *, human: str, assistant: str, diagnose_here: bool = True
) -> Prepared:
    """Pairwise, transcript or explicit-prompt rows -> one candidate per judged pair (``diagnose_here``: see ``prepare_scores``)."""
    if form == "pairwise":
        rows, quarantine, drops = _pairwise_rows(df)
    elif "prompt" in df.columns:
        rows, quarantine, drops = _explicit_rows(df)
    else:
        rows, quarantine, drops = _transcript_rows(df, human, assistant)
    rows, empties = _drop_empty(rows, ["a", "b"])
    cands = _comparison_candidates(rows, aggregate)
    swap = pl.col("a") > pl.col("b")
    keyed = rows.with_columns(x=pl.when(swap).then("b").otherwise("a"), y=pl.when(swap).then("a").otherwise("b"))
    members = keyed.join(cands.select("prompt", "x", "y", "chosen", "rejected"), on=["prompt", "x", "y"]).select(
        ROW, *KEY, role=pl.lit("judgement")
    )
    diagnostics, annotators = (
        _comparisons_diagnostics(rows, positional=form == "pairwise") if diagnose_here else ({}, annotator_table(pl.DataFrame()))
    )
    return Prepared(cands.drop("x", "y"), members, pl.concat([drops, empties]), quarantine, diagnostics, annotators, judgements=rows)
