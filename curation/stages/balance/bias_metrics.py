"""The numbers behind the balance report: bias, drift and diversity metrics, numpy only.

- Clarify pre-training bias metrics (CI, DPL, KL, JS, LP, TVD, KS) for one facet value
  against the rest, over the label, from a facet x label count table. The formulas are
  those of SageMaker Clarify (``smclarify.bias.metrics.pretraining``), with ``a`` the
  rest of the data and ``d`` the facet value.
- Drift of a categorical distribution against a reference: PSI and JS.
- Two-sample Kolmogorov-Smirnov statistic for lengths.
- Embedding-space coverage and density (Naeem et al. 2020) and the Vendi score
  (Friedman and Dieng 2023).

Undefined values are ``None`` with a reason, never ``inf`` or ``NaN``: stats.json must
stay valid JSON and a reader must see why a number is missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

CLARIFY_METRICS = ("CI", "DPL", "KL", "JS", "LP", "TVD", "KS")
PSI_FLOOR = 1e-4  # shares below this are floored before PSI's log (Evidently's convention)


# ---------------------------------------------------------------------------- Clarify
def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) in nats over the support of p; the caller ensures q > 0 there."""
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def _js(p: np.ndarray, q: np.ndarray) -> float:
    m = 0.5 * (p + q)
    return 0.5 * (_kl(p, m) + _kl(q, m))


def clarify_metrics(
    facet_counts: Sequence[int] | np.ndarray, rest_counts: Sequence[int] | np.ndarray, labels: Sequence[str]
) -> dict[str, Any]:
    """Clarify's pre-training metrics for a facet value ``d`` against the rest ``a``.

    Args:
        facet_counts: rows of the facet value per label (aligned with ``labels``).
        rest_counts: rows of every other facet value per label.
        labels: the label values, in the order of the counts.

    Returns:
        ``{"n": nd, "CI": ..., "DPL": {label: qa - qd}, "KL": ..., "JS": ..., "LP": ...,
        "TVD": ..., "KS": ..., "undefined": {metric: reason}}``. Metrics are computed over
        the full label set (a label one side lacks counts as probability 0); a metric that
        is undefined is ``None`` and its reason is in ``undefined``.
    """
    d = np.asarray(facet_counts, dtype=np.float64)
    a = np.asarray(rest_counts, dtype=np.float64)
    nd, na = float(d.sum()), float(a.sum())
    out: dict[str, Any] = {"n": int(nd), "undefined": {}}
    # CI = (na - nd) / (na + nd): +1 when the facet value has no rows at all.
    out["CI"] = (na - nd) / (na + nd) if na + nd > 0 else None
    if out["CI"] is None:
        out["undefined"]["CI"] = "no rows at all"
    reason = "facet value has no rows" if nd == 0 else "no other facet value has rows" if na == 0 else None
    if reason is not None:
        for name in CLARIFY_METRICS[1:]:
            out[name] = None
            out["undefined"][name] = reason
        return out
    pa, pd = a / na, d / nd
    out["DPL"] = {label: float(x) for label, x in zip(labels, pa - pd, strict=True)}
    if np.any((pa > 0) & (pd == 0)):
        out["KL"] = None  # KL(Pa || Pd) is infinite
        out["undefined"]["KL"] = "infinite: the facet value lacks a label the rest has"
    else:
        out["KL"] = _kl(pa, pd)
    out["JS"] = _js(pa, pd)
    out["LP"] = float(np.linalg.norm(pa - pd, 2))
    out["TVD"] = 0.5 * float(np.abs(pa - pd).sum())
    out["KS"] = float(np.abs(pa - pd).max())
    return out


