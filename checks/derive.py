"""Per-row features the expectations assert on, computed in polars before validation.

Great Expectations has no notion of "the roles in this list alternate" or "this row's
class holds 97% of the rows", and evaluating such rules row by row in pandas would not
meet the 1M-rows-in-a-minute budget. So polars computes a few derived columns (all
prefixed with ``_``) and GX asserts on them like on any other column. Derived columns
also keep raw text out of the GX results: a duplicate is reported by its hash and id,
never by its text.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from checks.fidelity import StageRewrite, derived_columns
from curation.core.balance_rules import issue_expr as balance_issue_expr
from curation.core.balance_rules import weight_zero
from curation.core.schema import BALANCE_COLUMNS, Kind, detect_form

ROLES = ("system", "user", "assistant")

# name -> what it holds, for docs/checks.md and custom expectations.
DERIVED = {
    "_n_tokens": "tokens in the row's training text (whitespace tokens unless `checks.tokenizer` is set)",
    "_dup_key": "64-bit hash of the row's free-text columns (exact duplicates share it)",
    "_class_rows": "rows sharing this row's label (classification)",
    "_class_share": "share of all rows holding this row's label (classification)",
    "_label_variants": "distinct spellings of this row's label that differ only in case or spacing (1: none)",
    "_label_rows": "rows whose label is this row's label up to case and spacing",
    "_rewrite_share_<NN_stage>": "share of the rows it kept that stage NN rewrote (one per stage that rewrote text)",
    "_repeated_value_rows_<NN_stage>": "rows holding the word or number stage NN replaced most often",
    "_chosen_eq_rejected": "chosen and rejected are the same text after trimming (preference)",
    "_messages_issue": "why `messages` is malformed, or null when it is fine (instruction messages form)",
    "_residual_pii": "PII entities the PII stage still found after treatment (-1: no PII stage ran)",
    "_balance_issue": "why the balance stage's `sample_weight` or `repeat` is unusable for training, or null when fine",
}


def text_columns(kind: Kind, columns: list[str]) -> list[str]:
    """The free-text columns of the dataset's form that are present."""
    form = detect_form(kind, columns)
    return [c for c in form.text_fields if c in columns]


def _messages_issue(col: str) -> pl.Expr:
    """Null when ``messages`` is well formed, else a short reason (vectorised, no Python per row)."""
    msgs = pl.col(col)
    roles = msgs.list.eval(pl.element().struct.field("role"))
    offset = (roles.list.first() == "system").fill_null(False).cast(pl.Int64)
    body = roles.list.slice(offset)
    expected = pl.when(pl.int_range(pl.len()) % 2 == 0).then(pl.lit("user")).otherwise(pl.lit("assistant"))
    alternates = body.list.eval(pl.element() == expected).list.all()
    empty_content = msgs.list.eval(pl.element().struct.field("content").fill_null("").str.strip_chars().str.len_chars() == 0).list.any()
    unknown_role = roles.list.eval(~pl.element().fill_null("").is_in(ROLES)).list.any()
    return (
        pl.when(msgs.is_null() | (msgs.list.len() == 0))
        .then(pl.lit("no_messages"))
        .when(unknown_role)
        .then(pl.lit("unknown_role"))
        .when(~alternates)
        .then(pl.lit("roles_not_alternating"))
        .when(roles.list.last() != "assistant")
        .then(pl.lit("no_final_assistant_turn"))
        .when(empty_content)
        .then(pl.lit("empty_content"))
        .otherwise(pl.lit(None, pl.String))
    )


def _message_text(col: str) -> pl.Expr:
    return pl.col(col).list.eval(pl.element().struct.field("content")).list.join("\n")


def training_texts(kind: Kind, columns: list[str]) -> list[pl.Expr]:
    """The texts whose tokens count towards a row's length, as string expressions.

    Preference rows count the prompt plus the longer answer (each DPO sequence is
    prompt + one answer); everything else counts every free-text column.
    """
    cols = text_columns(kind, columns)
    if kind == "preference" and {"chosen", "rejected"} <= set(cols):
        longer = (
            pl.when(pl.col("chosen").str.len_chars() >= pl.col("rejected").str.len_chars())
            .then(pl.col("chosen"))
            .otherwise(pl.col("rejected"))
        )
        return [pl.col(c) for c in cols if c == "prompt"] + [longer]
    return [_message_text(c) if c == "messages" else pl.col(c) for c in cols]


