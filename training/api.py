"""``train(run_dir)``: fine-tune on a run's curated dataset, once its checks have passed.

The checks gate runs first and refuses a run that failed or whose dataset changed since
it was validated. The job then resolves its ``train:`` options (the run's own, or a
given file), tokenises the dataset, trains, and writes the model, ``metrics.json``, the
resolved config and a model card naming the run id and dataset fingerprint; the ledger
gets a row and the run's manifest a ``training`` entry.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from curation.core.config import TrainConfig, format_error, read_run_config, read_yaml_file
from curation.core.errors import ConfigError, GateFailed
from curation.core.ledger import run_ledger
from curation.core.masking import mask_values
from curation.core.progress import Log
from curation.core.rundir import frame_fingerprint, load_dataset, read_manifest, sha256_json, update_manifest

TASK_FOR_KIND = {"instruction": "sft", "text": "cpt", "classification": "classify", "preference": "dpo"}


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    run_id: str
    task: str
    method: str
    model: str
    dataset_fingerprint: str
    metrics: dict[str, Any]


def _parse_train(data: Any, where: str) -> TrainConfig:
    if isinstance(data, dict) and isinstance(data.get("train"), dict):
        data = data["train"]  # a whole pipeline YAML: take its `train:` section
    try:
        return TrainConfig.model_validate(data or {})
    except ValidationError as e:
        raise ConfigError([f"{format_error('train', err)} (in {where})" for err in e.errors()]) from None


def load_train_config(run_dir: Path, config: TrainConfig | str | Path | None) -> TrainConfig:
    """The given options, a YAML file of them (bare or under `train:`), or the run's own `train:` section."""
    if isinstance(config, TrainConfig):
        return config
    if config is None:
        return read_run_config(run_dir).train
    data = read_yaml_file(config, what="train config", hint="pass a YAML file with the `train:` options")
    return _parse_train(data, str(config))


def resolve(cfg: TrainConfig, kind: str, *, max_steps: int | None) -> TrainConfig:
    """Fill in the task (from the record kind), the model and the learning rate; check they fit the data."""
    from training.loop import default_lr
    from training.models import default_model

    task = cfg.task or TASK_FOR_KIND.get(kind)
    if task is None:
        raise ConfigError(
            f"`train.task`: a `{kind}` dataset has no training task; assemble preference pairs with the `preferences` stage first"
        )
    if TASK_FOR_KIND.get(kind) != task:
        raise ConfigError(
            f"`train.task`: `{task}` cannot train on a `{kind}` dataset; it needs `{next(k for k, t in TASK_FOR_KIND.items() if t == task)}` rows"
        )
    update = {"task": task, "model": cfg.model or default_model(task), "lr": cfg.lr or default_lr(task, cfg.method)}  # type: ignore[arg-type]
    if max_steps is not None:
        update["max_steps"] = max_steps
    return cfg.model_copy(update=update)


def train(
    run_dir: str | Path, *, config: TrainConfig | str | Path | None = None, max_steps: int | None = None, out_dir: str | Path | None = None, resume: bool = False,
    run_eval: bool = True, quiet: bool = True, log: Log | None = None, notice: Log | None = None,
) -> TrainResult:  # fmt: skip
    """Fine-tune on ``run_dir``'s curated dataset once the checks gate lets it through.

    Args:
        config: ``train:`` options, or a YAML file of them; default the run's own.
        max_steps: overrides ``train.max_steps``.
        out_dir: default ``RUN/training/<task>-<method>``.
        resume: continue from the checkpoint in ``out_dir`` (same config and data only);
            without one, training starts at step 0 and ``notice`` says so.
        run_eval: evaluate before and after training (at most ``train.eval_max_rows`` held-out examples).
        log: progress lines (eval before, resume point, balance); None for silence.
        notice: lines to show even when quiet; default ``log``.

    Raises:
        GateFailed: the run failed its checks or its dataset changed since.
        ConfigError: the options are invalid or do not fit the dataset.
    """
    from checks.gate import require_pass

    info = require_pass(Path(run_dir))
    gate = {
        "run_id": info.run_id,
        "verdict": info.verdict,
        "dataset_fingerprint": info.dataset_fingerprint,
        "suite_fingerprint": info.suite_fingerprint,
    }
    return fine_tune(
        Path(run_dir), gate, config=config, max_steps=max_steps, out_dir=out_dir, resume=resume, run_eval=run_eval, quiet=quiet, log=log,
        notice=notice,
    )  # fmt: skip


