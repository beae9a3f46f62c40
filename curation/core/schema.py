"""The data contract: record kinds, their columns, and which columns hold free text.

Every row has a stable string ``id``. Each kind has one or more *forms* (e.g.
instruction as prompt/completion or as a ``messages`` list); a dataset uses one form.
Ingest judges each record by the required fields it fills after the ``fields:``
renames, keeps the form most rows are in and quarantines the rest
(``curation.core.ingest``); later stages find the form from a frame's columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl

Kind = Literal["text", "instruction", "classification", "ratings", "preference"]
KINDS: tuple[Kind, ...] = ("text", "instruction", "classification", "ratings", "preference")

MESSAGE = pl.Struct({"role": pl.String, "content": pl.String})


@dataclass(frozen=True)
class Form:
    """One shape of a kind: required and optional columns with their polars types."""

    name: str
    required: dict[str, pl.DataType]
    optional: dict[str, pl.DataType]
    text_fields: tuple[str, ...]  # columns holding free text (scanned for PII, dedup keys)

    @property
    def columns(self) -> dict[str, pl.DataType]:
        return {**self.required, **self.optional}


S, F = pl.String(), pl.Float64()

FORMS: dict[Kind, tuple[Form, ...]] = {
    "text": (Form("text", {"text": S}, {}, ("text",)),),
    "instruction": (
        Form("messages", {"messages": pl.List(MESSAGE)}, {}, ("messages",)),
        Form("prompt_completion", {"prompt": S, "completion": S}, {"system": S}, ("system", "prompt", "completion")),
    ),
    "classification": (Form("classification", {"text": S, "label": S}, {"annotator": S}, ("text",)),),
    "ratings": (
        Form(
            "pairwise",
            {"prompt": S, "response_a": S, "response_b": S, "winner": S},
            {"annotator": S},
            ("prompt", "response_a", "response_b"),
        ),
        Form("transcripts", {"chosen": S, "rejected": S}, {"annotator": S}, ("chosen", "rejected")),
        Form("scores", {"prompt": S, "response": S}, {"score": F, "rank": F, "annotator": S}, ("prompt", "response")),
    ),
    "preference": (
        Form(
            "preference",
            {"prompt": S, "chosen": S, "rejected": S},
            {"margin": F, "n_annotators": pl.Int64(), "agreement": F},
            ("prompt", "chosen", "rejected"),
        ),
    ),
}

# Free-text columns that must not be empty when present (a label or winner may be short).
# Columns the balance stage adds that the dataset keeps and training, the gate and exports honour.
BALANCE_COLUMNS = ("sample_weight", "repeat")
NON_EMPTY = {"text", "prompt", "completion", "response", "response_a", "response_b", "chosen", "rejected"}


def detect_form(kind: Kind, columns: list[str] | set[str]) -> Form:
    """The form of ``kind`` whose required columns are all present, first match wins.

    With none fully present, returns the form sharing most columns, so that the
    error for each row names the right missing field.
    """
    cols = set(columns)
    forms = FORMS[kind]
    for form in forms:
        if set(form.required) <= cols:
            return form
    return max(forms, key=lambda f: len(set(f.required) & cols))


def text_fields(kind: Kind, columns: list[str] | set[str]) -> list[str]:
    """The free-text columns present in a frame of ``kind``, in contract order."""
    form = detect_form(kind, columns)
    return [c for c in form.text_fields if c in set(columns)]


def kind_columns(kind: Kind, columns: list[str] | set[str]) -> list[str]:
    """``id`` plus the kind's columns present in ``columns``: the dataset's columns."""
    form = detect_form(kind, columns)
    return ["id", *[c for c in form.columns if c in set(columns)]]
