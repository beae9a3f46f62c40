"""What a stage rewrote: the token diff, the shape mask, and ``measure`` over frames joined by id."""

from __future__ import annotations

import polars as pl
import pytest

from curation.core import fidelity
from curation.core.fidelity import diff, mask_replacement, measure, visible
from curation.core.masking import mask_shape


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("Jane Doe", "Jxxx Dxx"),
        ("BILLING", "BXXXXXX"),
        (" billing ", " bxxxxxx "),
        ("java.util.Random", "jxxx.uxxx.Rxxxxx"),
        ("(415) 555-0199", "(###) ###-####"),
        ("Zoë", "Zxx"),
    ],
)
def test_mask_shape_keeps_first_letters_case_and_punctuation_only(value: str, masked: str) -> None:
    assert mask_shape(value) == masked


def test_replacement_side_keeps_placeholders_and_masks_the_rest() -> None:
    assert mask_replacement("<PERSON> and <EMAIL_ADDRESS>, Mr Smith") == "<PERSON> axx <EMAIL_ADDRESS>, Mx Sxxxx"


def test_visible_shows_whitespace_and_invisible_characters() -> None:
    assert visible("  a\tb\r\n c  ") == "··a⇥b␍⏎ c··"
    assert visible("a\u200bb") == "a<U+200B>b"


def test_diff_names_whole_words_and_placeholders() -> None:
    chars, changes = diff("Hi John Smith, call me", "Hi <PERSON>, call me")
    assert chars == len("John Smith")
    assert [(b, a) for b, a, *_ in changes] == [("John Smith", "<PERSON>")]
    _, changes = diff("public static String reverse(String s)", "public static <PERSON> reverse(<PERSON> s)")
    assert [(b, a) for b, a, *_ in changes] == [("String", "<PERSON>"), ("String", "<PERSON>")]


def test_diff_of_collapsed_indentation_is_a_whitespace_replacement() -> None:
    chars, changes = diff("def f():\n    return 1\n", "def f():\n return 1\n")
    assert chars == 5 and [(b, a) for b, a, *_ in changes] == [("\n    ", "\n ")]


def test_diff_of_a_huge_change_is_capped_and_still_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fidelity, "MAX_SPAN_CHARS", 100)
    chars, changes = diff("a" * 1000, "b" * 1500)
    assert chars == 1500 and len(changes) == 1 and len(changes[0][0]) == 100


def _frame(texts: list[str | None], ids: list[str] | None = None) -> pl.DataFrame:
    ids = ids or [f"r{i}" for i in range(len(texts))]
    return pl.DataFrame(
        {"id": ids, "text": texts, "label": ["a"] * len(texts)}, schema={"id": pl.String, "text": pl.String, "label": pl.String}
    )


def test_measure_counts_rows_chars_and_the_most_repeated_values_by_rows() -> None:
    before = _frame(["Call Jane now", "Jane Jane here", "nothing here", "Ask Bob", "dropped row"])
    after = _frame(["Call <PERSON> now", "<PERSON> <PERSON> here", "nothing here", "Ask <PERSON>"], ids=["r0", "r1", "r2", "r3"])
    f = measure(before, after, "classification")
    assert f is not None
    assert (f["rows_compared"], f["rows_rewritten"], f["share"], f["rows_diffed"]) == (4, 3, 0.75, 3)
    assert f["rows_rewritten_by_field"] == {"text": 3} and f["chars_compared"] == len("Call Jane nowJane Jane herenothing hereAsk Bob")
    assert f["chars_changed"] == 4 * 8  # max(len("Jane"), len("<PERSON>")) per change, two in row r1
    # `Jane` is counted once per row, however often it is replaced inside it
    assert f["top_replaced"] == [
        {"before": "Jxxx", "after": "<PERSON>", "rows": 2, "is_value": True},
        {"before": "Bxx", "after": "<PERSON>", "rows": 1, "is_value": True},
    ]
    assert f["examples"][0] == {"field": "text", "before": "Cxxx ⟦Jxxx⟧ nxx", "after": "Cxxx ⟦<PERSON>⟧ nxx"}


def test_measure_never_holds_a_raw_replaced_value() -> None:
    before = _frame([f"write to Quintanilla about order {i}" for i in range(30)])
    after = before.with_columns(pl.col("text").str.replace("Quintanilla", "<PERSON>"))
    assert "Quintanilla" not in str(measure(before, after, "classification"))


def test_measure_compares_message_contents_and_nulls() -> None:
    msgs = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
    before = pl.DataFrame(
        {"id": ["m0", "m1"], "messages": [[{"role": "user", "content": "hi  there"}], [{"role": "user", "content": "ok"}]]},
        schema={"id": pl.String, "messages": msgs},
    )
    after = before.with_columns(
        pl.Series("messages", [[{"role": "user", "content": "hi there"}], [{"role": "user", "content": "ok"}]], msgs)
    )
    f = measure(before, after, "instruction")
    assert f is not None and (f["fields"], f["rows_rewritten"]) == (["messages"], 1)
    f = measure(_frame(["a", None]), _frame(["a", "b"]), "classification")
    assert f is not None and f["rows_rewritten"] == 1


def test_measure_samples_the_diffed_rows_past_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fidelity, "MAX_DIFF_ROWS", 10)
    before = _frame([f"row {i} by Jane" for i in range(50)])
    after = before.with_columns(pl.col("text").str.replace("Jane", "<PERSON>"))
    f = measure(before, after, "classification")
    assert f is not None and (f["rows_rewritten"], f["rows_diffed"], f["top_replaced"][0]["rows"]) == (50, 10, 10)
    assert measure(before, after, "classification") == f  # the sample is the same every time


def test_nothing_is_compared_when_the_stage_makes_new_records() -> None:
    before = _frame(["a"])
    assert measure(before, before, "classification", after_kind="preference") is None
    assert measure(before.drop("text"), before, "classification") is None


def test_examples_show_a_changed_space_but_not_the_spaces_around_the_change() -> None:
    f = measure(_frame(["the end.\n Next line here"]), _frame(["the end.\nNext line here"]), "classification")
    assert f is not None and f["top_replaced"][0]["before"] == "⏎·" and f["top_replaced"][0]["after"] == "⏎"
    assert f["examples"] == [{"field": "text", "before": "txx exx.⟦⏎·⟧Nxxx lxxx hxxx", "after": "txx exx.⟦⏎⟧Nxxx lxxx hxxx"}]
