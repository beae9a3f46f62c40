"""The gate's ``fidelity`` check: how much each stage rewrote the text it kept.

The runner records ``stats["fidelity"]`` for every stage (``curation.core.fidelity``):
rows compared and rewritten, and the replaced values, masked by shape. Here those
figures become constant derived columns, one pair per stage that rewrote anything, so
GX asserts on them like on any column: the share of rows rewritten against
``checks.fidelity.max_rewrite_share``, and the rows of the most repeated replaced word or
number against ``checks.fidelity.max_repeated_value_rows``. A warning by default.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from curation.core.runfiles import read_stats


@dataclass(frozen=True)
class StageRewrite:
    """What one stage rewrote, as the gate needs it.

    Attributes:
        stage: the stage's name, with ``#<index>`` when the run has it twice.
        slug: its directory name made a column suffix (``01_normalize``).
        rows_compared: rows kept by the stage and present in its input.
        rows_rewritten: rows with any free-text column changed.
        share: ``rows_rewritten / rows_compared``.
        top_rows: rows holding the most repeated replaced word or number (0: none);
            estimated from the sample when the stage rewrote more rows than were diffed.
        top_value: that replacement, masked (``'Sxxxxx' -> '<PERSON>'``).
        sampled: ``top_rows`` is an estimate from a sample of the rewritten rows.
    """

    stage: str
    slug: str
    rows_compared: int
    rows_rewritten: int
    share: float
    top_rows: int
    top_value: str
    sampled: bool

    @property
    def share_column(self) -> str:
        return f"_rewrite_share_{self.slug}"

    @property
    def repeats_column(self) -> str:
        return f"_repeated_value_rows_{self.slug}"


def _top(fidelity: Mapping[str, Any]) -> tuple[int, str, bool]:
    values = [v for v in fidelity.get("top_replaced", []) if v.get("is_value")]
    if not values:
        return 0, "", False
    top = max(values, key=lambda v: int(v["rows"]))
    diffed, rewritten = int(fidelity.get("rows_diffed", 0)), int(fidelity.get("rows_rewritten", 0))
    sampled = 0 < diffed < rewritten
    rows = round(int(top["rows"]) * rewritten / diffed) if sampled else int(top["rows"])
    return rows, f"{top['before']!r} -> {top['after']!r}", sampled


_NEEDED = ("rows_compared", "rows_rewritten", "share")


def read_rewrites(run_dir: Path, manifest: Mapping[str, Any]) -> list[StageRewrite]:
    """Every stage that rewrote at least one kept row, from its ``stats.json``.

    Stages with no ``fidelity`` record (ingest, a stage that turns rows into new records,
    a stage reused from a run made before fidelity was measured) are left out.

    Raises:
        RunError: a stage's stats.json is damaged.
    """
    entries = [e for e in manifest.get("stages", []) if e.get("name") != "ingest"]
    names = Counter(str(e.get("name")) for e in entries)
    out = []
    for entry in entries:
        path = run_dir / str(entry.get("dir")) / "stats.json"
        fidelity = read_stats(path, missing_ok=True).get("fidelity")  # a damaged file: one RunError line
        if not isinstance(fidelity, dict) or not all(isinstance(fidelity.get(k), int | float) for k in _NEEDED):
            continue  # not measured, or a record this gate cannot read: the report says which stages were not measured
        if not fidelity["rows_rewritten"]:
            continue
        name = str(entry["name"])
        stage = name if names[name] == 1 else f"{name}#{entry.get('index')}"
        rows, value, sampled = _top(fidelity)
        out.append(
            StageRewrite(
                stage=stage,
                slug=re.sub(r"\W", "_", Path(str(entry["dir"])).name),
                rows_compared=int(fidelity["rows_compared"]),
                rows_rewritten=int(fidelity["rows_rewritten"]),
                share=float(fidelity["share"]),
                top_rows=rows,
                top_value=value,
                sampled=sampled,
            )
        )
    return out


def derived_columns(rewrites: list[StageRewrite]) -> list[pl.Expr]:
    """Constant columns GX asserts on: each stage's rewrite share and its most repeated value's rows."""
    exprs = []
    for r in rewrites:
        exprs += [pl.lit(r.share, pl.Float64).alias(r.share_column), pl.lit(r.top_rows, pl.Int64).alias(r.repeats_column)]
    return exprs


def details(rewrites: list[StageRewrite]) -> dict[str, str]:
    """Spec name -> the text a failure line adds: the rows behind the share, the masked value behind the repeats."""
    out = {}
    for r in rewrites:
        out[f"fidelity:{r.stage}"] = f" ({r.share:.1%}: {r.rows_rewritten:,} of {r.rows_compared:,} rows)"
        estimate = ", estimated from a sample" if r.sampled else ""
        out[f"fidelity:{r.stage}:repeats"] = f" ({r.top_value}{estimate})"
    return out
