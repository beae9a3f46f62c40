"""The preference stage's output feeds the DPO task as it is: ratings -> pairs -> gate -> DPO."""

from __future__ import annotations

import json
from pathlib import Path

from checks.gate import run_checks
from curation.core.config import parse_config
from curation.core.rundir import load_dataset
from curation.core.runner import run_pipeline
from tests.training.tiny import COLOURS
from training.api import train


def _ratings() -> list[dict[str, object]]:
    """Three responses per prompt rated by two annotators: right, vague, wrong."""
    items = list(COLOURS.items())
    rows: list[dict[str, object]] = []
    for i, (thing, colour) in enumerate(items * 3):
        wrong = items[(i + 3) % len(items)][1]
        responses = [(f"the {thing} is {colour}.", 5), (f"the {thing} has a colour.", 3), (f"the {thing} is {wrong}.", 1)]
        for r, (text, score) in enumerate(responses):
            for annotator, bias in (("a1", 0), ("a2", -1 if r else 0)):
                rows.append(
                    {
                        "id": f"{i}-{r}-{annotator}",
                        "prompt": f"what colour is the {thing}? ({i})",
                        "response": text,
                        "score": score + bias,
                        "annotator": annotator,
                    }
                )
    return rows


def test_preference_pairs_train_dpo_without_conversion(tmp_path: Path, lm_dir: Path) -> None:
    data = tmp_path / "ratings.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _ratings()), encoding="utf-8")
    cfg = parse_config(
        {
            "input": {"path": str(data), "kind": "ratings"},
            "stages": ["normalize", {"preferences": {"strategy": "best_vs_worst"}}],
            "train": {"model": str(lm_dir), "max_steps": 3, "batch_size": 4, "max_length": 64, "lr": 1e-3},
        }
    )
    run_dir = run_pipeline(cfg, out_dir=tmp_path / "run").run_dir
    pairs = load_dataset(run_dir)
    assert pairs.columns == ["id", "prompt", "chosen", "rejected", "margin", "n_annotators", "agreement"]
    assert pairs.height == len(COLOURS) * 3 and (pairs["margin"] > 0).all()
    assert run_checks(run_dir).verdict == "pass"
    result = train(run_dir)
    assert (
        result.task == "dpo" and result.dataset_fingerprint == json.loads((run_dir / "manifest.json").read_text())["dataset"]["fingerprint"]
    )
    metrics = json.loads((result.out_dir / "metrics.json").read_text())
    assert len(metrics["loss_curve"]) == 3 and "preference_accuracy" in json.dumps(metrics["eval_after"])
    # before training the policy is the reference: every pair ties, which is chance (0.5), not 0
    assert (metrics["eval_before"]["preference_accuracy"], metrics["eval_before"]["preference_ties"]) == (0.5, 1.0)
