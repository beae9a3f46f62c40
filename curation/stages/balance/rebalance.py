"""Sampling weights and optional re-sampling towards a target distribution of one facet.

Weights: every kept row of facet value ``c`` gets ``sample_weight = t_c * E / e_c`` (t the
target share, e the effective count of c, E the total), so the weighted shares equal the
target and the weights average 1. Re-sampling, when asked:

- ``down``: the largest subset whose shares match the target; rows are chosen with the
  run's seed (independent of input row order) and the rest are dropped with reason
  ``rebalance``, like any other drop.
- ``up``: nothing is dropped (every row must leave the stage once, so rows are not
  duplicated); instead a ``repeat`` column says how many copies of each row reach the
  target shares at the size of the largest group.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import field_validator, model_validator

from curation.core.errors import ConfigError
from curation.core.masking import mask_value
from curation.core.options import Strict
from curation.core.stage import empty_like, with_reason

MISSING = "<missing>"  # the facet value of rows whose facet column is null
_KEY, _RANK = "__rebalance_key", "__rebalance_rank"


class TargetConfig(Strict):
    """The distribution to aim at for one facet."""

    facet: str = "label"  # the column whose distribution is targeted
    shares: dict[str, float] | Literal["uniform"] = "uniform"  # value -> share (normalised); null values are "<missing>"
    rebalance: Literal["off", "down", "up"] = "off"  # off: weights only; down: drop rows; up: `repeat` counts

    @field_validator("rebalance", mode="before")
    @classmethod
    def _yaml_off(cls, v: object) -> object:
        return "off" if v is False else v  # YAML 1.1 reads a bare `off` as false

    @model_validator(mode="after")
    def _check_shares(self) -> TargetConfig:
        if isinstance(self.shares, dict):
            if not self.shares:
                raise ValueError("`shares` must name at least one value, or be `uniform`")
            if any(v < 0 or not math.isfinite(v) for v in self.shares.values()):
                raise ValueError("`shares` must be non-negative numbers")
            if sum(self.shares.values()) <= 0:
                raise ValueError("`shares` must not all be zero")
            if self.rebalance == "up" and any(v == 0 for v in self.shares.values()):
                raise ValueError("`rebalance: up` never drops rows, so every share must be above 0; use `down` to remove a value")
        return self


def seeded_keys(ids: pl.Series, seed: int) -> np.ndarray:
    """One uniform random key per row, tied to the row's id rank, not its position."""
    keys = np.random.default_rng(seed).random(len(ids))
    return keys[ids.rank("ordinal").to_numpy() - 1] if len(ids) else keys


def target_shares(counts: dict[str, int], cfg: TargetConfig) -> tuple[dict[str, float], list[str]]:
    """Normalised target shares over the values present, and named values absent from the data.

    Raises:
        ConfigError: the data has values that ``shares`` does not name.
    """
    present = sorted(counts)
    if cfg.shares == "uniform":
        return {v: 1.0 / len(present) for v in present}, []
    unnamed = [v for v in present if v not in cfg.shares]
    if unnamed:
        shown = ", ".join(f"'{mask_value(v)}'" for v in unnamed[:5]) + (" ..." if len(unnamed) > 5 else "")
        raise ConfigError(
            f"`balance.target.shares` does not name {len(unnamed)} value(s) of `{cfg.facet}` found in the data: {shown}; add them (0 removes a value with `rebalance: down`)"
        )
    total = sum(cfg.shares[v] for v in present)
    if total <= 0:
        raise ConfigError(f"`balance.target.shares` gives 0 to every value of `{cfg.facet}` present in the data")
    return {v: cfg.shares[v] / total for v in present}, sorted(set(cfg.shares) - set(present))


def _down_counts(counts: dict[str, int], shares: dict[str, float]) -> dict[str, int]:
    size = min(counts[v] / t for v, t in shares.items() if t > 0)
    return {v: min(counts[v], math.floor(t * size + 1e-9)) for v, t in shares.items()}


def _up_counts(counts: dict[str, int], shares: dict[str, float]) -> dict[str, int]:
    size = max(counts[v] / t for v, t in shares.items())
    return {v: max(counts[v], round(t * size)) for v, t in shares.items()}


def _weights(effective: dict[str, int], shares: dict[str, float]) -> dict[str, float]:
    total = sum(effective.values())
    return {v: (shares[v] * total / n if n else 0.0) for v, n in effective.items()}


def rebalance(df: pl.DataFrame, cfg: TargetConfig, seed: int) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """Kept rows with ``sample_weight`` (and ``repeat`` for ``up``), dropped rows, and stats.

    Raises:
        ConfigError: the facet is not a column, or ``shares`` misses values in the data.
    """
    if cfg.facet not in df.columns:
        raise ConfigError(f"`balance.target.facet` '{cfg.facet}' is not a column of the data; columns: {', '.join(df.columns)}")
    value = pl.col(cfg.facet).cast(pl.String).fill_null(MISSING)
    counts = dict(df.group_by(value.alias("v")).len().sort("v").iter_rows())
    shares, absent = target_shares(counts, cfg)
    if not counts:  # no rows: nothing to weigh or sample
        kept = df.with_columns(pl.lit(None, pl.Float64).alias("sample_weight"))
        return kept, empty_like(df, reason=pl.String()), {"facet": cfg.facet, "mode": cfg.rebalance, "dropped": 0, "absent_values": absent}
    work = df.with_columns(pl.Series(_KEY, seeded_keys(df["id"], seed)))
    work = work.with_columns(pl.col(_KEY).rank("ordinal").over(value).alias(_RANK))
    if cfg.rebalance == "down":
        quota = _down_counts(counts, shares)
        keep = pl.col(_RANK) <= value.replace_strict(quota, return_dtype=pl.Int64)
        kept, dropped = work.filter(keep), work.filter(~keep)
        effective = quota
    else:
        kept, dropped = work, work.clear()
        effective = _up_counts(counts, shares) if cfg.rebalance == "up" else counts
    if cfg.rebalance == "up":  # base copies for all, one more for the first (k mod n) by key
        base = {v: effective[v] // counts[v] for v in counts}
        extra = {v: effective[v] % counts[v] for v in counts}
        repeat = value.replace_strict(base, return_dtype=pl.Int64) + (
            pl.col(_RANK) <= value.replace_strict(extra, return_dtype=pl.Int64)
        ).cast(pl.Int64)
        kept = kept.with_columns(repeat.alias("repeat"))
    weights = _weights(effective, shares)
    kept = kept.with_columns(value.replace_strict(weights, return_dtype=pl.Float64).alias("sample_weight")).drop(_KEY, _RANK)
    dropped = with_reason(dropped.drop(_KEY, _RANK), "rebalance") if dropped.height else empty_like(df, reason=pl.String())
    masked = {"target_shares": shares, "before": counts, "after": effective, "weights": weights}
    stats: dict[str, Any] = {k: {mask_value(v): x for v, x in m.items()} for k, m in masked.items()}
    stats.update(facet=cfg.facet, mode=cfg.rebalance, dropped=dropped.height, absent_values=[mask_value(v) for v in absent])
    return kept, dropped, stats