# ---------------------------------------------------------------------------- drift
def aligned_shares(current: Mapping[str, int], reference: Mapping[str, int]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The union of categories (sorted) and both share vectors over it."""
    keys = sorted(set(current) | set(reference))
    p = np.array([current.get(k, 0) for k in keys], dtype=np.float64)
    q = np.array([reference.get(k, 0) for k in keys], dtype=np.float64)
    return keys, p / max(p.sum(), 1.0), q / max(q.sum(), 1.0)


def psi(current: Mapping[str, int], reference: Mapping[str, int]) -> float | None:
    """Population stability index, sum((p - q) * ln(p / q)), shares floored at PSI_FLOOR.

    ``None`` when either side is empty.
    """
    if not sum(current.values()) or not sum(reference.values()):
        return None
    _, p, q = aligned_shares(current, reference)
    p, q = np.clip(p, PSI_FLOOR, None), np.clip(q, PSI_FLOOR, None)
    return float(np.sum((p - q) * np.log(p / q)))


def js_divergence(current: Mapping[str, int], reference: Mapping[str, int]) -> float | None:
    """Jensen-Shannon divergence in nats (0 to ln 2); ``None`` when either side is empty."""
    if not sum(current.values()) or not sum(reference.values()):
        return None
    _, p, q = aligned_shares(current, reference)
    return _js(p, q)


def ks_statistic(x: np.ndarray, y: np.ndarray) -> float | None:
    """Two-sample KS statistic: the largest gap between the empirical CDFs."""
    if len(x) == 0 or len(y) == 0:
        return None
    xs, ys = np.sort(x), np.sort(y)
    grid = np.concatenate([xs, ys])
    fx = np.searchsorted(xs, grid, side="right") / len(xs)
    fy = np.searchsorted(ys, grid, side="right") / len(ys)
    return float(np.abs(fx - fy).max())


# ---------------------------------------------------------------------------- embeddings
def _sq_dists(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between rows, shape (len(x), len(y)), clipped at 0."""
    x, y = x.astype(np.float64, copy=False), y.astype(np.float64, copy=False)
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    return np.maximum(d, 0.0)


def knn_radii(real: np.ndarray, k: int, *, chunk: int = 1024) -> np.ndarray:
    """Squared distance from each row of ``real`` to its k-th nearest other row."""
    radii = np.empty(len(real), dtype=np.float64)
    for start in range(0, len(real), chunk):
        d = _sq_dists(real[start : start + chunk], real)
        # column k of the partition: index 0 is the point itself (distance 0).
        radii[start : start + chunk] = np.partition(d, k, axis=1)[:, k]
    return radii


def coverage_density(real: np.ndarray, fake: np.ndarray, k: int = 5, *, chunk: int = 1024) -> dict[str, float]:
    """Naeem et al. 2020: how well ``fake`` (the dataset) covers ``real`` (the reference).

    coverage = share of reference points whose k-NN ball holds at least one dataset point;
    density = mean number of reference balls holding a dataset point, divided by k
    (about 1 when both come from one distribution; above 1 where the dataset crowds).

    Raises:
        ValueError: fewer than ``k + 1`` reference points.
    """
    if len(real) <= k:
        raise ValueError(f"coverage needs more than k={k} reference points, got {len(real)}")
    radii = knn_radii(real, k, chunk=chunk)
    covered = np.zeros(len(real), dtype=bool)
    inside = 0
    for start in range(0, len(fake), chunk):
        hit = _sq_dists(fake[start : start + chunk], real) <= radii[None, :]  # (chunk, n_real)
        covered |= hit.any(axis=0)
        inside += int(hit.sum())
    return {"coverage": float(covered.mean()), "density": inside / (k * len(fake)) if len(fake) else 0.0}


def vendi_score(x: np.ndarray) -> float:
    """Vendi score with the cosine kernel: exp of the entropy of the eigenvalues of K/n.

    K = X X^T (n x n) has the same non-zero eigenvalues as X^T X (d x d), so this works
    on the d x d matrix and scales to any n. Rows are L2-normalised here. 1 means every
    row is the same; the maximum is min(n, d).
    """
    if len(x) == 0:
        return 0.0
    x = x.astype(np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    eig = np.linalg.eigvalsh(x.T @ x / len(x))
    eig = eig[eig > 1e-12]
    return float(math.exp(-np.sum(eig * np.log(eig))))


# ---------------------------------------------------------------------------- summaries
def summary(values: np.ndarray) -> dict[str, float | int | None]:
    """count, mean, min, p5, p25, median, p75, p95, max (None for an empty array)."""
    if len(values) == 0:
        return {"count": 0, "mean": None, "min": None, "p5": None, "p25": None, "median": None, "p75": None, "p95": None, "max": None}
    q = np.percentile(values, [5, 25, 50, 75, 95])
    return {
        "count": len(values),
        "mean": round(float(values.mean()), 4),
        "min": float(values.min()),
        "p5": float(q[0]),
        "p25": float(q[1]),
        "median": float(q[2]),
        "p75": float(q[3]),
        "p95": float(q[4]),
        "max": float(values.max()),
    }


def iqr_fences(values: np.ndarray, factor: float = 1.5) -> tuple[float, float] | None:
    """Tukey's fences (Q1 - factor*IQR, Q3 + factor*IQR); None for an empty array."""
    if len(values) == 0:
        return None
    q1, q3 = np.percentile(values, [25, 75])
    return float(q1 - factor * (q3 - q1)), float(q3 + factor * (q3 - q1))
