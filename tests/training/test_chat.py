"""DPO prompts that are HH transcripts become real chat turns (or raw text, when asked)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from checks.gate import run_checks
from curation.core.config import parse_config
from curation.core.errors import ConfigError
from curation.core.rundir import load_dataset
from curation.core.runner import run_pipeline
from training.api import train
from training.chat import prompt_turns, render_pair
from training.data import pair, prepare

H, A = "\n\nHuman: ", "\n\nAssistant: "
PROMPT = f"{H}Hi{A}Hello! How can I help?{H}Reset my password?\n\nAssistant:"
TURNS = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "Reset my password?"},
]


def test_an_hh_transcript_prompt_renders_as_separate_chat_turns(tokenizer: Any) -> None:
    assert prompt_turns(PROMPT) == TURNS
    assert prompt_turns(PROMPT.lstrip()) == TURNS  # normalize strips the leading newlines
    head, (chosen, rejected) = render_pair(tokenizer, PROMPT, (" Open settings.", " No."))
    assert head == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello! How can I help?<|im_end|>\n"
        "<|im_start|>user\nReset my password?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert "Human:" not in head and "Assistant:" not in head
    assert chosen == " Open settings.<|im_end|>\n" and rejected == " No.<|im_end|>\n"
    made, truncated = pair(tokenizer, PROMPT, " Open settings.", " No.", 256)
    assert not truncated and tokenizer.decode(made.prompt) == head
    assert tokenizer.decode(made.chosen).startswith(" Open settings.")


def test_single_turn_and_raw_are_explicit_choices(tokenizer: Any) -> None:
    single, _ = render_pair(tokenizer, PROMPT, ("x",), "single_turn")
    assert single == f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n"
    raw, (chosen,) = render_pair(tokenizer, PROMPT, (" Open settings.",), "raw")
    assert raw == PROMPT and chosen == " Open settings."
    made, _ = pair(tokenizer, PROMPT, " Open settings.", " No.", 256, prompt_format="raw")
    assert tokenizer.decode(made.prompt) == PROMPT and made.chosen[-1] == tokenizer.eos_token_id  # the answer still ends


@pytest.mark.parametrize(
    "prompt", ["what colour is the sky?", "Summarize this chat:\n\nHuman: hi\n\nAssistant: hello", "Human resources asked: why?"]
)
def test_prompts_that_are_not_transcripts_stay_one_user_turn(prompt: str) -> None:
    assert prompt_turns(prompt) == [{"role": "user", "content": prompt}]


def test_prompt_format_is_validated() -> None:
    with pytest.raises(ConfigError, match="train.prompt_format"):
        parse_config({"input": {"path": "x.jsonl", "kind": "preference"}, "train": {"prompt_format": "chatml"}})


def _hh_rows(n: int = 16) -> list[dict[str, str]]:
    colours = ["red", "blue", "green", "white"]
    rows = []
    for i in range(n):
        c, w = colours[i % 4], colours[(i + 1) % 4]
        shared = f"{H}hello ({i}){A}hello, since monday.{H}what colour is the sky?{A}"
        rows.append({"id": f"hh{i}", "chosen": f"{shared}the sky is {c}.", "rejected": f"{shared}the sky is {w}."})
    return rows


def test_hh_transcripts_train_dpo_on_separate_turns(tmp_path: Path, lm_dir: Path, tokenizer: Any) -> None:
    data = tmp_path / "hh.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _hh_rows()), encoding="utf-8")
    train_cfg = {"model": str(lm_dir), "max_steps": 2, "batch_size": 4, "max_length": 96, "lr": 1e-3}
    cfg = parse_config({"input": {"path": str(data), "kind": "ratings"}, "stages": ["normalize", "preferences"], "train": train_cfg})
    run_dir = run_pipeline(cfg, out_dir=tmp_path / "run").run_dir
    pairs = load_dataset(run_dir)
    assert pairs["prompt"][0].startswith("Human: hello (")  # the stage keeps the transcript text
    prepared = prepare(pairs, "dpo", tokenizer, max_length=96, eval_fraction=0.0, seed=0, packing=False)
    rendered = tokenizer.decode(prepared.train[0].prompt)
    assert rendered.count("<|im_start|>user\n") == 2 and rendered.count("<|im_start|>assistant\n") == 2 and "Human:" not in rendered
    assert run_checks(run_dir).verdict == "pass"
    result = train(run_dir)
    assert result.task == "dpo" and len(json.loads((result.out_dir / "metrics.json").read_text())["loss_curve"]) == 2
    assert pl.read_parquet(run_dir / "dataset/data.parquet").height == 16
