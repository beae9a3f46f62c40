"""The derived columns the expectations assert on (pure polars; no GX)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checks.derive import derive, text_columns
from curation.core.schema import MESSAGE

MSGS = pl.List(MESSAGE)


def _m(*turns: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": r, "content": c} for r, c in turns]


def test_messages_issue_names_each_defect() -> None:
    rows: list[Any] = [
        _m(("user", "hi"), ("assistant", "hello")),
        _m(("system", "be brief"), ("user", "q"), ("assistant", "a"), ("user", "q2"), ("assistant", "a2")),
        [],
        None,
        _m(("user", "q"), ("bot", "a")),
        _m(("user", "q"), ("user", "again"), ("assistant", "a")),
        _m(("user", "q"), ("assistant", "a"), ("system", "late")),
        _m(("user", "q"), ("assistant", "a"), ("user", "dangling")),
        _m(("user", "q"), ("assistant", "  ")),
        _m(("assistant", "a"), ("user", "q")),
    ]
    df = pl.DataFrame({"id": [str(i) for i in range(len(rows))], "messages": rows}, schema={"id": pl.String, "messages": MSGS})
    issues = derive(df, "instruction", residual_pii=None)["_messages_issue"].to_list()
    assert issues == [
        None,
        None,
        "no_messages",
        "no_messages",
        "unknown_role",
        "roles_not_alternating",
        "roles_not_alternating",
        "no_final_assistant_turn",
        "empty_content",
        "roles_not_alternating",
    ]


def test_token_counts_and_duplicate_keys_by_kind() -> None:
    pref = pl.DataFrame({"id": ["a", "b"], "prompt": ["one two", "x"], "chosen": ["a b c", "same"], "rejected": ["d", " same "]})
    out = derive(pref, "preference", residual_pii=3)
    assert out["_n_tokens"].to_list() == [5, 2]  # prompt + the longer answer
    assert out["_chosen_eq_rejected"].to_list() == [False, True]
    assert out["_residual_pii"].to_list() == [3, 3]
    assert derive(pref, "preference", residual_pii=None)["_residual_pii"].to_list() == [-1, -1]  # no PII stage
    ins = pl.DataFrame({"id": ["a", "b", "c"], "prompt": ["p", "p", "p"], "completion": ["c", "c", "d"], "system": [None, None, "s"]})
    out = derive(ins, "instruction", residual_pii=None)
    assert out["_n_tokens"].to_list() == [2, 2, 3]
    keys = out["_dup_key"].to_list()
    assert keys[0] == keys[1] != keys[2]
    assert text_columns("instruction", ins.columns) == ["system", "prompt", "completion"]


def test_class_rows_and_share() -> None:
    df = pl.DataFrame({"id": list("abcd"), "text": ["w"] * 4, "label": ["x", "x", "x", "y"]})
    out = derive(df, "classification", residual_pii=None)
    assert out["_class_rows"].to_list() == [3, 3, 3, 1]
    assert out["_class_share"].to_list() == [0.75, 0.75, 0.75, 0.25]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(alphabet=" ab\n\t", max_size=12), min_size=1, max_size=8))
def test_whitespace_tokens_match_str_split(texts: list[str]) -> None:
    df = pl.DataFrame({"id": [str(i) for i in range(len(texts))], "text": texts})
    assert derive(df, "text", residual_pii=None)["_n_tokens"].to_list() == [len(t.split()) for t in texts]


@pytest.mark.slow
def test_counts_with_a_local_tokenizer(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "hello": 1, "world": 2, ",": 3}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]").save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    df = pl.DataFrame({"id": ["a", "b"], "text": ["hello, world", "hello"]})
    out = derive(df, "text", residual_pii=None, tokenizer=tokenizer)
    assert out["_n_tokens"].to_list() == [3, 1]  # "hello" "," "world": the comma is its own token, unlike whitespace counting
