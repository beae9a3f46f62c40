"""Rendering, loss masks, packing, splits and batches (training.data), on the tiny tokenizer."""

from __future__ import annotations

import itertools
from typing import Any

import polars as pl
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.core.errors import SchemaError
from tests.training.tiny import label_rows, pair_rows, qa_rows, text_rows
from training.data import (
    IGNORE,
    Row,
    chat_segments,
    collate_pairs,
    collate_rows,
    conversations,
    cpt_rows,
    pack,
    pair,
    prepare,
    sft_row,
    split_indices,
    take,
)


def _trained_ids(row: Row) -> list[int]:
    return [i for i, t in zip(row.ids, row.trained, strict=True) if t]


def test_sft_mask_covers_exactly_the_response_tokens(tokenizer: Any) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "what colour is the sky?"},
        {"role": "assistant", "content": "the sky is blue."},
    ]
    row, truncated = sft_row(tokenizer, messages, 512)
    prompt = "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nwhat colour is the sky?<|im_end|>\n<|im_start|>assistant\n"
    response = "the sky is blue.<|im_end|>\n"
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    # token by token: every prompt token masked, every response token (EOS included) trained
    assert row.ids == prompt_ids + response_ids
    assert row.trained == [False] * len(prompt_ids) + [True] * len(response_ids)
    assert tokenizer.decode(_trained_ids(row)) == response
    assert tokenizer.eos_token_id in _trained_ids(row)
    assert not truncated and row.positions == list(range(len(row.ids)))


def test_sft_mask_trains_every_assistant_turn_and_no_user_turn(tokenizer: Any) -> None:
    messages = [
        {"role": "user", "content": "what colour is the sky?"}, {"role": "assistant", "content": "blue."},
        {"role": "user", "content": "and the grass?"}, {"role": "assistant", "content": "green."},
    ]  # fmt: skip
    row, _ = sft_row(tokenizer, messages, 512)
    trained = tokenizer.decode(_trained_ids(row))
    assert trained == "blue.<|im_end|>\ngreen.<|im_end|>\n"
    untrained = tokenizer.decode([i for i, t in zip(row.ids, row.trained, strict=True) if not t])
    assert "what colour is the sky?" in untrained and "and the grass?" in untrained and "blue" not in untrained


def test_eos_is_appended_when_the_template_does_not_end_turns_with_it(tokenizer: Any) -> None:
    bare = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer, pad_token="<pad>", eos_token="<|im_end|>")
    bare.chat_template = "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
    row, _ = sft_row(bare, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "the sky is blue."}], 512)
    assert _trained_ids(row)[-1] == bare.eos_token_id
    assert bare.decode(_trained_ids(row)) == "the sky is blue.\n<|im_end|>"


def test_prompt_completion_rows_become_conversations() -> None:
    df = pl.DataFrame({"prompt": ["p1", "p2"], "completion": ["c1", "c2"], "system": ["s", None]})
    assert conversations(df) == [
        [{"role": "system", "content": "s"}, {"role": "user", "content": "p1"}, {"role": "assistant", "content": "c1"}],
        [{"role": "user", "content": "p2"}, {"role": "assistant", "content": "c2"}],
    ]


def test_a_conversation_without_an_assistant_turn_is_an_error(tokenizer: Any) -> None:
    with pytest.raises(SchemaError, match="no assistant turn"):
        chat_segments(tokenizer, [{"role": "user", "content": "hello"}])


def test_truncation_keeps_the_response(tokenizer: Any) -> None:
    messages = [{"role": "user", "content": "what colour is the sky? " * 20}, {"role": "assistant", "content": "the sky is blue."}]
    row, truncated = sft_row(tokenizer, messages, 24)
    assert truncated and len(row.ids) == 24
    assert tokenizer.decode(_trained_ids(row)).endswith("the sky is blue.<|im_end|>\n")


def test_packing_restarts_positions_and_never_targets_across_examples(tokenizer: Any) -> None:
    rows = [r for text in ["the sky is blue.", "the snow is white.", "coal is black."] for r in cpt_rows(tokenizer, text, 64)]
    blocks = pack(rows, 64)
    assert len(blocks) == 1 and blocks[0].ids == [i for r in rows for i in r.ids]
    batch = collate_rows(blocks, tokenizer.pad_token_id)
    starts = [i for i, p in enumerate(blocks[0].positions) if p == 0]
    assert starts == [0, len(rows[0].ids), len(rows[0].ids) + len(rows[1].ids)]
    targets = batch["targets"][0]
    for s in starts[1:]:
        assert targets[s - 1] == IGNORE  # the last token of one document never predicts the next document
    assert int((targets != IGNORE).sum()) == sum(len(r.ids) - 1 for r in rows)


