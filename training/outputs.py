"""What a finished training job leaves behind: weights, metrics, config and model card.

``DIR/model/`` holds the LoRA adapter or the full weights with the tokenizer;
``metrics.json`` the loss curve and the held-out metrics before and after training;
``train_config.yaml`` the resolved ``train:`` options; ``model_card.md`` names the run id
and the fingerprint of the dataset the model learned from.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from curation.core.config import TrainConfig
from curation.core.rundir import atomic_dir, write_bytes, write_json
from training.models import portable_name, save_model

_METRIC_ORDER = ("loss", "perplexity", "accuracy", "f1_macro", "preference_accuracy", "preference_ties", "reward_margin")


def write_outputs(out: Path, *, model: Any, tokenizer: Any, cfg: TrainConfig, metrics: dict[str, Any], job: dict[str, Any]) -> None:
    """Write everything atomically and drop the checkpoint, which the final weights supersede."""
    with atomic_dir(out / "model") as tmp:
        save_model(model, tokenizer, tmp, base_name=str(cfg.model))
    write_json(out / "metrics.json", metrics)
    write_bytes(out / "train_config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False).encode("utf-8"))
    write_bytes(out / "model_card.md", model_card(cfg, metrics, job).encode("utf-8"))
    shutil.rmtree(out / "checkpoint", ignore_errors=True)


def describe_balance(balance: dict[str, Any]) -> str:
    """One line on what the balance stage's columns did to training (``metrics.json`` ``data.balance``); empty if nothing."""
    parts = []
    if balance["weighted"]:
        low, high = balance["weight_min"], balance["weight_max"]
        spread = f"all {low:g}" if low == high else f"{low:g} to {high:g}"
        parts.append(f"loss weighted by `sample_weight` ({spread}), held-out metrics unweighted")
    if balance["zero_weight_rows"]:
        parts.append(f"{balance['zero_weight_rows']} training rows of weight 0 left out")
    if balance["repeat_added_rows"]:
        parts.append(f"`repeat` added {balance['repeat_added_rows']} copies of training rows")
    if balance["ignored_columns"]:
        parts.append(f"{' and '.join(f'`{c}`' for c in balance['ignored_columns'])} ignored (`balance_weights: false`)")
    return "; ".join(parts)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("" if value is None else str(value))


def _eval_table(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    names = [k for k in _METRIC_ORDER if k in before or k in after]
    if not names:
        return ["No held-out evaluation (`eval_fraction: 0`, or `--no-eval`)."]
    rows = [f"| {k} | {_fmt(before.get(k))} | {_fmt(after.get(k))} |" for k in names]
    return ["| metric | before | after |", "|---|---|---|", *rows]


def _loading(cfg: TrainConfig) -> str:
    auto = "AutoModelForSequenceClassification" if cfg.task == "classify" else "AutoModelForCausalLM"
    if cfg.method == "full":
        return f"`transformers.{auto}.from_pretrained('model')`; the tokenizer is in the same folder."
    base = (
        f"`training.models.load_model(model, task, labels=..., pad_id=...)` (or `{portable_name(cfg.model)}` from the Hub)"
        if cfg.model and cfg.model.startswith("embedded:")
        else f"`transformers.{auto}.from_pretrained('{cfg.model}')`"
    )
    return f"`model/` is a PEFT adapter: load the base with {base}, then `peft.PeftModel.from_pretrained(base, 'model')`."


def model_card(cfg: TrainConfig, metrics: dict[str, Any], job: dict[str, Any]) -> str:
    """A short markdown card: provenance first, then how it was trained and how it did."""
    method = f"LoRA (r={cfg.lora_r}, alpha={cfg.lora_alpha}) on every linear layer" if cfg.method == "lora" else "full fine-tuning"
    data = metrics["data"]
    lines = [
        f"# {cfg.task} fine-tune of `{cfg.model}`",
        "",
        "## Provenance",
        f"- run id: `{job['run_id']}`",
        f"- dataset fingerprint: `{job['dataset_fingerprint']}`",
        f"- checks: verdict `{job['verdict']}`, suite fingerprint `{job['suite_fingerprint']}`",
        f"- rows: {data['train_rows']} trained on, {data['eval_rows']} held out (seeded split, seed {cfg.seed}); {data['truncated']} truncated to {cfg.max_length} tokens",
        *([f"- balance: {note}"] if (note := describe_balance(data["balance"])) else []),
        "",
        "## Training",
        f"- task `{cfg.task}`, method: {method}",
        f"- {metrics['steps']} steps, batch {cfg.batch_size} x {cfg.grad_accum} accumulation, peak learning rate {cfg.lr:g} (warmup then cosine), gradient clipping at 1.0",
        f"- device `{metrics['device']}`, {metrics['train_seconds']:.0f} s, {metrics['tokens_per_second']:.0f} tokens/s",
        "",
        "## Held-out evaluation",
        *_eval_table(metrics["eval_before"], metrics["eval_after"]),
        "",
        "## Loading",
        _loading(cfg),
    ]
    return "\n".join(lines) + "\n"
