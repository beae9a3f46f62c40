"""Ratings generators with injected biases (position, length, annotator offsets), for the preferences tests and benchmark."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import polars as pl

_WORDS = [
    "the",
    "account",
    "billing",
    "order",
    "refund",
    "password",
    "device",
    "update",
    "screen",
    "network",
    "delivery",
    "support",
    "invoice",
]


def _text(rng: random.Random, chars: int, tag: str) -> str:
    words = [tag]
    while sum(len(w) + 1 for w in words) < chars:
        words.append(rng.choice(_WORDS))
    return " ".join(words)[:chars]


def pairwise_ratings(
    n_prompts: int,
    *,
    p_pos: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4),
    p_len: float = 0.3,
    p_tie: float = 0.05,
    responses: int = 4,
    per_annotator: int = 2,
    seed: int = 0,
) -> tuple[pl.DataFrame, dict[str, float]]:
    """Pairwise judgements with injected position and length bias; returns the rows and expected rates."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for p in range(n_prompts):
        lengths = rng.sample(range(40, 400), responses)  # distinct, so 'longer' is always defined
        texts = [_text(rng, n, f"r{p}-{i}") for i, n in enumerate(lengths)]
        quality = [rng.random() for _ in texts]
        for j, bias in enumerate(p_pos):
            for _ in range(per_annotator):
                i, k = rng.sample(range(responses), 2)  # i shown as A, k as B
                u = rng.random()
                if rng.random() < p_tie:
                    winner = "tie"
                elif u < bias:
                    winner = "a"
                elif u < bias + p_len:
                    winner = "a" if lengths[i] > lengths[k] else "b"
                else:
                    winner = "a" if quality[i] > quality[k] else "b"
                rows.append(
                    {
                        "id": f"j{len(rows)}",
                        "prompt": f"prompt {p}",
                        "response_a": texts[i],
                        "response_b": texts[k],
                        "winner": winner,
                        "annotator": f"ann_{j}",
                    }
                )
    expected = {"a_win_rate": 0.5 + sum(p_pos) / len(p_pos) / 2, "judged_chosen_longer_rate": 0.5 + p_len / 2}
    expected |= {f"ann_{j}": b / 2 for j, b in enumerate(p_pos)}  # a_win_rate - 0.5
    return pl.DataFrame(rows), expected


def _expected_length_rate(weight: float, var: float) -> float:
    """E[Phi(weight * d / sqrt(2 var))], d half-normal with scale sqrt(2)."""
    d = np.linspace(0, 12, 24001)
    density = 2 * np.exp(-(d**2) / 4) / math.sqrt(4 * math.pi)
    phi = 0.5 * (1 + np.vectorize(math.erf)(weight * d / math.sqrt(2 * var) / math.sqrt(2)))
    return float(np.sum(density * phi) * (d[1] - d[0]))


def score_ratings(
    n_prompts: int,
    *,
    offsets: tuple[float, ...] = (-0.6, 0.0, 0.2, 0.8),
    length_weight: float = 0.5,
    noise: float = 0.5,
    responses: int = 4,
    near_duplicates: float = 0.1,
    seed: int = 0,
) -> tuple[pl.DataFrame, dict[str, float]]:
    """Scores with injected annotator offsets and length bias; some prompts get a near-duplicate response."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for p in range(n_prompts):
        zs = [rng.gauss(0, 1) for _ in range(responses)]
        texts = [_text(rng, max(20, int(200 + 60 * z)), f"r{p}-{i}") for i, z in enumerate(zs)]
        quality = [rng.gauss(0, 1) for _ in texts]
        if rng.random() < near_duplicates:  # a copy differing in case only
            texts[-1], zs[-1], quality[-1] = texts[0].upper(), zs[0], quality[0]
        for j, off in enumerate(offsets):
            for i, text in enumerate(texts):
                score = quality[i] + length_weight * zs[i] + off + rng.gauss(0, noise)
                rows.append({"id": f"s{len(rows)}", "prompt": f"prompt {p}", "response": text, "score": score, "annotator": f"ann_{j}"})
    mean_off = sum(offsets) / len(offsets)
    expected = {"judged_chosen_longer_rate": _expected_length_rate(length_weight, 1 + noise**2)}
    expected |= {f"ann_{j}": o - mean_off for j, o in enumerate(offsets)}  # mean deviation
    return pl.DataFrame(rows, schema_overrides={"score": pl.Float64}), expected