def test_packing_fills_blocks_without_splitting_examples(tokenizer: Any) -> None:
    rows = [Row(list(range(n)), [False] + [True] * (n - 1), list(range(n))) for n in (5, 4, 3, 6, 2)]
    blocks = pack(rows, 9)
    assert [len(b.ids) for b in blocks] == [9, 9, 2]


def test_cpt_rows_cut_long_documents_and_end_with_eos(tokenizer: Any) -> None:
    rows = cpt_rows(tokenizer, "the sky is blue. " * 30, 16)
    assert all(len(r.ids) <= 16 for r in rows) and rows[-1].ids[-1] == tokenizer.eos_token_id
    assert all(not r.trained[0] and all(r.trained[1:]) for r in rows)


def test_padding_is_its_own_segment_and_untrained(tokenizer: Any) -> None:
    short, long = Row([5, 6, 7], [False, True, True], [0, 1, 2]), Row([5, 6, 7, 8, 9], [False] * 2 + [True] * 3, list(range(5)))
    batch = collate_rows([short, long], tokenizer.pad_token_id)
    assert "position_ids" not in batch  # one example per row: the plain causal mask is exact, padding comes after
    assert batch["targets"][0].tolist() == [6, 7, IGNORE, IGNORE, IGNORE]
    assert batch["targets"][1].tolist() == [IGNORE, 7, 8, 9, IGNORE]
    packed = Row([5, 6, 7, 8], [False, True, False, True], [0, 1, 0, 1])  # two examples: positions say where each starts
    batch = collate_rows([short, packed], tokenizer.pad_token_id)
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0], [0, 1, 0, 1]]
    assert batch["targets"].tolist() == [[6, 7, IGNORE, IGNORE], [6, IGNORE, 8, IGNORE]]


def test_pairs_use_trls_layout(tokenizer: Any) -> None:
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    pairs = [pair(tokenizer, r["prompt"], r["chosen"], r["rejected"], 64)[0] for r in pair_rows(8)[:3]]
    ours = collate_pairs(pairs, tokenizer.pad_token_id)
    theirs = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id)(
        [{"prompt_ids": p.prompt, "chosen_ids": p.chosen, "rejected_ids": p.rejected} for p in pairs]
    )
    assert torch.equal(ours["input_ids"], theirs["input_ids"]) and torch.equal(ours["attention_mask"], theirs["attention_mask"])
    shifted = theirs["completion_mask"][:, 1:].bool()
    assert torch.equal(ours["targets"][:, :-1] != IGNORE, shifted)
    assert torch.equal(ours["targets"][:, :-1][shifted], theirs["input_ids"][:, 1:][shifted])


def test_pair_truncation_keeps_within_max_length(tokenizer: Any) -> None:
    p, truncated = pair(tokenizer, "what colour is the sky? " * 10, "the sky is blue. " * 10, "no.", 40)
    assert truncated and len(p.prompt) + max(len(p.chosen), len(p.rejected)) <= 40 and p.prompt and p.chosen


@given(n=st.integers(2, 300), fraction=st.floats(0.01, 0.9), seed=st.integers(0, 5))
@settings(max_examples=40, deadline=None)
def test_split_is_seeded_disjoint_and_complete(n: int, fraction: float, seed: int) -> None:
    df = pl.DataFrame({"id": [f"r{i}" for i in range(n)], "text": ["x"] * n})
    train, held = split_indices(df, fraction, seed, task="sft")
    assert sorted(train + held) == list(range(n)) and train and held
    assert (train, held) == split_indices(df, fraction, seed, task="sft")


def test_data_stream_resumes_from_a_cursor_and_covers_each_epoch() -> None:
    full = take(10, 25, seed=3, cursor=0)
    assert full[7:25] == take(10, 18, seed=3, cursor=7)
    assert sorted(full[:10]) == list(range(10)) and sorted(full[10:20]) == list(range(10))
    assert full[:10] != full[10:20]  # a new order every epoch


