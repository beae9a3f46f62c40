from __future__ import annotations

import polars as pl
import pytest
from sklearn.metrics import cohen_kappa_score

from curation.core.masking import mask_value
from curation.stages.label_audit.agreement import (
    annotator_agreement,
    cohen_kappa_pairs,
    disagreement_rates,
    fleiss_kappa,
    krippendorff_alpha,
)


def _long(table: dict[str, list[str | None]]) -> pl.DataFrame:
    """annotator -> labels per unit (None = not rated) as the long ``item, annotator, label`` frame."""
    rows = [(f"u{u:02d}", a, v) for a, values in table.items() for u, v in enumerate(values) if v is not None]
    return pl.DataFrame(rows, schema=["item", "annotator", "label"], orient="row")


TINY = _long({"x": ["a", "a", "b"], "y": ["a", "b", "b"]})


def test_tiny_fixture_matches_hand_computed_values() -> None:
    # units (a,a) (a,b) (b,b).
    # Cohen: p_o = 2/3; x uses a 2/3, b 1/3; y uses a 1/3, b 2/3 -> p_e = 2/9 + 2/9 = 4/9;
    #   kappa = (2/3 - 4/9) / (1 - 4/9) = (2/9) / (5/9) = 0.4
    # Fleiss: P_i = 1, 0, 1 -> mean 2/3; p_a = p_b = 1/2 -> P_e = 1/2; kappa = (2/3 - 1/2) / (1/2) = 1/3
    # Krippendorff: o_aa = o_bb = 2, o_ab = o_ba = 1; n_a = n_b = 3, n = 6
    #   alpha = 1 - (n - 1)(n - sum o_cc) / (n^2 - sum n_c^2) = 1 - 5 * 2 / 18 = 4/9
    pairs = cohen_kappa_pairs(TINY)
    assert pairs.select("a", "b", "items").row(0) == ("x", "y", 3)
    assert pairs["agreement"][0] == pytest.approx(2 / 3)
    assert pairs["kappa"][0] == pytest.approx(0.4)
    assert fleiss_kappa(TINY) == pytest.approx(1 / 3)
    assert krippendorff_alpha(TINY) == pytest.approx(4 / 9)
    rates = disagreement_rates(TINY)
    assert rates.rows() == [("x", 3, 3, pytest.approx(1 / 3)), ("y", 3, 3, pytest.approx(1 / 3))]


def test_fleiss_kappa_matches_the_published_worked_example() -> None:
    # Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories, kappa = 0.210
    counts = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1]]
    counts += [[7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    rows = []
    for i, row in enumerate(counts):
        labels = [f"c{j}" for j, n in enumerate(row) for _ in range(n)]
        rows += [(f"s{i}", f"r{k}", label) for k, label in enumerate(labels)]
    long = pl.DataFrame(rows, schema=["item", "annotator", "label"], orient="row")
    assert fleiss_kappa(long) == pytest.approx(0.20993, abs=1e-5)


# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", nominal data with missing values.
KRIPPENDORFF = _long(
    {
        "A": ["1", "2", "3", "3", "2", "1", "4", "1", "2", None, None, None],
        "B": ["1", "2", "3", "3", "2", "2", "4", "1", "2", "5", None, "3"],
        "C": [None, "3", "3", "3", "2", "3", "4", "2", "2", "5", "1", None],
        "D": ["1", "2", "3", "3", "2", "4", "4", "1", "2", "5", "1", None],
    }
)


def test_krippendorff_alpha_matches_the_published_example() -> None:
    assert krippendorff_alpha(KRIPPENDORFF) == pytest.approx(0.743, abs=5e-4)


def test_cohen_kappa_per_pair_matches_scikit_learn() -> None:
    wide = KRIPPENDORFF.pivot(on="annotator", index="item", values="label").sort("item")
    for a, b, items, _, kappa in cohen_kappa_pairs(KRIPPENDORFF).iter_rows():
        both = wide.select(a, b).drop_nulls()
        assert both.height == items
        assert kappa == pytest.approx(cohen_kappa_score(both[a].to_list(), both[b].to_list()))


def test_undefined_statistics_are_none_and_single_ratings_do_not_count() -> None:
    same = _long({"x": ["a", "a"], "y": ["a", "a"], "z": ["a", None]})
    assert fleiss_kappa(same) is None and krippendorff_alpha(same) is None
    assert cohen_kappa_pairs(same)["kappa"].null_count() == 3
    lone = _long({"x": ["a", None], "y": [None, "b"]})
    assert fleiss_kappa(lone) is None and cohen_kappa_pairs(lone).is_empty()


def test_repeated_rating_keeps_the_first_and_summary_masks_email_ids() -> None:
    long = pl.DataFrame(
        {
            "item": ["i1", "i1", "i1", "i2", "i2"],
            "annotator": ["ann@example.com", "ann@example.com", "bo", "ann@example.com", "bo"],
            "label": ["a", "b", "a", "b", "a"],
        }
    )
    summary = annotator_agreement(long)
    assert summary["items_multi_rated"] == 2 and summary["annotators"] == 2
    ann = mask_value("ann@example.com")  # masked:<8 hex>, as every id shown from the data
    assert ann.startswith("masked:") and summary["disagreement_rate"] == {ann: 0.5, "bo": 0.5}
    assert [p["a"] for p in summary["cohen_kappa"]] == [ann]
    assert "ann@example.com" not in repr(summary)
