"""Diagnostics of preference data: length bias, position bias, annotator skew, margins.

Numbers only: no response text, and annotator names only where they are plain words
(``ann_3``, ``w1042``); anything else (an e-mail, a full name) is shown as a short
hash (``curation.core.masking.mask_value``), so that stats.json and the report never
carry a person's name.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from curation.core.masking import mask_value

TOP_ANNOTATORS = 50  # stats.json lists the most skewed; findings hold every annotator
QUANTILES = {"p10": 0.1, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p90": 0.9}


def rate(flags: pl.Series) -> float | None:
    """Share of True in a boolean series (None when empty), rounded for stable JSON."""
    flags = flags.drop_nulls()
    return None if flags.is_empty() else round(float(flags.cast(pl.Float64).mean()), 6)  # type: ignore[arg-type]


def distribution(values: pl.Series) -> dict[str, float | int | None]:
    """Count, mean, min, p10..p90 and max of a numeric series."""
    values = values.drop_nulls().cast(pl.Float64)
    if values.is_empty():
        return {"count": 0}
    frame = values.to_frame("v").select(
        mean=pl.col("v").mean(),
        min=pl.col("v").min(),
        **{k: pl.col("v").quantile(q, "linear") for k, q in QUANTILES.items()},
        max=pl.col("v").max(),
    )
    return {"count": values.len(), **{k: round(float(v), 6) for k, v in frame.row(0, named=True).items()}}


def safe_annotator(name: str) -> str:
    """The annotator id as ``curation.core.masking.mask_value`` shows it; ``(none)`` when empty."""
    return "(none)" if name == "" else str(mask_value(name))


def annotator_table(df: pl.DataFrame) -> pl.DataFrame:
    """Per annotator from rows of ``annotator, skew``: judgements and mean skew, most skewed first."""
    if df.is_empty():
        return pl.DataFrame(schema={"annotator": pl.String, "n": pl.Int64, "skew": pl.Float64})
    table = df.group_by("annotator").agg(n=pl.len().cast(pl.Int64), skew=pl.col("skew").mean().round(6))
    table = table.with_columns(pl.col("annotator").map_elements(safe_annotator, return_dtype=pl.String))
    return table.sort(pl.col("skew").abs(), "annotator", descending=[True, False])


def annotator_summary(df: pl.DataFrame, measure: str) -> dict[str, Any]:
    """The annotator section of the stats: how many, and the most skewed with ``measure``."""
    table = annotator_table(df)
    top = {name: {"n": n, measure: skew} for name, n, skew in table.head(TOP_ANNOTATORS).iter_rows()}
    return {"count": table.height, "measure": measure, "most_skewed": top}
