"""The `normalize` stage: Unicode NFC, control and zero-width characters out, line ends tidied.

Safe by default: it never touches the start of a line, so code indentation, tabs,
blank lines inside code and Markdown fences survive (docs/normalize.md). The two
options that change more (``collapse_spaces``, ``max_blank_lines``) are opt-in and
then leave code alone (``curation.stages.normalize.prose``).

It changes text but drops nothing except rows whose required text becomes empty,
which it drops with reason ``empty_after_normalize``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import polars as pl
from pydantic import Field

from curation.core.options import Strict
from curation.core.schema import NON_EMPTY, text_fields
from curation.core.stage import StageContext, StageResult, with_reason
from curation.stages.normalize.prose import tidy_prose

# C0/C1 control characters except tab, newline and carriage return (line endings are
# tidied next), zero-width space, word joiner, Mongolian vowel separator and BOM.
_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u180e\u200b\u2060\ufeff]"
# Zero-width (non-)joiners shape Persian, Indic scripts and emoji sequences between two
# characters; at the edge of a word or line they are noise.
_JOINER_AFTER_SPACE = r"(?m)(^|\s)[\u200c\u200d]+"
_JOINER_BEFORE_SPACE = r"(?m)[\u200c\u200d]+(\s|$)"


class NormalizeConfig(Strict):
    """Options of the `normalize` stage; docs/normalize.md explains each one."""

    unicode_form: Literal["NFC", "NFKC", "NFD", "NFKD"] = "NFC"  # NFC keeps meaning; NFKC also folds ligatures, full-width forms
    strip_control: bool = True  # control, zero-width and BOM characters out (tab and newline kept)
    line_endings: bool = True  # CRLF and lone CR -> LF
    strip_trailing: bool = True  # spaces and tabs at the end of every line
    strip: bool = True  # blank lines before the first line and whitespace after the last; the first line's indentation stays
    collapse_spaces: bool = False  # opt-in: runs of spaces inside prose lines -> one space; never at line start, never in code
    max_blank_lines: int | None = Field(default=None, ge=0)  # opt-in: at most this many empty lines in a row in prose; code keeps its own


def clean(expr: pl.Expr, cfg: NormalizeConfig) -> pl.Expr:
    """The default, vectorised part: every step leaves the leading whitespace of a line alone."""
    if cfg.strip_control:
        expr = expr.str.replace_all(_CONTROL, "")
        expr = expr.str.replace_all(_JOINER_AFTER_SPACE, "${1}").str.replace_all(_JOINER_BEFORE_SPACE, "${1}")
    expr = expr.str.normalize(cfg.unicode_form)  # after the removals: a base and its mark may meet only then
    if cfg.line_endings:
        expr = expr.str.replace_all(r"\r\n?", "\n")
    if cfg.strip_trailing:
        expr = expr.str.replace_all(r"(?m)[ \t]+$", "")
    if cfg.strip:
        expr = expr.str.replace(r"^(?:[ \t]*(?:\r\n?|\n))+", "").str.strip_chars_end()
    return expr


def _opt_in(cfg: NormalizeConfig) -> Callable[[str], str] | None:
    if not cfg.collapse_spaces and cfg.max_blank_lines is None:
        return None
    return lambda text: tidy_prose(text, collapse_spaces=cfg.collapse_spaces, max_blank_lines=cfg.max_blank_lines)


def _normalize_column(s: pl.Series, cfg: NormalizeConfig) -> pl.Series:
    """One text column, or a ``messages`` column (each message's content)."""
    extra = _opt_in(cfg)
    if s.dtype == pl.String:
        out = s.to_frame().select(clean(pl.col(s.name), cfg)).to_series()
        return out if extra is None else out.map_elements(extra, return_dtype=pl.String)
    contents = s.list.eval(pl.element().struct.field("content"))
    cleaned = contents.to_frame().select(pl.col(s.name).list.eval(clean(pl.element(), cfg))).to_series()
    if extra is not None:
        cleaned = pl.Series(s.name, [None if c is None else [extra(t) for t in c] for c in cleaned.to_list()], dtype=cleaned.dtype)
    roles = s.list.eval(pl.element().struct.field("role"))
    rebuilt = [
        None if r is None else [{"role": role, "content": text} for role, text in zip(r, c, strict=True)]
        for r, c in zip(roles.to_list(), cleaned.to_list(), strict=True)
    ]
    return pl.Series(s.name, rebuilt, dtype=s.dtype)


def normalize_texts(texts: list[str], cfg: NormalizeConfig) -> list[str]:
    """What the stage does to each of ``texts`` (for tests, benchmarks and notebooks)."""
    return _normalize_column(pl.Series("text", texts, dtype=pl.String), cfg).to_list()


def normalize(df: pl.DataFrame, cfg: NormalizeConfig, ctx: StageContext) -> StageResult:
    """Normalise every free-text column of the kind (message contents included)."""
    fields = text_fields(ctx.kind, df.columns)
    out = df.with_columns([_normalize_column(df[f], cfg) for f in fields]) if fields else df
    changed = {f: out[f].ne_missing(df[f]) for f in fields}
    required_empty = [f for f in fields if f in NON_EMPTY]
    empty = pl.any_horizontal([pl.col(f).fill_null("").str.len_chars() == 0 for f in required_empty]) if required_empty else pl.lit(False)
    kept, dropped = out.filter(~empty), out.filter(empty)
    stats = {
        "values_changed": sum(int(c.sum()) for c in changed.values()),
        "rows_rewritten": int(pl.DataFrame(changed).select(pl.any_horizontal(pl.all())).to_series().sum()) if changed else 0,
        "fields": fields,
    }
    return StageResult(kept=kept, dropped=with_reason(dropped, "empty_after_normalize"), stats=stats)