def fine_tune(
    run_dir: Path, gate: dict[str, str], *, config: TrainConfig | str | Path | None = None, max_steps: int | None = None, out_dir: str | Path | None = None,
    resume: bool = False, run_eval: bool = True, quiet: bool = True, log: Log | None = None, notice: Log | None = None,
) -> TrainResult:  # fmt: skip
    """The job behind ``train`` once the gate has passed; ``gate`` is what it said."""
    manifest = read_manifest(run_dir)
    cfg = resolve(load_train_config(run_dir, config), manifest["kind"], max_steps=max_steps)
    df = load_dataset(run_dir)
    if frame_fingerprint(df) != gate["dataset_fingerprint"]:
        raise GateFailed(f"the dataset of '{run_dir}' changed since it was validated; rerun `tuneprep check {run_dir}`")
    out = Path(out_dir) if out_dir is not None else run_dir / "training" / f"{cfg.task}-{cfg.method}"
    from training.loop import has_checkpoint

    ledger = run_ledger(run_dir, manifest)
    if resume and not has_checkpoint(out / "checkpoint") and (out / "metrics.json").is_file():
        raise ConfigError(
            f"`--resume`: the training in '{out}' already finished (metrics.json); nothing to resume: drop `--resume` to train it again, or pass `--out` for a new folder"
        )
    if resume and not has_checkpoint(out / "checkpoint"):
        (notice or log or (lambda _m: None))(f"no checkpoint in '{out / 'checkpoint'}'; training starts at step 0")
        resume = False
    try:
        metrics, model_name = _run_job(cfg, df, out, gate, resume=resume, run_eval=run_eval, quiet=quiet, log=log)
    except Exception as e:
        ledger.record_training(
            gate["run_id"],
            out_dir=out,
            status="failed",
            task=str(cfg.task),
            model=str(cfg.model),
            dataset_fp=gate["dataset_fingerprint"],
            metrics={"error": type(e).__name__},
        )
        raise
    summary = {k: metrics[k] for k in ("steps", "eval_before", "eval_after", "train_seconds", "tokens_per_second")}
    summary["balance"] = metrics["data"]["balance"]
    ledger.record_training(
        gate["run_id"],
        out_dir=out,
        status="finished",
        task=str(cfg.task),
        model=model_name,
        dataset_fp=gate["dataset_fingerprint"],
        metrics=summary,
    )
    entry = {
        "out_dir": str(out),
        "task": cfg.task,
        "method": cfg.method,
        "model": model_name,
        **{k: gate[k] for k in ("dataset_fingerprint", "suite_fingerprint")},
        **summary,
    }
    update_manifest(
        run_dir, training=[*read_manifest(run_dir).get("training", []), {**entry, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}]
    )
    return TrainResult(out, gate["run_id"], str(cfg.task), cfg.method, model_name, gate["dataset_fingerprint"], metrics)


def _run_job(
    cfg: TrainConfig, df: Any, out: Path, gate: dict[str, str], *, resume: bool, run_eval: bool, quiet: bool, log: Log | None
) -> tuple[dict[str, Any], str]:
    """Load, tokenise, train, write. Returns (metrics, model name)."""
    import torch

    from curation.core.progress import make_progress_factory
    from training.data import prepare
    from training.loop import Job, fit
    from training.models import add_lora, load_model, load_tokenizer
    from training.outputs import describe_balance, write_outputs

    assert cfg.task is not None and cfg.model is not None
    torch.manual_seed(cfg.seed)  # the new head and the LoRA matrices start the same on every (re)run
    random.seed(cfg.seed)
    tokenizer = load_tokenizer(cfg.model, cfg.task)
    data = prepare(
        df, cfg.task, tokenizer, max_length=cfg.max_length, eval_fraction=cfg.eval_fraction, seed=cfg.seed, packing=cfg.packing,
        balance_weights=cfg.balance_weights, prompt_format=cfg.prompt_format,
    )  # fmt: skip
    if log is not None and (note := describe_balance(data.stats["balance"])):
        log(f"balance: {note}")
    model = load_model(cfg.model, cfg.task, labels=data.labels, pad_id=tokenizer.pad_token_id)
    if cfg.method == "lora":
        model = add_lora(model, cfg.task, r=cfg.lora_r, alpha=cfg.lora_alpha)
    fingerprint = sha256_json({"config": cfg.model_dump(mode="json"), "dataset": gate["dataset_fingerprint"]})
    if not resume and (out / "checkpoint").exists():
        import shutil

        shutil.rmtree(out / "checkpoint")
    job = Job(cfg=cfg, pad_id=tokenizer.pad_token_id, checkpoint_dir=out / "checkpoint", fingerprint=fingerprint, lora=cfg.method == "lora")
    metrics = fit(model, data, job, resume=resume, run_eval=run_eval, progress=make_progress_factory(quiet), log=log)
    metrics |= {
        "run_id": gate["run_id"],
        "dataset_fingerprint": gate["dataset_fingerprint"],
        "data": data.stats,
        "labels": mask_values(data.labels),
    }
    write_outputs(out, model=model, tokenizer=tokenizer, cfg=cfg, metrics=metrics, job=gate)
    return metrics, cfg.model
