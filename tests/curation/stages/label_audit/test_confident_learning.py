from __future__ import annotations

import numpy as np
import pytest

from curation.stages.label_audit.confident_learning import (
    confident_joint,
    find_label_issues,
    label_quality,
    out_of_fold_probs,
    per_class_thresholds,
    prune_by_noise_rate,
    tfidf_features,
)

# Two classes, five rows each; row 4 is labelled 0 but the model is sure it is 1.
Y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
P = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4], [0.05, 0.95], [0.2, 0.8], [0.1, 0.9], [0.3, 0.7], [0.4, 0.6], [0.45, 0.55]])


def test_thresholds_are_mean_self_confidence_per_class() -> None:
    # class 0: (0.9 + 0.8 + 0.7 + 0.6 + 0.05) / 5 = 0.61; class 1: (0.8 + 0.9 + 0.7 + 0.6 + 0.55) / 5 = 0.71
    assert per_class_thresholds(Y, P) == pytest.approx([0.61, 0.71])


def test_confident_joint_counts_calibrates_and_prunes() -> None:
    # given 0: rows 0-2 reach t_0 = 0.61 (row 3 at 0.6 reaches neither), row 4 reaches t_1 -> [3, 1] of 4 counted;
    # given 1: rows 5, 6 reach t_1; row 7 (0.7) just misses; rows 8, 9 reach nothing -> [0, 2].
    # calibrated to class counts: [3.75, 1.25] and [0, 5]; the total is already n = 10.
    joint = confident_joint(Y, P, per_class_thresholds(Y, P))
    assert joint == pytest.approx(np.array([[3.75, 1.25], [0.0, 5.0]]))
    issues = prune_by_noise_rate(Y, P, joint)
    assert np.flatnonzero(issues).tolist() == [4]


def test_label_quality_scores() -> None:
    assert label_quality(Y, P, "self_confidence")[4] == pytest.approx(0.05)
    # normalized margin: (p_given - max other + 1) / 2 = (0.05 - 0.95 + 1) / 2 = 0.05; row 0: (0.9 - 0.1 + 1) / 2 = 0.9
    margin = label_quality(Y, P, "normalized_margin")
    assert margin[[0, 4]] == pytest.approx([0.9, 0.05])
    result = find_label_issues(Y, P, rank_by="normalized_margin")
    assert result.suggested[4] == 1 and result.issues.sum() == 1


def test_agreeing_prediction_is_never_an_issue_and_no_class_is_emptied() -> None:
    y = np.array([0, 0, 1])
    p = np.array([[0.1, 0.9], [0.2, 0.8], [0.1, 0.9]])
    issues = find_label_issues(y, p).issues
    assert not issues[2]
    assert issues.sum() <= 1  # class 0 keeps at least one row


def test_out_of_fold_probabilities_are_deterministic_and_row_stochastic() -> None:
    texts = [f"refund for my {w} order please" for w in "abcdefghij"] + [f"the app {w} crashes on start" for w in "abcdefghij"]
    y = np.array([0] * 10 + [1] * 10)
    features = tfidf_features(texts)
    first = out_of_fold_probs(features, y, 2, folds=5, seed=3)
    again = out_of_fold_probs(features, y, 2, folds=5, seed=3)
    assert np.array_equal(first, again)
    assert first.sum(axis=1) == pytest.approx(np.ones(20))
    assert (first.argmax(axis=1) == y).all()


def test_tfidf_falls_back_when_every_token_is_unique() -> None:
    assert tfidf_features(["alpha", "beta"]).shape[0] == 2
