"""The balance stage's re-balancing reaches training: imbalanced rows -> balance (target) -> gate -> train."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from checks.gate import run_checks
from curation.core.ledger import Ledger, ledger_path_for
from curation.core.rundir import load_dataset, read_manifest
from tests.training.tiny import label_rows
from training.api import train
from training.data import split_indices

OPTIONS = {"max_steps": 2, "batch_size": 4, "max_length": 32, "eval_fraction": 0.25, "seed": 0}


def _imbalanced() -> list[dict[str, str]]:
    """20 billing, 8 shipping, 4 account rows."""
    keep = {"billing": 20, "shipping": 8, "account": 4}
    seen = dict.fromkeys(keep, 0)
    rows = []
    for row in label_rows(60):
        seen[row["label"]] += 1
        if seen[row["label"]] <= keep[row["label"]]:
            rows.append(row)
    return rows


@pytest.mark.parametrize("rebalance", ["up", "off"])
def test_training_honours_the_balance_stages_weights_and_repeats(
    make_run: Callable[..., Any], encoder_dir: Path, rebalance: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from curation.cli import main

    balance = {"balance": {"embeddings": False, "target": {"facet": "label", "rebalance": rebalance}}}
    run = make_run(_imbalanced(), stages=[balance], train={"model": str(encoder_dir), **OPTIONS}, name=rebalance)
    assert run_checks(run.run_dir).verdict == "pass"
    df = load_dataset(run.run_dir)
    assert ("repeat" in df.columns) == (rebalance == "up") and "sample_weight" in df.columns

    assert main(["train", str(run.run_dir), "-q"]) == 0
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    out = run.run_dir / "training" / "classify-lora"
    metrics = json.loads((out / "metrics.json").read_text())

    train_idx, _ = split_indices(df, OPTIONS["eval_fraction"], OPTIONS["seed"], task="classify")
    weights = df["sample_weight"][train_idx]
    added = int((df["repeat"][train_idx] - 1).sum()) if rebalance == "up" else 0
    assert metrics["data"]["balance"] == {
        "weighted": True, "weight_min": round(weights.min(), 6), "weight_max": round(weights.max(), 6),
        "zero_weight_rows": 0, "repeat_added_rows": added, "ignored_columns": [],
    }  # fmt: skip
    assert metrics["data"]["train_examples"] == metrics["data"]["train_rows"] + added and metrics["data"]["eval_rows"] == df.height - len(
        train_idx
    )
    if rebalance == "up":
        assert added > 0 and f"`repeat` added {added} copies of training rows" in summary
    else:
        assert weights.min() < 1 < weights.max()  # 20 : 8 : 4 rows aimed at 1 : 1 : 1
    assert "balance: loss weighted by `sample_weight`" in summary and "held-out metrics unweighted" in summary
    assert "- balance: loss weighted by `sample_weight`" in (out / "model_card.md").read_text()
    [job] = read_manifest(run.run_dir)["training"]
    assert job["balance"] == metrics["data"]["balance"]
    [row] = Ledger(ledger_path_for(run.run_dir)).rows("training", run_id=run.run_id)
    assert json.loads(row["metrics"])["balance"] == metrics["data"]["balance"]


def test_balance_weights_off_trains_on_the_rows_as_they_are_and_says_so(
    make_run: Callable[..., Any], encoder_dir: Path, tmp_path: Path
) -> None:
    balance = {"balance": {"embeddings": False, "target": {"facet": "label", "rebalance": "up"}}}
    run = make_run(_imbalanced(), stages=[balance], train={"model": str(encoder_dir), **OPTIONS})
    run_checks(run.run_dir)
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"train": {"model": str(encoder_dir), **OPTIONS, "balance_weights": False}}))
    result = train(run.run_dir, config=config, out_dir=tmp_path / "plain")
    data = result.metrics["data"]
    assert data["balance"]["weighted"] is False and data["balance"]["ignored_columns"] == ["sample_weight", "repeat"]
    assert data["train_examples"] == data["train_rows"]
    card = (tmp_path / "plain" / "model_card.md").read_text()
    assert "`sample_weight` and `repeat` ignored (`balance_weights: false`)" in card
    assert yaml.safe_load((tmp_path / "plain" / "train_config.yaml").read_text())["balance_weights"] is False
