"""The per-row numbers the balance report is made of (``RowProfile``), and the lengths' summary.

``curation.stages.balance.stage.row_profile`` computes a profile in this process; the Spark
engine computes the same one with ``mapInArrow`` and aggregates
(``curation.spark.balance``). Everything after the profile (alerts, Clarify, summaries,
outliers, representativeness, weights) is the stage's own code on both engines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from curation.core.stage import StageContext
from curation.stages.balance import bias_metrics as bm

if TYPE_CHECKING:
    from curation.stages.balance.representativeness import Reference
    from curation.stages.balance.stage import BalanceConfig

Outside = Callable[[str, float, float], tuple[list[str], np.ndarray]]


@dataclass(frozen=True)
class RowProfile:
    """What ``describe`` reads from the rows: per-row numbers summed up, made by ``row_profile``
    here and by ``curation.spark.balance`` on Spark (the same numbers)."""

    counts: dict[str, dict[str, int]]  # facet (and label) column -> ``value_counts``
    pairs: dict[str, dict[tuple[str, str], int]] | None  # facet -> ``facet_label_counts``; None without a label column
    chars: np.ndarray  # characters of each row's full text, in any order
    tokens: np.ndarray  # tokens of each row's full text, in the same order
    by_label: dict[str, tuple[np.ndarray, np.ndarray]] | None  # class (``top_classes``) -> its rows' chars and tokens
    outside: Outside  # "chars"/"tokens" and fences -> ids and values of the rows outside them, in row order
    distinct: dict[str, float | None]  # ``distinct_n`` of the full texts
    unique_texts: int  # distinct full texts
    inputs: tuple[np.ndarray, np.ndarray] | None  # input text chars and tokens per row (with a reference)


Profiler = Callable[[pl.DataFrame, list[str], "BalanceConfig", "Reference | None", StageContext], RowProfile]


def length_summary(
    chars: np.ndarray, tokens: np.ndarray, by_label: dict[str, tuple[np.ndarray, np.ndarray]] | None, unit: str, outside: Outside
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``length_stats`` from the lengths in any order (only their distribution is used) and ``outside``:
    measure and fences -> ids and values of the rows outside them, in row order."""
    out: dict[str, Any] = {"token_unit": unit, "chars": bm.summary(chars), "tokens": bm.summary(tokens), "outliers": {}}
    findings: list[dict[str, Any]] = []
    for name, values in (("chars", chars), ("tokens", tokens)):
        fences = bm.iqr_fences(values)
        if fences is None:
            continue
        low, high = fences
        ids, found = outside(name, low, high)
        out["outliers"][name] = {"low_fence": low, "high_fence": high, "count": len(ids), "share": len(ids) / len(values)}
        findings += [
            {
                "id": i,
                "finding": "length_outlier",
                "facet": name,
                "value": "high" if v > high else "low",
                "metric": float(v),
                "detail": f"fences {low:g}..{high:g}",
            }
            for i, v in zip(ids, found, strict=True)
        ]
    if by_label is not None:
        out["by_label"] = {c: {"chars": bm.summary(ch), "tokens": bm.summary(tok)} for c, (ch, tok) in by_label.items()}
    return out, findings
