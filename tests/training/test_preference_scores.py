"""DPO preference accuracy counts a tie as half a win, not as a loss."""

from __future__ import annotations

import pytest
import torch

from training.dpo import preference_scores


@pytest.mark.parametrize(
    ("chosen", "rejected", "accuracy", "ties"),
    [
        ([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], 0.5, 1.0),  # before training: all ties, chance
        ([0.3, 0.2, -0.1, 0.0], [0.1, 0.4, -0.1, 0.00001], 0.5, 0.5),  # one win, one loss, two ties (within 1e-4)
        ([1.0, 2.0], [0.0, 1.0], 1.0, 0.0),
    ],
)
def test_ties_count_half(chosen: list[float], rejected: list[float], accuracy: float, ties: float) -> None:
    scores = preference_scores(torch.tensor(chosen), torch.tensor(rejected))
    assert scores == {"preference_accuracy": pytest.approx(accuracy), "preference_ties": pytest.approx(ties)}
