"""Label audit benchmark: flagged rows against the labels damaged on purpose.

Run: ``.venv/bin/python -m tests.benchmarks.eval_label_audit`` (add ``--help`` for sizes).

On generated support tickets (``label_data.py``: six classes, varied wording, 5-10% of
labels flipped, spelling variants, exact-text conflicts) it scores, in one run and on
the same out-of-fold setup (TF-IDF, logistic regression, 5 stratified folds):

- ours: the `label_audit` stage with its defaults (confident learning + conflicts);
- naive: flag every row whose out-of-fold prediction disagrees with its label (given
  the normalised labels, to be fair; on raw labels it is worse still).

Then it times the stage with the defaults on ``--scale-rows`` rows, and compares the
``embeddings`` features with TF-IDF on a smaller set.
"""

from __future__ import annotations

import argparse
import random
import resource
import time

import numpy as np
import polars as pl

from curation.core.stage import StageContext
from curation.stages.label_audit.confident_learning import out_of_fold_probs, tfidf_features
from curation.stages.label_audit.stage import LabelAuditConfig, label_audit
from tests.data.label_data import generate

FLAGGED = ("label_mislabel", "label_conflict", "label_missing", "label_unknown")


def _score(flagged: pl.Series, truth: pl.DataFrame) -> tuple[int, float, float, float]:
    errors = truth.filter("is_error")["id"]
    hits = int(flagged.is_in(errors.implode()).sum())
    precision, recall = hits / max(flagged.len(), 1), hits / max(errors.len(), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return flagged.len(), precision, recall, f1


def ours(df: pl.DataFrame, cfg: LabelAuditConfig, seed: int) -> tuple[pl.Series, float, dict[str, object]]:
    t0 = time.perf_counter()
    result = label_audit(df, cfg, StageContext(kind="classification", seed=seed))
    seconds = time.perf_counter() - t0
    return result.findings.filter(pl.col("issue").is_in(FLAGGED))["id"].unique(), seconds, result.stats


def naive(df: pl.DataFrame, labels: pl.Series, seed: int) -> tuple[pl.Series, float]:
    t0 = time.perf_counter()
    classes = sorted(labels.unique().to_list())
    y = np.searchsorted(classes, labels.to_numpy())
    probs = out_of_fold_probs(tfidf_features(df["text"].to_list()), y, len(classes), folds=5, seed=seed)
    return df.filter(pl.Series(probs.argmax(axis=1) != y))["id"], time.perf_counter() - t0


def _row(name: str, method: str, scored: tuple[int, float, float, float], seconds: float) -> str:
    n, p, r, f1 = scored
    return f"| {name} | {method} | {n} | {p:.3f} | {r:.3f} | {f1:.3f} | {seconds:.1f} |"


def accuracy_table(rows: int, seed: int) -> None:
    print(f"\n## Flagged rows vs damaged labels ({rows} tickets + conflicts, seed {seed})\n")
    print("| dataset | method | flagged | precision | recall | F1 | seconds |")
    print("|---|---|---|---|---|---|---|")
    notes = []
    for flip in (0.05, 0.07, 0.10):
        df, truth = generate(rows, seed=seed, flip_rate=flip)
        name = f"flip {flip:.0%}, {int(truth['is_error'].sum())} errors"
        flagged, seconds, stats = ours(df, LabelAuditConfig(), seed)
        print(_row(name, "ours (defaults)", _score(flagged, truth), seconds))
        normalised = df["label"].str.strip_chars().str.to_lowercase()
        base, base_s = naive(df, normalised, seed)
        print(_row(name, "naive, normalised labels", _score(base, truth), base_s))
        if flip == 0.07:
            raw, raw_s = naive(df, df["label"], seed)
            print(_row(name, "naive, raw labels", _score(raw, truth), raw_s))
            variants = int((df["label"] != normalised).sum())
            distinct = f"{df['label'].n_unique()} raw spellings -> {len(stats['label_counts'])} labels"  # type: ignore[arg-type]
            notes.append(f"normalisation (flip 7%): {stats['normalized_rows']} of {variants} re-spelled labels recorded ({distinct})")
    print("", *notes, sep="\n")


def embeddings_table(rows: int, seed: int) -> None:
    df, truth = generate(rows, seed=seed)
    print(f"\n## Features on {df.height} tickets (first-time embedding included in the time)\n")
    print("| features | flagged | precision | recall | F1 | seconds |")
    print("|---|---|---|---|---|---|")
    for features in ("tfidf", "embeddings"):
        flagged, seconds, _ = ours(df, LabelAuditConfig(features=features), seed)  # type: ignore[arg-type]
        n, p, r, f1 = _score(flagged, truth)
        print(f"| {features} | {n} | {p:.3f} | {r:.3f} | {f1:.3f} | {seconds:.1f} |")


def _wide_vocabulary(df: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Eight tokens per row from a 60k-word vocabulary: closer to real data's feature count."""
    rng = random.Random(seed)
    words = [f"w{i:05d}" for i in range(60_000)]
    return df.with_columns(text=pl.Series([t + " " + " ".join(rng.choices(words, k=8)) for t in df["text"]]))


def scale_table(rows: int, seed: int) -> None:
    print(f"\n## Scale: the stage with defaults on {rows} rows (this process, 2 shared cores)\n")
    print("| data | tf-idf features | seconds | rows/s | precision | recall |")
    print("|---|---|---|---|---|---|")
    df, truth = generate(rows, seed=seed)
    for name, data in (("generated", df), ("generated + 60k-word noise vocabulary", _wide_vocabulary(df, seed))):
        width = tfidf_features(data["text"].to_list()).shape[1]
        flagged, seconds, _ = ours(data, LabelAuditConfig(), seed)
        _, p, r, _ = _score(flagged, truth)
        print(f"| {name} | {width} | {seconds:.1f} | {data.height / seconds:,.0f} | {p:.3f} | {r:.3f} |")
    print(f"\npeak RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5000, help="tickets per accuracy dataset")
    parser.add_argument("--embeddings-rows", type=int, default=2000, help="tickets for the features comparison (0 skips it)")
    parser.add_argument("--scale-rows", type=int, default=100_000, help="rows for the timing (0 skips it)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    accuracy_table(args.rows, args.seed)
    if args.embeddings_rows:
        embeddings_table(args.embeddings_rows, args.seed)
    if args.scale_rows:
        scale_table(args.scale_rows, args.seed)


if __name__ == "__main__":
    main()
