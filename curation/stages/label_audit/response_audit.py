"""The response audit for instruction data: answers that should not be trained in.

For ``prompt/completion`` rows the completion is audited against its prompt; for
``messages`` rows the last assistant message against the last user message before it.
Each check is a polars expression over those two columns:

- ``response_empty``: no response, or only whitespace;
- ``response_echo``: the response repeats the prompt (case and spacing ignored);
- ``response_truncated``: an unclosed code fence; code that stops inside a block (it
  neither parses nor ends a block: ``curation.stages.label_audit.code_ends``); or a
  longer prose answer that stops mid-sentence (ends on a letter, digit, comma, colon or
  hyphen, outside a list item, table row or heading). Prose rules never judge code;
- ``response_refusal``: refusal boilerplate ("As an AI language model", "I'm sorry,
  but I can't ...") near the start of the response;
- ``response_length_ratio``: response words / prompt words (each + 1) outside
  ``[min_length_ratio, max_length_ratio]``.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from pydantic import Field, field_validator, model_validator

from curation.core.options import Strict
from curation.stages.label_audit.code_ends import truncation

RESPONSE_ISSUES = ("response_empty", "response_echo", "response_truncated", "response_refusal", "response_length_ratio")

_APOS = "['’]"
DEFAULT_REFUSALS = (
    r"\bas an ai(?: language)? model\b",
    rf"^(?:i{_APOS}m|i am) sorry,? but (?:i|as an ai)\b",
    rf"^(?:sorry,? )?(?:i can{_APOS}?t|i cannot|i can not|i am unable to|i{_APOS}m unable to|i won{_APOS}t|i will not) (?:help|assist|provide|comply|fulfil|do that|answer|create|generate|write)",
    rf"^(?:i{_APOS}m|i am) not able to (?:help|assist|provide|comply)",
)
_REFUSAL_WINDOW = 300  # boilerplate sits at the start; a quoted refusal deep inside is content


class ResponseAuditConfig(Strict):
    """Thresholds of the instruction response audit."""

    min_length_ratio: float = Field(0.005, ge=0)  # a 1-word answer to a 400-word prompt; extractive tasks are shorter
    max_length_ratio: float = Field(200.0, gt=0)  # a 400-word answer to "hi"; essays from one-line prompts stay under
    min_words_truncated: int = Field(8, ge=1)  # shorter answers ("Paris") may end without punctuation
    refusal_patterns: list[str] | None = None  # case-insensitive regexes; None = the built-in English set

    @field_validator("refusal_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str] | None) -> list[str] | None:
        for p in patterns or []:
            try:
                pl.select(pl.lit("x").str.contains(p))
            except pl.exceptions.ComputeError as e:
                raise ValueError(f"`refusal_patterns` entry {p!r} is not a valid regex: {_regex_problem(e)}") from None
        return patterns

    @model_validator(mode="after")
    def _ratio_order(self) -> ResponseAuditConfig:
        if self.min_length_ratio >= self.max_length_ratio:
            raise ValueError(f"`min_length_ratio` ({self.min_length_ratio}) must be below `max_length_ratio` ({self.max_length_ratio})")
        return self


def _regex_problem(e: Exception) -> str:
    """The reason line of polars' multi-line regex error (``error: unclosed group`` -> ``unclosed group``)."""
    reasons = [line.strip().removeprefix("error:").strip() for line in str(e).splitlines() if line.strip().startswith("error:")]
    return reasons[0] if reasons else " ".join(str(e).split())


def _last_exchange(messages: list[dict[str, Any]] | None) -> tuple[str | None, str | None]:
    """(last user message before the last assistant message, that assistant message)."""
    msgs = messages or []
    last = next((i for i in range(len(msgs) - 1, -1, -1) if msgs[i].get("role") == "assistant"), None)
    if last is None:
        user = next((m.get("content") for m in reversed(msgs) if m.get("role") == "user"), None)
        return user, None
    user = next((msgs[i].get("content") for i in range(last - 1, -1, -1) if msgs[i].get("role") == "user"), None)
    return user, msgs[last].get("content")


