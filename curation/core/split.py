"""The seeded held-out split and the order of ``repeat`` copies: one home for exports and training.

For the same dataset, share and seed, ``tuneprep export`` writes as validation exactly the
rows ``tuneprep train`` holds out. The split keys each row by a hash of (seed, id), so it
does not depend on row order or library versions; classification is stratified by label.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import polars as pl

from curation.core.schema import Kind


def _unit(seed: int, row_id: str) -> int:
    """A stable 64-bit key per (seed, id)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{row_id}".encode()).digest()[:8], "big")


def held_out(df: pl.DataFrame, *, share: float, seed: int, kind: Kind) -> pl.Series:
    """True for the held-out rows: within each stratum, the ``round(n * share)`` rows with the smallest keys.

    A share above 0 on two or more rows always holds out at least one row and keeps at
    least one for training (the smallest, or largest, key overall).
    """
    if df.height == 0:
        return pl.Series("held_out", [], dtype=pl.Boolean)
    keys = pl.Series("_key", [_unit(seed, str(i)) for i in df["id"].to_list()], dtype=pl.UInt64)
    group = df["label"] if kind == "classification" and "label" in df.columns else pl.repeat(0, df.height, eager=True)
    frame = pl.DataFrame({"_g": group, "_key": keys})
    rank = pl.col("_key").rank("ordinal").over("_g")
    chosen = frame.select(rank <= (pl.len().over("_g") * share).round(0)).to_series()
    if share > 0 and df.height >= 2:
        if not chosen.any():
            chosen = keys == keys.min()
        elif chosen.all():
            chosen = keys != keys.max()
    return chosen.alias("held_out")


def copy_order(copies: Sequence[int]) -> list[int]:
    """Row indices with ``copies[i]`` copies of row i: copy k of every row after all copies k-1.

    So packing spreads a row's copies over blocks, and exports and training write the same sequence.
    """
    out: list[int] = []
    active = [i for i, c in enumerate(copies) if c > 0]
    made = 0
    while active:
        out += active
        made += 1
        active = [i for i in active if copies[i] > made]
    return out
