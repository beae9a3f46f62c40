"""Rendering, loss masks, packing, splits and batches (training.data), on the tiny tokenizer."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny import label_rows, pair_rows, qa_rows, text_rows

from curation.errors import SchemaError
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
    assert batch["position_ids"][0].tolist() == [0, 1, 2, 0, 1]
    assert batch["targets"][0].tolist() == [6, 7, IGNORE, IGNORE, IGNORE]
    assert batch["targets"][1].tolist() == [IGNORE, 7, 8, 9, IGNORE]


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
    train, held = split_indices(n, fraction, seed)
    assert sorted(train + held) == list(range(n)) and train and held
    assert (train, held) == split_indices(n, fraction, seed)


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
