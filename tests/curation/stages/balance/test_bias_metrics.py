"""Each metric against an independent hand computation on a small fixture."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp

from curation.stages.balance import bias_metrics as bm

# Facet value d: label A x2, B x1 (nd = 3). The rest a: A x1, B x4 (na = 5).
# Pa = (1/5, 4/5), Pd = (2/3, 1/3).
FACET, REST, LABELS = [2, 1], [1, 4], ["A", "B"]


def _fixture() -> dict[str, object]:
    return bm.clarify_metrics(FACET, REST, LABELS)


def test_ci_is_rest_minus_facet_over_all() -> None:
    assert _fixture()["CI"] == pytest.approx((5 - 3) / 8)


def test_dpl_per_label_is_rest_share_minus_facet_share() -> None:
    assert _fixture()["DPL"] == pytest.approx({"A": 1 / 5 - 2 / 3, "B": 4 / 5 - 1 / 3})


def test_kl_of_rest_against_facet() -> None:
    hand = 0.2 * math.log(0.2 / (2 / 3)) + 0.8 * math.log(0.8 / (1 / 3))
    assert _fixture()["KL"] == pytest.approx(hand)
    assert hand == pytest.approx(0.4595804, abs=1e-6)


def test_js_against_the_midpoint() -> None:
    m = ((0.2 + 2 / 3) / 2, (0.8 + 1 / 3) / 2)
    kl_a = 0.2 * math.log(0.2 / m[0]) + 0.8 * math.log(0.8 / m[1])
    kl_d = (2 / 3) * math.log((2 / 3) / m[0]) + (1 / 3) * math.log((1 / 3) / m[1])
    assert _fixture()["JS"] == pytest.approx(0.5 * (kl_a + kl_d))


def test_lp_is_the_euclidean_norm_of_the_difference() -> None:
    gap = 2 / 3 - 1 / 5  # both labels differ by the same amount
    assert _fixture()["LP"] == pytest.approx(math.sqrt(2 * gap**2))


def test_tvd_is_half_the_l1_norm() -> None:
    assert _fixture()["TVD"] == pytest.approx(0.5 * (abs(0.2 - 2 / 3) + abs(0.8 - 1 / 3)))


def test_ks_is_the_largest_label_gap() -> None:
    assert _fixture()["KS"] == pytest.approx(max(abs(0.2 - 2 / 3), abs(0.8 - 1 / 3)))
    assert _fixture()["undefined"] == {}


def test_facet_value_with_zero_rows_gets_ci_one_and_reasons_not_inf() -> None:
    out = bm.clarify_metrics([0, 0], [3, 2], LABELS)
    assert out["n"] == 0 and out["CI"] == 1.0
    for name in ("DPL", "KL", "JS", "LP", "TVD", "KS"):
        assert out[name] is None
        assert out["undefined"][name] == "facet value has no rows"


def test_facet_value_holding_every_row_gets_ci_minus_one() -> None:
    out = bm.clarify_metrics([3, 2], [0, 0], LABELS)
    assert out["CI"] == -1.0 and out["KL"] is None
    assert out["undefined"]["TVD"] == "no other facet value has rows"


def test_no_rows_at_all_leaves_ci_undefined() -> None:
    out = bm.clarify_metrics([0, 0], [0, 0], LABELS)
    assert out["CI"] is None and "CI" in out["undefined"]


def test_kl_is_undefined_when_the_facet_lacks_a_label_the_rest_has() -> None:
    out = bm.clarify_metrics([3, 0], [1, 1], LABELS)  # Pa = (.5, .5), Pd = (1, 0)
    assert out["KL"] is None and out["undefined"]["KL"].startswith("infinite")
    kl_a = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    kl_d = 1.0 * math.log(1 / 0.75)
    assert out["JS"] == pytest.approx(0.5 * (kl_a + kl_d))
    assert out["TVD"] == pytest.approx(0.5) and out["KS"] == pytest.approx(0.5)


def test_kl_is_finite_when_only_the_rest_lacks_a_label() -> None:
    out = bm.clarify_metrics([1, 1], [3, 0], LABELS)  # Pa = (1, 0), Pd = (.5, .5)
    assert out["KL"] == pytest.approx(math.log(2))


def test_psi_by_hand() -> None:
    hand = (0.75 - 0.5) * math.log(0.75 / 0.5) + (0.25 - 0.5) * math.log(0.25 / 0.5)
    assert bm.psi({"a": 3, "b": 1}, {"a": 1, "b": 1}) == pytest.approx(hand)


def test_psi_floors_a_missing_category_instead_of_inf() -> None:
    hand = (1 - 0.5) * math.log(1 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)
    assert bm.psi({"a": 2}, {"a": 1, "b": 1}) == pytest.approx(hand)


def test_identical_distributions_have_zero_drift() -> None:
    counts = {"a": 5, "b": 3, "c": 1}
    assert bm.psi(counts, {k: 10 * v for k, v in counts.items()}) == pytest.approx(0.0, abs=1e-12)
    assert bm.js_divergence(counts, counts) == pytest.approx(0.0, abs=1e-12)
    assert bm.psi({}, counts) is None and bm.js_divergence(counts, {}) is None


def test_js_of_disjoint_distributions_is_ln2() -> None:
    assert bm.js_divergence({"a": 4}, {"b": 9}) == pytest.approx(math.log(2))


def test_ks_statistic_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 50, 300), rng.integers(5, 60, 200)
    assert bm.ks_statistic(x, y) == pytest.approx(ks_2samp(x, y).statistic)
    assert bm.ks_statistic(x, x.copy()) == 0.0
    assert bm.ks_statistic(x, np.array([])) is None


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_coverage_of_identical_sets_is_one() -> None:
    x = _unit(np.random.default_rng(1).normal(size=(200, 16)))
    out = bm.coverage_density(x, x.copy(), k=5)
    assert out["coverage"] == 1.0
    # every ball holds its centre and its k neighbours, all of them dataset points
    assert out["density"] == pytest.approx(6 / 5)


def test_samples_of_one_distribution_have_high_coverage_and_density_near_one() -> None:
    rng = np.random.default_rng(2)
    real, fake = _unit(rng.normal(size=(600, 8))), _unit(rng.normal(size=(600, 8)))
    out = bm.coverage_density(real, fake, k=5, chunk=128)
    assert out["coverage"] > 0.9  # expected about 1 - 2^-5 for equal sizes
    assert 0.8 < out["density"] < 1.2


def test_coverage_of_a_far_away_dataset_is_zero() -> None:
    rng = np.random.default_rng(3)
    real = rng.normal(size=(50, 4)) * 0.01 + np.array([1, 0, 0, 0])
    fake = rng.normal(size=(50, 4)) * 0.01 + np.array([0, 1, 0, 0])
    assert bm.coverage_density(real, fake, k=3) == {"coverage": 0.0, "density": 0.0}
    with pytest.raises(ValueError, match="more than k=5"):
        bm.coverage_density(real[:5], fake, k=5)


def test_vendi_of_copies_is_one_and_of_orthogonal_rows_is_n() -> None:
    same = np.tile(np.array([[0.6, 0.8, 0.0]]), (10, 1))
    assert bm.vendi_score(same) == pytest.approx(1.0)
    assert bm.vendi_score(np.eye(4, 8) * 3.0) == pytest.approx(4.0)  # rows are normalised first


def test_vendi_on_the_gram_matrix_equals_the_n_by_n_kernel() -> None:
    x = _unit(np.random.default_rng(4).normal(size=(30, 6)))
    eig = np.linalg.eigvalsh(x @ x.T / len(x))  # the original n x n formulation
    eig = eig[eig > 1e-12]
    assert bm.vendi_score(x) == pytest.approx(math.exp(-np.sum(eig * np.log(eig))), rel=1e-9)


def test_summary_and_tukey_fences() -> None:
    values = np.array([1, 2, 3, 4, 100])
    assert bm.iqr_fences(values) == (2 - 1.5 * 2, 4 + 1.5 * 2)
    s = bm.summary(values)
    assert (s["count"], s["median"], s["max"], s["mean"]) == (5, 3.0, 100.0, 22.0)
    assert bm.summary(np.array([]))["mean"] is None and bm.iqr_fences(np.array([])) is None


counts = st.lists(st.integers(0, 30), min_size=2, max_size=5)


@settings(max_examples=60, deadline=None)
@given(d=counts, a=counts)
def test_clarify_metrics_stay_in_their_ranges(d: list[int], a: list[int]) -> None:
    n = min(len(d), len(a))
    out = bm.clarify_metrics(d[:n], a[:n], [str(i) for i in range(n)])
    if out["CI"] is not None:
        assert -1 <= out["CI"] <= 1
    if out["TVD"] is not None:
        assert 0 <= out["KS"] <= out["TVD"] + 1e-12 <= 1 + 1e-12
        assert 0 <= out["JS"] <= math.log(2) + 1e-12
        assert out["KL"] is None or out["KL"] >= -1e-12
        assert out["LP"] <= 2 * out["TVD"] + 1e-12
