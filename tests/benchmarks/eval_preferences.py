"""Do the `preferences` diagnostics recover biases injected into generated ratings?

Two generated sets, several responses per prompt and several annotators each:

* pairwise: every annotator judges random pairs of a prompt's responses shown in random
  A/B order. Each judgement is a tie with probability ``p_tie``; otherwise the annotator
  picks A with probability ``p_pos[j]`` (their position bias), the longer response with
  probability ``p_len``, and the truly better one otherwise. Quality, length and order are
  independent, so the A-win rate among decided judgements is ``0.5 + p_pos/2`` and the
  judged chosen-longer rate is ``0.5 + p_len/2``; annotator j's A-win rate is
  ``0.5 + p_pos[j]/2``.
* scores: ``score = quality + length_weight * z + offset[j] + noise``, where the response's
  length in characters is ``200 + 60 z``. Annotator j's mean deviation from each
  response's mean score is ``offset[j] - mean(offset)``; the judged chosen-longer rate is
  ``E[Phi(length_weight * |dz| / sqrt(2 (var_q + var_noise)))]`` over ``dz`` half-normal
  with scale sqrt(2), integrated numerically below.

Then, against a naive UltraFeedback-style binarisation (mean score, best vs a random other
response, no audit) on the same scores set: how many ties and near-identical pairs each
lets through, and the time taken (the machine is shared: timings are noisy).

Run: ``.venv/bin/python -m tests.benchmarks.eval_preferences [--prompts 3000]``
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import polars as pl

from curation.core.stage import StageContext
from curation.stages.preferences.stage import PreferencesConfig, preferences, similarity
from tests.data.preference_data import pairwise_ratings, score_ratings


def recovered(stats: dict[str, Any]) -> dict[str, float]:
    """The diagnostics the eval compares with the injected values."""
    out = {"judged_chosen_longer_rate": stats["length"]["judged_chosen_longer_rate"]}
    if "position" in stats:
        out["a_win_rate"] = stats["position"]["a_win_rate"]
    for name, entry in stats.get("annotators", {}).get("most_skewed", {}).items():
        measure = stats["annotators"]["measure"]
        out[name] = entry[measure]
    return out


def naive_binarize(df: pl.DataFrame, seed: int) -> pl.DataFrame:
    """UltraFeedback-style: mean score per response, best vs a random other one, no checks."""
    resp = (
        df.group_by("prompt", "response")
        .agg(score=pl.col("score").mean())
        .sort("prompt", "score", "response", descending=[False, True, False])
    )
    best = resp.group_by("prompt", maintain_order=True).first().rename({"response": "chosen", "score": "s_c"})
    others = resp.join(best, on="prompt").filter(pl.col("response") != pl.col("chosen")).sample(fraction=1.0, shuffle=True, seed=seed)
    other = others.group_by("prompt").first().select("prompt", pl.col("response").alias("rejected"), pl.col("score").alias("s_r"))
    return best.join(other, on="prompt").with_columns(margin=pl.col("s_c") - pl.col("s_r"))


def _table(title: str, expected: dict[str, float], got: dict[str, float], tol: float) -> bool:
    print(f"\n{title}\n{'metric':<28}{'injected':>10}{'recovered':>11}{'|diff|':>9}{'tol':>7}  ok")
    ok = True
    for name, want in expected.items():
        have = got.get(name, float("nan"))
        good = abs(have - want) <= tol
        ok &= good
        print(f"{name:<28}{want:>10.4f}{have:>11.4f}{abs(have - want):>9.4f}{tol:>7.3f}  {'yes' if good else 'NO'}")
    return ok


def _audit_table(scores: pl.DataFrame, seed: int) -> None:
    t0 = time.perf_counter()
    ours = preferences(scores, PreferencesConfig(strategy="best_vs_random"), StageContext(kind="ratings", seed=seed)).kept
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    naive = naive_binarize(scores, seed)
    t_naive = time.perf_counter() - t0
    print(f"\naudit vs naive binarisation (best vs random), {scores.height} single-rater 1-5 ratings\n{'':<26}{'ours':>10}{'naive':>10}")
    for label, f in (
        ("pairs", lambda d: d.height),
        ("ties (margin 0)", lambda d: int((d["margin"].abs() < 1e-9).sum())),
        ("near-identical pairs", lambda d: sum(similarity(c, r) >= 0.9 for c, r in zip(d["chosen"], d["rejected"], strict=True))),
    ):
        print(f"{label:<26}{f(ours):>10}{f(naive):>10}")
    print(f"{'seconds':<26}{t_ours:>10.2f}{t_naive:>10.2f}   ratio ours/naive {t_ours / max(t_naive, 1e-9):.1f}x (shared machine: noisy)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    pairs, want_p = pairwise_ratings(args.prompts, seed=args.seed)
    t0 = time.perf_counter()
    res_p = preferences(pairs, PreferencesConfig(), StageContext(kind="ratings"))
    print(
        f"pairwise: {pairs.height} judgements -> {res_p.kept.height} pairs in {time.perf_counter() - t0:.2f}s; output chosen-longer rate {res_p.stats['length']['chosen_longer_rate']}"
    )
    ok = _table(
        "pairwise set: position bias (A-win rate), length bias, per-annotator A-win rate - 0.5", want_p, recovered(res_p.stats), tol=0.03
    )
    scores, want_s = score_ratings(args.prompts, seed=args.seed)
    t0 = time.perf_counter()
    res_s = preferences(scores, PreferencesConfig(), StageContext(kind="ratings"))
    print(
        f"\nscores: {scores.height} ratings -> {res_s.kept.height} pairs in {time.perf_counter() - t0:.2f}s; dropped {res_s.dropped['reason'].value_counts(sort=True).rows()}"
    )
    ok &= _table("scores set: length bias, per-annotator mean deviation", want_s, recovered(res_s.stats), tol=0.03)
    control, _ = score_ratings(args.prompts, length_weight=0.0, seed=args.seed)
    res_c = preferences(control, PreferencesConfig(), StageContext(kind="ratings"))
    print(
        f"\noutput chosen-longer rate (best vs worst): length_weight 0.5 -> {res_s.stats['length']['chosen_longer_rate']}, control 0.0 -> {res_c.stats['length']['chosen_longer_rate']}"
    )
    # UltraFeedback-like: one rater, integer scores 1-5 (ties are common)
    discrete = scores.filter(pl.col("annotator") == "ann_1").with_columns(pl.col("score").mul(1.5).add(3).round().clip(1, 5))
    _audit_table(discrete, args.seed)
    print("\nall within tolerance" if ok else "\nSOME DIAGNOSTICS OUT OF TOLERANCE")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