def exchange(df: pl.DataFrame) -> pl.DataFrame:
    """``id, prompt, response`` for either instruction form."""
    if "completion" in df.columns:
        return df.select("id", pl.col("prompt").alias("prompt"), pl.col("completion").alias("response"))
    pairs = [_last_exchange(m) for m in df["messages"].to_list()]
    return pl.DataFrame(
        {"id": df["id"], "prompt": [p for p, _ in pairs], "response": [r for _, r in pairs]},
        schema={"id": pl.String, "prompt": pl.String, "response": pl.String},
    )


def _squash(col: str) -> pl.Expr:
    return pl.col(col).fill_null("").str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()


def _truncation(pairs: pl.DataFrame, cfg: ResponseAuditConfig) -> pl.Series:
    """Per row, why the response looks cut off (``code_ends``), or null.

    Only responses that do not end like a finished sentence are read in Python.
    """
    response = pl.col("response").fill_null("")
    open_end = (response.str.strip_chars() != "") & ~response.str.contains(r"[.!?\"'’”»]\s*$")
    candidates = pairs.with_row_index("_i").filter(open_end)
    found = {i: truncation(text, min_words=cfg.min_words_truncated) for i, text in candidates.select("_i", "response").iter_rows()}
    return pl.Series("truncated", [found.get(i) for i in range(pairs.height)], dtype=pl.String)


def _checks(cfg: ResponseAuditConfig) -> dict[str, pl.Expr]:
    """issue -> boolean expression over ``prompt``, ``response`` and ``truncated`` (``_truncation``)."""
    response = pl.col("response").fill_null("")
    empty = response.str.strip_chars() == ""
    words = response.str.count_matches(r"\S+")
    patterns = cfg.refusal_patterns if cfg.refusal_patterns is not None else list(DEFAULT_REFUSALS)
    head = response.str.strip_chars_start().str.slice(0, _REFUSAL_WINDOW)
    refusal = pl.any_horizontal([head.str.contains(f"(?i){p}") for p in patterns]) if patterns else pl.lit(False)
    ratio = (words + 1) / (pl.col("prompt").fill_null("").str.count_matches(r"\S+") + 1)
    return {
        "response_empty": empty,
        "response_echo": ~empty & (_squash("response") == _squash("prompt")),
        "response_truncated": ~empty & pl.col("truncated").is_not_null(),
        "response_refusal": ~empty & refusal,
        "response_length_ratio": ~empty & ((ratio < cfg.min_length_ratio) | (ratio > cfg.max_length_ratio)),
    }


def response_findings(df: pl.DataFrame, cfg: ResponseAuditConfig) -> pl.DataFrame:
    """One row per (id, issue) found: ``id, issue, score, detail`` (score = the length ratio)."""
    pairs = exchange(df)
    pairs = pairs.with_columns(_truncation(pairs, cfg))
    words = pl.col("response").fill_null("").str.count_matches(r"\S+")
    ratio = ((words + 1) / (pl.col("prompt").fill_null("").str.count_matches(r"\S+") + 1)).cast(pl.Float64)
    details = {
        "response_empty": pl.lit("no response" if "messages" in df.columns else "empty completion"),
        "response_echo": pl.lit("response repeats the prompt"),
        "response_truncated": pl.col("truncated"),
        "response_refusal": pl.lit("refusal boilerplate"),
        "response_length_ratio": pl.lit("response/prompt word ratio out of range"),
    }
    parts = [
        pairs.filter(check).select(
            "id",
            pl.lit(issue).alias("issue"),
            (ratio if issue == "response_length_ratio" else pl.lit(None, pl.Float64)).alias("score"),
            details[issue].alias("detail"),
        )
        for issue, check in _checks(cfg).items()
    ]
    return pl.concat(parts)
