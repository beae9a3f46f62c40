"""Confident learning (Northcutt, Jiang & Chuang, JAIR 2021) on scikit-learn.

The published method, written from the paper (cleanlab itself is AGPL-3.0):

1. out-of-fold predicted probabilities ``P`` from a cheap classifier (stratified
   K-fold, so no row is scored by a model that saw its label);
2. per-class thresholds ``t_j``: the mean of ``P[:, j]`` over rows labelled ``j``;
3. the confident joint ``C[i, j]``: rows labelled ``i`` whose probability for ``j``
   reaches ``t_j`` (the most probable such ``j`` when several do), calibrated so each
   row sums to the class count and the whole to ``n``;
4. prune by noise rate: for every off-diagonal cell, the ``C[i, j]`` rows labelled
   ``i`` with the largest margin ``P[:, j] - P[:, i]`` are label issues, except rows
   where the classifier agrees with the given label;
5. rank by a label-quality score: self-confidence ``P[x, y]`` or the normalized margin
   ``(P[x, y] - max_{k != y} P[x, k] + 1) / 2`` (lower = more likely wrong).

Features are TF-IDF word 1-2 grams or sentence embeddings; the classifier is a
multinomial logistic regression (saga: fast on sparse rows, deterministic per seed).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

RankBy = Literal["self_confidence", "normalized_margin"]


@dataclass(frozen=True)
class ConfidentLearning:
    """What confident learning found over ``n`` rows and ``K`` classes.

    Attributes:
        probs: out-of-fold predicted probabilities, shape (n, K).
        issues: boolean mask of suspected label errors, shape (n,).
        quality: label-quality score per row in [0, 1], lower = more likely wrong.
        suggested: index of the most probable class per row, shape (n,).
        thresholds: per-class thresholds ``t_j``, shape (K,).
        joint: calibrated confident joint, given label x true label, shape (K, K).
    """

    probs: np.ndarray
    issues: np.ndarray
    quality: np.ndarray
    suggested: np.ndarray
    thresholds: np.ndarray
    joint: np.ndarray


def tfidf_features(texts: list[str]) -> Any:
    """Sparse TF-IDF rows (word 1-2 grams, sublinear tf, l2-normalised)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    # min_df=2 drops one-off tokens (ids, typos) that only help a model memorise rows
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2, dtype=np.float32)
    try:
        return vectorizer.fit_transform(texts)
    except ValueError:  # every token is a one-off (tiny inputs): keep them all
        return TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), dtype=np.float32, token_pattern=r"(?u)\b\w+\b").fit_transform(texts)


def _classifier(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    # saga with a loose tolerance: probabilities good enough to rank, ~5x faster than lbfgs
    return LogisticRegression(solver="saga", tol=1e-3, max_iter=200, random_state=seed)


def _fit(features: Any, y: np.ndarray, seed: int) -> Any:
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        # an unconverged saga still ranks rows well; convergence is not the goal here
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _classifier(seed).fit(features, y)


def out_of_fold_probs(features: Any, y: np.ndarray, n_classes: int, *, folds: int, seed: int, on_fold: Any = None) -> np.ndarray:
    """Probabilities for every row from a model trained on the other folds, shape (n, K).

    Every class must have at least ``folds`` rows (stratified splits need it).
    """
    from sklearn.model_selection import StratifiedKFold

    probs = np.zeros((len(y), n_classes), dtype=np.float64)
    for train, test in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
        model = _fit(features[train], y[train], seed)
        probs[np.ix_(test, model.classes_)] = model.predict_proba(features[test])
        if on_fold is not None:
            on_fold()
    return probs


def predict(features_train: Any, y: np.ndarray, features_new: Any, n_classes: int, *, seed: int) -> np.ndarray:
    """Probabilities for unlabelled rows from a model fitted on all labelled rows."""
    probs = np.zeros((features_new.shape[0], n_classes), dtype=np.float64)
    model = _fit(features_train, y, seed)
    probs[:, model.classes_] = model.predict_proba(features_new)
    return probs


def per_class_thresholds(y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``t_j`` = the mean probability of class ``j`` over rows labelled ``j``."""
    n_classes = probs.shape[1]
    return np.array([probs[y == j, j].mean() if np.any(y == j) else 1.0 for j in range(n_classes)])


def confident_joint(y: np.ndarray, probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The calibrated confident joint, given label x likely true label, summing to ``n``."""
    n_classes = probs.shape[1]
    confident = probs >= thresholds - 1e-6  # tolerance: a row at the mean counts
    n_confident = confident.sum(axis=1)
    guess = np.where(n_confident > 1, np.where(confident, probs, -1.0).argmax(axis=1), probs.argmax(axis=1))
    counted = n_confident > 0
    joint = np.zeros((n_classes, n_classes), dtype=np.float64)
    np.add.at(joint, (y[counted], guess[counted]), 1.0)
    # every class keeps at least one correctly labelled row, as in the paper's estimator
    np.fill_diagonal(joint, joint.diagonal().clip(min=1.0))
    class_counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    joint = joint / joint.sum(axis=1, keepdims=True) * class_counts[:, None]
    return joint / joint.sum() * len(y)


def prune_by_noise_rate(y: np.ndarray, probs: np.ndarray, joint: np.ndarray) -> np.ndarray:
    """Rows labelled ``i`` with the largest margins toward ``j``, ``round(C[i, j])`` per cell."""
    n_classes = probs.shape[1]
    issues = np.zeros(len(y), dtype=bool)
    for i in range(n_classes):
        rows = np.flatnonzero(y == i)
        budget = np.round(joint[i]).astype(int)
        # never prune a class below one row
        budget[i] = 0
        while budget.sum() > len(rows) - 1 and budget.sum() > 0:
            budget[int(budget.argmax())] -= 1
        for j in np.flatnonzero(budget):
            margin = probs[rows, j] - probs[rows, i]
            issues[rows[np.argsort(-margin, kind="stable")[: budget[j]]]] = True
    issues[probs.argmax(axis=1) == y] = False
    return issues


def label_quality(y: np.ndarray, probs: np.ndarray, rank_by: RankBy) -> np.ndarray:
    """Per-row label quality in [0, 1]; lower = more likely mislabelled."""
    given = probs[np.arange(len(y)), y]
    if rank_by == "self_confidence":
        return given
    others = probs.copy()
    others[np.arange(len(y)), y] = -np.inf
    return (given - others.max(axis=1) + 1.0) / 2.0


def find_label_issues(y: np.ndarray, probs: np.ndarray, *, rank_by: RankBy = "self_confidence") -> ConfidentLearning:
    """Confident learning over out-of-fold ``probs`` for integer labels ``y``."""
    thresholds = per_class_thresholds(y, probs)
    joint = confident_joint(y, probs, thresholds)
    issues = prune_by_noise_rate(y, probs, joint)
    return ConfidentLearning(probs, issues, label_quality(y, probs, rank_by), probs.argmax(axis=1), thresholds, joint)
