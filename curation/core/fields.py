"""`input.fields`: source columns renamed onto the kind's columns, or several text columns joined.

``apply_fields`` runs on every record during ingest; ``check_sources`` then stops the run
when a mapping names a column no record has, and ``unused_text_columns`` words one warning
per text-like column that is left out of the kind's columns (names and counts, never values).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import polars as pl

from curation.core.errors import InputError
from curation.core.masking import mask_value
from curation.core.schema import Form

_JSON_TYPES = {"int": "number", "float": "number", "bool": "boolean", "list": "list", "dict": "object"}

Fields = dict[str, str | list[str]]  # canonical name -> source column, or source columns to join


def apply_fields(rec: dict[str, Any], fields: Fields, separator: str = "\n\n") -> dict[str, Any]:
    """``rec`` with ``input.fields`` applied: source columns renamed, lists of text columns joined.

    A join keeps the non-empty values in the order listed, separated by ``separator``;
    with none, the canonical field is null. Raises ValueError when a joined value is not text.
    """
    rec = dict(rec)
    for canonical, source in fields.items():
        if isinstance(source, list):
            parts = [(column, rec.pop(column, None)) for column in source]
            rec[canonical] = _joined(canonical, parts, separator)
        elif source in rec:
            rec[canonical] = rec.pop(source)
    return rec


def _joined(canonical: str, parts: list[tuple[str, Any]], separator: str) -> str | None:
    texts = []
    for column, value in parts:
        if value is None:
            continue
        if not isinstance(value, str):
            raise ValueError(
                f"field `{column}` (joined into `{canonical}`) must be a string, got {_JSON_TYPES.get(type(value).__name__, type(value).__name__)}"
            )
        if value.strip():
            texts.append(value)
    return separator.join(texts) if texts else None


def columns_list(names: Iterable[str]) -> str:
    """Column names in backticks, comma-separated, for messages."""
    return ", ".join(f"`{mask_value(n)}`" for n in names)  # a column name can be data


def check_sources(fields: Fields, seen: list[str]) -> None:
    """Every source column ``fields`` names is in the input; raises InputError naming the first that is not."""
    for canonical, source in fields.items():
        for column in [source] if isinstance(source, str) else source:
            if column not in seen:
                shown = columns_list(seen[:30]) + (f" and {len(seen) - 30} more" if len(seen) > 30 else "")
                raise InputError(
                    f"`input.fields.{canonical}` names column `{mask_value(column)}`, which no input record has; the input's columns are {shown}"
                )


# Column names that hold free text in common public datasets (Alpaca's `input`, SQuAD's `context`...).
_TEXT_NAMES = frozenset(
    [
        "input",
        "context",
        "question",
        "answer",
        "instruction",
        "output",
        "response",
        "text",
        "content",
        "body",
        "query",
        "prompt",
        "completion",
        "passage",
        "document",
        "history",
        "system",
        "message",
        "reply",
        "explanation",
        "rationale",
        "chosen",
        "rejected",
    ]
)


def unused_text_columns(rows: pl.DataFrame, form: Form, fields: Fields) -> list[str]:
    """One warning per carried column that looks like text a model should see but will not.

    Columns outside the form are carried as metadata; exports and training leave them
    out. A column is text by its name (``_TEXT_NAMES``) or its values (most have a space,
    20 characters on average). The warning names the column and counts rows, never values.
    """
    out = []
    for column in rows.columns:
        if column == "id" or column in form.columns or rows.schema[column] != pl.String:
            continue
        values = rows[column].drop_nulls()
        filled = values.filter(values.str.strip_chars() != "")
        if filled.is_empty():
            continue
        wordy = filled.str.contains(r"\s").mean() >= 0.5 and filled.str.len_chars().mean() >= 20  # type: ignore[operator]
        if column.lower() in _TEXT_NAMES or wordy:
            out.append(
                f"column `{column}` holds text in {filled.len()} of {rows.height} rows but is not part of the `{form.name}` form: "
                f"it is carried as metadata, not trained on or exported; {_join_hint(column, form, fields)}"
            )
    return out


def _join_hint(column: str, form: Form, fields: Fields) -> str:
    """How to keep ``column``'s text: join it onto the form's first text column (the prompt)."""
    target = "prompt" if "prompt" in form.columns else next((c for c in form.text_fields if form.columns[c] == pl.String()), None)
    if target is None:
        return "put its text into the messages, or leave it out of the input"
    source = fields.get(target, target)
    joined = [*([source] if isinstance(source, str) else source), column]
    return f"to train on it, join it: `fields: {{{target}: [{', '.join(joined)}]}}`"
