"""The balance stage's columns, one set of rules for the gate, training and exports.

``sample_weight`` is a finite number >= 0 and not 0 on every row; ``repeat`` is a whole
number >= 1; nulls read as 1. The gate evaluates :func:`issue_expr` per row; training
calls :func:`require_usable` before it reads the columns, so what the gate passes,
training accepts, and the other way round.
"""

from __future__ import annotations

import polars as pl

from curation.core.errors import SchemaError

WEIGHT_RULE = "a finite number >= 0"
REPEAT_RULE = "a whole number >= 1"
ALL_ZERO = "every `sample_weight` is 0, so no row would be learned from"


def _bad_weight(schema: pl.Schema) -> pl.Expr:
    w = pl.col("sample_weight")
    if not schema["sample_weight"].is_numeric():
        return w.is_not_null()
    return w.is_not_null() & (~w.cast(pl.Float64).is_finite() | (w < 0))  # NaN and inf are not finite


def _bad_repeat(schema: pl.Schema) -> pl.Expr:
    r = pl.col("repeat")
    return r.is_not_null() & (r < 1) if schema["repeat"].is_integer() else r.is_not_null()


def weight_zero() -> pl.Expr:
    """Per row: its weight reads as 0 (a null reads as 1)."""
    return pl.col("sample_weight").cast(pl.Float64, strict=False).fill_null(1.0) == 0


def issue_expr(schema: pl.Schema, *, all_zero: pl.Expr | None = None) -> pl.Expr:
    """Per row: why its balance columns are unusable for training, or null when fine.

    ``all_zero``: whether every weight is 0, when known elsewhere (the Spark gate, per batch); default: over this frame.
    """
    issues = []
    if "sample_weight" in schema:
        issues.append(pl.when(_bad_weight(schema)).then(pl.lit(f"`sample_weight` is not {WEIGHT_RULE}")))
        if schema["sample_weight"].is_numeric():
            issues.append(pl.when(weight_zero().all() if all_zero is None else all_zero).then(pl.lit(ALL_ZERO)))
    if "repeat" in schema:
        issues.append(pl.when(_bad_repeat(schema)).then(pl.lit(f"`repeat` is not {REPEAT_RULE}")))
    return pl.coalesce(issues) if issues else pl.lit(None, dtype=pl.String)


def _where(df: pl.DataFrame, bad: pl.Series) -> str:
    first = int(bad.arg_true()[0])
    more = int(bad.sum()) - 1
    return f"row {first} (0-based) and {more} more" if more else f"row {first} (0-based)"


def require_usable(df: pl.DataFrame, *, hint: str) -> None:
    """Raise one line naming the first rule ``df``'s balance columns break, with ``hint`` appended.

    Raises:
        SchemaError: a column has the wrong type, a weight or repeat breaks its rule, or every weight is 0.
    """
    if "sample_weight" in df.columns:
        column = df["sample_weight"]
        if not column.dtype.is_numeric():
            raise SchemaError(f"`sample_weight` must be a number column, got {column.dtype}; rerun the `balance` stage {hint}")
        bad = df.select(_bad_weight(df.schema)).to_series().fill_null(False)
        if bad.any():
            value = column.filter(bad)[0]
            raise SchemaError(f"`sample_weight` must be {WEIGHT_RULE}, got {value} at {_where(df, bad)}; fix the weights {hint}")
        if df.height and df.select(weight_zero().all()).item():
            raise SchemaError(f"{ALL_ZERO}; check `balance.target.shares` {hint}")
    if "repeat" in df.columns:
        column = df["repeat"]
        if not column.dtype.is_integer():
            raise SchemaError(
                f"`repeat` must be an integer column (copies of the row), got {column.dtype}; rerun the `balance` stage {hint}"
            )
        bad = df.select(_bad_repeat(df.schema)).to_series().fill_null(False)
        if bad.any():
            raise SchemaError(f"`repeat` must be at least 1, got {column.filter(bad)[0]} at {_where(df, bad)}; fix the counts {hint}")
