"""`fields: {prompt: [instruction, input]}` end to end: run, check and `tuneprep train` see the joined prompt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from curation.cli import main
from curation.core.rundir import load_dataset
from tests.data.alpaca_rows import alpaca_rows
from tests.data.jsonl_files import write_jsonl
from training.data import conversations, prepare


def test_joined_prompt_reaches_the_trainer(tmp_path: Path, lm_dir: Path, tokenizer: Any, capsys: pytest.CaptureFixture[str]) -> None:
    rows = alpaca_rows(24, seed=5)
    write_jsonl(tmp_path / "alpaca.jsonl", rows)
    config = tmp_path / "p.yaml"
    config.write_text(
        "input:\n  path: alpaca.jsonl\n  kind: instruction\n  fields: {prompt: [instruction, input], completion: output}\n"
        f"stages: [normalize]\ntrain: {{model: {lm_dir}, max_steps: 1, batch_size: 4, max_length: 128, lr: 1.0e-3}}\n"
    )
    run = tmp_path / "run"
    assert main(["run", str(config), "--out", str(run), "-q"]) == 0
    assert main(["check", str(run)]) == 0
    assert main(["train", str(run), "-q"]) == 0
    capsys.readouterr()
    metrics = json.loads(next((run / "training").glob("*/metrics.json")).read_text())
    assert len(metrics["loss_curve"]) == 1
    dataset = load_dataset(run)
    users = [turns[0]["content"] for turns in conversations(dataset)]
    with_input = [r for r in rows if r["input"]]
    assert with_input and all(f"{r['instruction']}\n\n{r['input']}" in users for r in with_input)
    prepared = prepare(dataset, "sft", tokenizer, max_length=512, eval_fraction=0.0, seed=0, packing=False)
    decoded = {tokenizer.decode(row.ids) for row in prepared.train}
    first = with_input[0]
    assert any(f"{first['instruction']}\n\n{first['input']}" in text for text in decoded)