@pytest.mark.parametrize(
    ("task", "rows"),
    [("sft", qa_rows(16)), ("cpt", text_rows(16)), ("classify", label_rows(12)), ("dpo", pair_rows(16))],
)
def test_prepare_every_task(tokenizer: Any, task: Any, rows: list[dict[str, Any]]) -> None:
    data = prepare(pl.DataFrame(rows), task, tokenizer, max_length=64, eval_fraction=0.25, seed=0, packing=True)
    assert data.stats["eval_rows"] == len(rows) // 4 and data.train and data.eval
    if task == "classify":
        assert data.labels == ["account", "billing", "shipping"]


@pytest.mark.parametrize(("task", "rows"), [("sft", qa_rows(8)), ("classify", label_rows(6)), ("dpo", pair_rows(8))])
def test_prepare_without_a_held_out_split(tokenizer: Any, task: Any, rows: list[dict[str, Any]]) -> None:
    data = prepare(pl.DataFrame(rows), task, tokenizer, max_length=64, eval_fraction=0.0, seed=0, packing=False)
    assert len(data.train) == len(rows) and data.eval == [] and data.stats["eval_rows"] == 0


def test_prepare_names_missing_columns(tokenizer: Any) -> None:
    with pytest.raises(SchemaError, match="needs the columns prompt, chosen, rejected"):
        prepare(pl.DataFrame({"text": ["a"]}), "dpo", tokenizer, max_length=64, eval_fraction=0.1, seed=0, packing=False)


# ---------------------------------------------------------------------------- the balance stage's columns
def _prepare(tokenizer: Any, df: pl.DataFrame, task: Any = "classify", **options: Any) -> Any:
    return prepare(df, task, tokenizer, **{"max_length": 64, "eval_fraction": 0.25, "seed": 0, "packing": False, **options})


def _text_of(tokenizer: Any, item: Any) -> str:
    return str(tokenizer.decode(item.ids))


def test_repeat_copies_only_training_rows_and_keeps_the_split(tokenizer: Any) -> None:
    plain = pl.DataFrame(label_rows(12))
    repeats = [1 + i % 3 for i in range(12)]
    repeated = plain.with_columns(pl.Series("repeat", repeats).cast(pl.Int64))
    before, after = _prepare(tokenizer, plain), _prepare(tokenizer, repeated)
    assert after.eval == before.eval and after.stats["eval_rows"] == before.stats["eval_rows"] == 3  # eval: same rows, no copies
    train_idx, eval_idx = split_indices(pl.DataFrame(label_rows(12)), 0.25, 0, task="classify")
    texts = plain["text"].to_list()
    trained = [_text_of(tokenizer, x) for x in after.train]
    assert {t: trained.count(t) for t in set(trained)} == {texts[i]: repeats[i] for i in train_idx}
    assert not {texts[i] for i in eval_idx} & set(trained)  # no copy of a held-out row is trained on
    assert after.train[: len(before.train)] == before.train  # copy k of every row follows all copies k-1
    assert after.stats["balance"]["repeat_added_rows"] == sum(repeats[i] - 1 for i in train_idx) == len(after.train) - len(before.train)
    assert after.stats["train_rows"] == before.stats["train_rows"] == 9


def test_sample_weights_ride_on_training_examples_only(tokenizer: Any) -> None:
    weights = [0.5, None, 2.0, 1.5] * 3  # null reads as 1
    df = pl.DataFrame(label_rows(12)).with_columns(pl.Series("sample_weight", weights, dtype=pl.Float64))
    data = _prepare(tokenizer, df)
    train_idx, _ = split_indices(pl.DataFrame(label_rows(12)), 0.25, 0, task="classify")
    assert [x.weight for x in data.train] == [1.0 if weights[i] is None else weights[i] for i in train_idx]
    assert all(x.weight is None for x in data.eval)  # held-out metrics stay unweighted
    expected = [1.0 if weights[i] is None else weights[i] for i in train_idx]
    assert data.stats["balance"] == {
        "weighted": True, "weight_min": min(expected), "weight_max": max(expected),
        "zero_weight_rows": 0, "repeat_added_rows": 0, "ignored_columns": [],
    }  # fmt: skip


