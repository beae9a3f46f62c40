"""The `normalize` stage: Unicode NFC, control characters out, whitespace tidied.

It changes text but drops nothing except rows whose required text becomes empty,
which it drops with reason ``empty_after_normalize``.
"""

from __future__ import annotations

import polars as pl

from curation.core.options import Strict
from curation.core.schema import NON_EMPTY, text_fields
from curation.core.stage import StageContext, StageResult, with_reason

# C0/C1 control characters except tab and newline, plus zero-width and BOM characters.
_CONTROL = r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff]"


class NormalizeConfig(Strict):
    unicode_form: str = "NFC"  # NFC keeps meaning; NFKC also folds compatibility forms
    strip_control: bool = True
    collapse_spaces: bool = True  # runs of spaces/tabs -> one space; newlines kept
    max_blank_lines: int = 1  # at most this many empty lines in a row
    strip: bool = True


def _clean(expr: pl.Expr, cfg: NormalizeConfig) -> pl.Expr:
    expr = expr.str.normalize(cfg.unicode_form)  # type: ignore[arg-type]
    if cfg.strip_control:
        expr = expr.str.replace_all(_CONTROL, "")
    expr = expr.str.replace_all(r"\r\n?", "\n")
    if cfg.collapse_spaces:
        expr = expr.str.replace_all(r"[ \t\u00a0]+", " ").str.replace_all(r" *\n *", "\n")
    blank = "\n" * (cfg.max_blank_lines + 2)
    expr = expr.str.replace_all(r"\n{" + str(cfg.max_blank_lines + 2) + ",}", blank[:-1])
    return expr.str.strip_chars() if cfg.strip else expr


def normalize(df: pl.DataFrame, cfg: NormalizeConfig, ctx: StageContext) -> StageResult:
    """Normalise every free-text column of the kind (message contents included)."""
    fields = text_fields(ctx.kind, df.columns)
    exprs = []
    for f in fields:
        if f == "messages":
            exprs.append(
                pl.col(f).list.eval(
                    pl.struct(pl.element().struct.field("role"), _clean(pl.element().struct.field("content"), cfg).alias("content"))
                )
            )
        else:
            exprs.append(_clean(pl.col(f), cfg))
    out = df.with_columns(exprs) if exprs else df
    changed = sum(int((out[f] != df[f]).fill_null(False).sum()) for f in fields if f != "messages")
    required_empty = [f for f in fields if f in NON_EMPTY]
    empty = pl.any_horizontal([pl.col(f).fill_null("").str.len_chars() == 0 for f in required_empty]) if required_empty else pl.lit(False)
    kept, dropped = out.filter(~empty), out.filter(empty)
    stats = {"values_changed": changed, "fields": fields}
    return StageResult(kept=kept, dropped=with_reason(dropped, "empty_after_normalize"), stats=stats)