def whitespace_tokens(exprs: list[pl.Expr]) -> pl.Expr:
    counts = [e.fill_null("").str.count_matches(r"\S+") for e in exprs]
    return pl.sum_horizontal(counts).cast(pl.Int64) if counts else pl.lit(0, pl.Int64)


def tokenizer_counts(df: pl.DataFrame, exprs: list[pl.Expr], tokenizer: Any, *, batch: int = 1024) -> pl.Series:
    """Token counts with a Hugging Face tokenizer (no special tokens), summed over ``exprs``."""
    total = [0] * df.height
    for expr in exprs:
        texts = df.select(expr.fill_null("").alias("t"))["t"].to_list()
        for start in range(0, len(texts), batch):
            ids = tokenizer(texts[start : start + batch], add_special_tokens=False)["input_ids"]
            for i, row in enumerate(ids, start=start):
                total[i] += len(row)
    return pl.Series("_n_tokens", total, dtype=pl.Int64)


def label_key(label: pl.Expr) -> pl.Expr:
    """A label up to case and spacing: stripped, inner spaces collapsed, lowercased (label_audit folds the same way)."""
    return label.str.strip_chars().str.replace_all(r"\s+", " ").str.to_lowercase()


# Derived columns that count over the whole dataset (``over`` a label): the Spark gate
# aggregates them (``checks.spark_derive``); each batch there carries these helpers instead.
WHOLE = ("_class_rows", "_class_share", "_label_variants", "_label_rows")
LABEL_KEY = "_label_key"  # the row's ``label_key``, to group by
WEIGHT_ZERO = "_weight_zero"  # the row's weight reads as 0 (every row so: the dataset's ALL_ZERO issue)


def derive(
    df: pl.DataFrame,
    kind: Kind,
    *,
    residual_pii: int | None,
    tokenizer: Any = None,
    rewrites: list[StageRewrite] | None = None,
    per_row: bool = False,
) -> pl.DataFrame:
    """``df`` plus the derived columns that apply to its kind and form (see ``DERIVED``).

    ``per_row``: for one batch of a larger dataset: the ``WHOLE`` columns are left out and
    the helpers ``LABEL_KEY`` and ``WEIGHT_ZERO`` added, ``_balance_issue`` leaves out the
    every-weight-is-0 issue; the caller completes them over all batches.
    """
    cols = df.columns
    texts = training_texts(kind, cols)
    # -1 when no PII stage ran: an aggregate check on it fails (as a warning) even on an empty set
    exprs: list[pl.Expr] = [pl.lit(-1 if residual_pii is None else residual_pii, pl.Int64).alias("_residual_pii")]
    if tokenizer is None:
        exprs.append(whitespace_tokens(texts).alias("_n_tokens"))
    tcols = text_columns(kind, cols)
    if tcols:
        exprs.append(pl.struct(tcols).hash(seed=0).alias("_dup_key"))
    if kind == "classification" and "label" in cols and not per_row:
        n = pl.len().over("label")
        exprs += [n.cast(pl.Int64).alias("_class_rows"), (n / pl.len()).alias("_class_share")]
    if "label" in cols and per_row:
        exprs.append(label_key(pl.col("label").cast(pl.String)).alias(LABEL_KEY))
    elif "label" in cols:
        key = label_key(pl.col("label").cast(pl.String))  # a label of another type fails column_types, not here
        exprs += [
            pl.col("label").n_unique().over(key).cast(pl.Int64).alias("_label_variants"),
            pl.len().over(key).cast(pl.Int64).alias("_label_rows"),
        ]
    exprs += derived_columns(rewrites or [])
    if kind == "preference" and {"chosen", "rejected"} <= set(cols):
        exprs.append(
            (pl.col("chosen").str.strip_chars() == pl.col("rejected").str.strip_chars()).fill_null(False).alias("_chosen_eq_rejected")
        )
    if "messages" in cols:
        exprs.append(_messages_issue("messages").alias("_messages_issue"))
    if set(BALANCE_COLUMNS) & set(cols):
        exprs.append(balance_issue_expr(df.schema, all_zero=pl.lit(False) if per_row else None).alias("_balance_issue"))
        if per_row and "sample_weight" in cols and df.schema["sample_weight"].is_numeric():
            exprs.append(weight_zero().alias(WEIGHT_ZERO))
    out = df.with_columns(exprs)
    if tokenizer is not None:
        out = out.with_columns(tokenizer_counts(df, texts, tokenizer))
    return out