def test_rows_of_weight_zero_are_left_out_of_training(tokenizer: Any) -> None:
    df = pl.DataFrame(label_rows(12)).with_columns(sample_weight=pl.Series([0.0, 1.0] * 6), repeat=pl.Series([3] * 12))
    data = _prepare(tokenizer, df, eval_fraction=0.0)
    assert [x.weight for x in data.train] == [1.0] * 18  # 6 rows of weight 1, 3 copies each
    assert data.stats["balance"]["zero_weight_rows"] == 6 and data.stats["balance"]["repeat_added_rows"] == 12


def test_all_null_balance_columns_mean_unweighted(tokenizer: Any) -> None:
    plain = pl.DataFrame(label_rows(12))
    nulls = plain.with_columns(sample_weight=pl.lit(None, pl.Float64), repeat=pl.lit(None, pl.Int64))
    data = _prepare(tokenizer, nulls)
    assert data.train == _prepare(tokenizer, plain).train and data.stats["balance"]["weighted"] is False


def test_balance_weights_off_ignores_the_columns_and_says_so(tokenizer: Any) -> None:
    df = pl.DataFrame(label_rows(12)).with_columns(sample_weight=pl.lit(-1.0), repeat=pl.lit(0))  # invalid, yet unread
    data = _prepare(tokenizer, df, balance_weights=False)
    assert data.train == _prepare(tokenizer, pl.DataFrame(label_rows(12))).train
    assert data.stats["balance"]["ignored_columns"] == ["sample_weight", "repeat"] and data.stats["balance"]["weighted"] is False


def test_packing_carries_each_examples_weight_to_its_targets(tokenizer: Any) -> None:
    df = pl.DataFrame(text_rows(8)[:3]).with_columns(sample_weight=pl.Series([0.5, 2.0, 3.0]))
    data = _prepare(tokenizer, df, task="cpt", eval_fraction=0.0, packing=True, max_length=256)
    [block] = data.train
    batch = collate_rows([block, Row([5, 6], [False, True], [0, 1])], tokenizer.pad_token_id)  # an unweighted row counts 1
    weights, targets = batch["weights"], batch["targets"]
    assert weights.shape == targets.shape and torch.equal(weights == 0, targets == IGNORE)
    starts = [i for i, p in enumerate(block.positions) if p == 0] + [len(block.ids)]
    for (a, b), w in zip(itertools.pairwise(starts), [0.5, 2.0, 3.0], strict=True):
        assert set(weights[0, a : b - 1].tolist()) == {w}  # targets a+1 .. b-1 belong to this document
    assert weights[1].tolist()[:1] == [1.0]


@pytest.mark.parametrize(
    ("column", "message"),
    [
        (pl.Series("sample_weight", [-1.0] + [1.0] * 11), r"`sample_weight` must be a finite number >= 0, got -1.0 at row 0 \(0-based\)"),
        (pl.Series("sample_weight", [1.0, float("nan"), float("nan")] + [1.0] * 9), r"got nan at row 1 \(0-based\) and 1 more"),
        (pl.Series("sample_weight", [1.0, float("inf")] + [1.0] * 10), r"got inf at row 1 \(0-based\)"),
        (pl.Series("sample_weight", [0.0] * 12), r"every `sample_weight` is 0"),
        (pl.Series("sample_weight", ["1"] * 12), r"`sample_weight` must be a number column, got String"),
        (pl.Series("repeat", [1, 0] + [1] * 10), r"`repeat` must be at least 1, got 0 at row 1 \(0-based\)"),
        (pl.Series("repeat", [1.5] * 12), r"`repeat` must be an integer column \(copies of the row\), got Float64"),
    ],
)
def test_invalid_balance_columns_are_one_line_schema_errors(tokenizer: Any, column: pl.Series, message: str) -> None:
    df = pl.DataFrame(label_rows(12)).with_columns(column)
    with pytest.raises(SchemaError, match=message) as e:
        _prepare(tokenizer, df)
    assert "\n" not in str(e.value) and str(e.value).endswith("or set `train.balance_weights: false` to ignore the balance columns")


def test_weight_zero_on_every_training_row_is_an_error(tokenizer: Any) -> None:
    train_idx, _ = split_indices(pl.DataFrame(label_rows(12)), 0.25, 0, task="classify")
    weights = [0.0 if i in train_idx else 1.0 for i in range(12)]
    df = pl.DataFrame(label_rows(12)).with_columns(sample_weight=pl.Series(weights))
    with pytest.raises(SchemaError, match="every training row has `sample_weight` 0 after the eval split"):
        _prepare(tokenizer, df)
