"""The training loop: one function, read top to bottom (after nanoGPT's ``train.py``).

Loss scaling: every micro-batch's loss is a *sum* (over target tokens for sft/cpt, over
rows for classify, over pairs for dpo), divided by the number of those units in the whole
optimizer step. The update is then the mean over the step's units, whatever the split
into micro-batches, so ``batch_size=4, grad_accum=1`` and ``batch_size=1, grad_accum=4``
give the same step. With the balance stage's ``sample_weight`` each unit's loss is
multiplied by its row's weight and the step divides by the sum of its units' weights
instead of their count: a weighted mean, with the same property. Held-out examples carry
no weights, so evaluation is unweighted.

A checkpoint holds the trained parameters, the optimizer state, the RNG states, the step
and the position in the seeded data stream, so ``resume`` continues exactly where the
killed run stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from curation.core.config import TrainConfig
from curation.core.errors import RunError
from curation.core.progress import null_progress
from curation.core.rundir import atomic_dir, write_json
from training.data import IGNORE, Labelled, Pair, Prepared, Row, Task, collate, take
from training.dpo import dpo_loss, preference_scores, reference_logps, sequence_logps, token_logps, with_reference
from training.models import causal_parts, load_trainable_state, trainable_state

Log = Callable[[str], None]
DEFAULT_LR = {
    ("lora", "sft"): 2e-4, ("lora", "cpt"): 2e-4, ("lora", "classify"): 1e-3, ("lora", "dpo"): 5e-5,
    ("full", "sft"): 2e-5, ("full", "cpt"): 2e-5, ("full", "classify"): 5e-5, ("full", "dpo"): 1e-6,
}  # fmt: skip
WARMUP_SHARE = 0.05  # of the steps, at least one
MIN_LR_SHARE = 0.1  # cosine decays to this share of the peak
CLIP_NORM = 1.0
CHECKPOINTS_PER_RUN = 5


@dataclass(frozen=True)
class Job:
    """What the loop needs besides the model and data."""

    cfg: TrainConfig  # resolved: task and model filled in
    pad_id: int
    checkpoint_dir: Path
    fingerprint: str  # of config + dataset + model: a checkpoint from another job is refused
    lora: bool

    @property
    def task(self) -> Task:
        assert self.cfg.task is not None, "resolve the config first (training.api.resolve)"
        return self.cfg.task


def default_lr(task: str, method: str) -> float:
    return DEFAULT_LR[(method, task)]


def total_steps(cfg: TrainConfig, n_train: int) -> int:
    """``max_steps``, or one pass over the training rows."""
    return cfg.max_steps or max(1, math.ceil(n_train / (cfg.batch_size * cfg.grad_accum)))


def get_lr(step: int, total: int, peak: float) -> float:
    """Linear warmup, then cosine decay to ``MIN_LR_SHARE`` of the peak."""
    warmup = max(1, round(WARMUP_SHARE * total))
    if step < warmup:
        return peak * (step + 1) / warmup
    done = (step - warmup) / max(1, total - warmup)
    return peak * (MIN_LR_SHARE + (1 - MIN_LR_SHARE) * 0.5 * (1 + math.cos(math.pi * done)))


def autocast_for(device: torch.device) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """bf16 autocast on CUDA; plain fp32 elsewhere."""
    if device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def units(task: str, batch: dict[str, torch.Tensor]) -> float:
    """What a step's loss is averaged over: target tokens (sft/cpt) or rows/pairs, each counted by its weight if weighted."""
    if "weights" in batch:  # zero where there is no target
        return float(batch["weights"].sum(dtype=torch.float64))
    if task in ("sft", "cpt"):
        return int((batch["targets"] != -100).sum())
    return int(batch["input_ids"].shape[0] // (2 if task == "dpo" else 1))


def weighted_sum(losses: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """The sum of per-unit losses, (N,), each times its weight when the batch has weights."""
    return losses.sum() if weights is None else (losses * weights).sum()


def item_tokens(item: Row | Labelled | Pair) -> int:
    if isinstance(item, Pair):
        return 2 * len(item.prompt) + len(item.chosen) + len(item.rejected)
    return len(item.ids)


def loss_step(model: Any, batch: dict[str, torch.Tensor], job: Job) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The summed (weighted, if the batch has ``weights``) loss of one micro-batch and what evaluation needs from it."""
    task, weights = job.task, batch.get("weights")
    if task in ("sft", "cpt"):
        logps, _ = token_logps(model, batch)  # (N,)
        if logps.numel() == 0:
            raise RunError(
                "a batch's loss mask selects no tokens; every example needs response tokens (check `max_length` and empty completions)"
            )
        return -weighted_sum(logps, None if weights is None else weights[batch["targets"] != IGNORE]), {}
    if task == "classify":
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()  # (B, classes)
        extras = {"pred": logits.argmax(-1), "label": batch["labels"]}
        if weights is None:  # reduction="sum" kept: unweighted runs stay bit-identical
            return F.cross_entropy(logits, batch["labels"], reduction="sum"), extras
        return weighted_sum(F.cross_entropy(logits, batch["labels"], reduction="none"), weights), extras
    policy = sequence_logps(model, batch)  # (2B,)
    losses, chosen, rejected = dpo_loss(policy, reference_logps(model, batch, lora=job.lora), job.cfg.beta)  # (B,)
    return weighted_sum(losses, weights), {"chosen": chosen, "rejected": rejected}


def backward_step(
    model: Any,
    micro: list[dict[str, torch.Tensor]],
    job: Job,
    to_device: Callable[..., dict[str, torch.Tensor]],
    autocast: Callable[[], Any],
) -> float:
    """Forward and backward over one optimizer step's micro-batches; returns the step's mean loss.

    Each summed micro-batch loss is divided by the units of the whole step, so the
    accumulated gradient is the step's mean however the rows are split.
    """
    n_units = sum(units(job.task, b) for b in micro)
    total = 0.0
    for batch in micro:
        with autocast():
            loss_sum, _ = loss_step(model, to_device(batch), job)
        (loss_sum / n_units).backward()
        total += float(loss_sum.detach())
    return total / n_units


def _macro_f1(pred: torch.Tensor, label: torch.Tensor) -> float:
    scores = []
    for c in torch.unique(torch.cat([pred, label])):
        tp = int(((pred == c) & (label == c)).sum())
        denom = int((pred == c).sum()) + int((label == c).sum())
        scores.append(2 * tp / denom if denom else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def _summarise(task: str, loss_sum: float, n: float, extras: dict[str, list[torch.Tensor]]) -> dict[str, float]:
    loss = loss_sum / max(n, 1)
    if task in ("sft", "cpt"):
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "tokens": n}
    if task == "classify":
        pred, label = torch.cat(extras["pred"]), torch.cat(extras["label"])
        return {"loss": loss, "accuracy": float((pred == label).float().mean()), "f1_macro": _macro_f1(pred, label), "rows": n}
    chosen, rejected = torch.cat(extras["chosen"]), torch.cat(extras["rejected"])
    return {
        "loss": loss,
        **preference_scores(chosen, rejected),  # ties count half: 0.5 before training, not 0
        "reward_margin": float((chosen - rejected).mean()),
        "pairs": n,
    }


def evaluate(
    model: Any, items: list[Any], job: Job, to_device: Callable[..., dict[str, torch.Tensor]], autocast: Callable[[], Any]
) -> dict[str, float]:
    """Held-out metrics: loss and perplexity; accuracy and F1 (classify); preference accuracy and margin (dpo).

    Unweighted: held-out examples carry no ``sample_weight``, so the metrics describe the data as it is.
    """
    if not items:
        return {}
    model.eval()
    loss_sum, extras = 0.0, dict[str, list[torch.Tensor]]()
    n: float = 0  # stays an int: held-out batches carry no weights
    with torch.no_grad():
        for start in range(0, len(items), job.cfg.batch_size):
            batch = to_device(collate(job.task, items[start : start + job.cfg.batch_size], job.pad_id))
            with autocast():
                loss, extra = loss_step(model, batch, job)
            loss_sum, n = loss_sum + float(loss), n + units(job.task, batch)
            for k, v in extra.items():
                extras.setdefault(k, []).append(v.detach().cpu())
    model.train()
    return _summarise(job.task, loss_sum, n, extras)


# ---------------------------------------------------------------------------- checkpoints
def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(job: Job, model: Any, optimizer: torch.optim.Optimizer, progress: dict[str, Any]) -> None:
    """Write the checkpoint atomically: a killed write leaves the previous one intact."""
    state = {"model": trainable_state(model), "optimizer": optimizer.state_dict(), "rng": _rng_state(), "progress": progress}
    with atomic_dir(job.checkpoint_dir) as tmp:
        torch.save(state, tmp / "state.pt")
        write_json(tmp / "meta.json", {"fingerprint": job.fingerprint, "step": progress["step"]})


def has_checkpoint(checkpoint_dir: Path) -> bool:
    return (checkpoint_dir / "state.pt").is_file()


def load_checkpoint(job: Job, model: Any, optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
    """Restore the checkpoint into ``model`` and ``optimizer``; returns its progress, or None if absent."""
    path = job.checkpoint_dir / "state.pt"
    if not has_checkpoint(job.checkpoint_dir):
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)  # our own file: RNG states are not plain tensors
    meta_fp = (job.checkpoint_dir / "meta.json").read_text(encoding="utf-8")
    if job.fingerprint not in meta_fp:
        raise RunError(
            f"the checkpoint in '{job.checkpoint_dir}' belongs to another config, dataset or model; rerun without `--resume` to start over"
        )
    load_trainable_state(model, state["model"])
    optimizer.load_state_dict(state["optimizer"])
    _set_rng_state(state["rng"])
    return state["progress"]  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------- the loop
def fit(
    model: Any, data: Prepared, job: Job, *, resume: bool = False, progress: Callable[..., Any] | None = None, log: Log | None = None
) -> dict[str, Any]:
    """Train ``model`` in place on ``data.train``; returns the metrics (curve, eval before/after, speed)."""
    cfg, say = job.cfg, log or (lambda _m: None)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    autocast = autocast_for(device)
    model.to(device).train()
    if cfg.compile and device.type == "cuda":
        (model if job.task == "classify" else causal_parts(model)[0]).compile()  # the module our loss calls

    def to_device(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}

    total = total_steps(cfg, len(data.train))
    peak_lr = cfg.lr or default_lr(job.task, cfg.method)
    save_every = max(1, total // CHECKPOINTS_PER_RUN)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=peak_lr, betas=(0.9, 0.999), weight_decay=0.0, fused=device.type == "cuda")

    if job.task == "dpo" and not job.lora:  # full fine-tuning: the reference is this model before any update
        reference = functools.partial(
            with_reference, model, batch_size=cfg.batch_size, pad_id=job.pad_id, to_device=to_device, autocast=autocast
        )
        visited = sorted(
            set(take(len(data.train), total * cfg.batch_size * cfg.grad_accum, seed=cfg.seed, cursor=0))
        )  # a short run needs few
        train = list(data.train)
        for i, scored in zip(visited, reference([train[i] for i in visited]), strict=True):
            train[i] = scored
        data = dataclasses.replace(data, train=train, eval=reference(data.eval))
        model.train()

    state = load_checkpoint(job, model, optimizer) if resume else None
    if resume:
        say(f"resuming from step {state['step']}" if state else f"no checkpoint in '{job.checkpoint_dir}'; starting from step 0")
    if state is None:
        state = {
            "step": 0,
            "cursor": 0,
            "curve": [],
            "tokens": 0,
            "seconds": 0.0,
            "eval_before": evaluate(model, data.eval, job, to_device, autocast),
        }
        if state["eval_before"]:
            say("eval before: " + ", ".join(f"{k} {v:.4g}" for k, v in state["eval_before"].items()))
    resumed_from = state["step"]

    factory = progress or null_progress
    started = time.perf_counter()
    with factory(f"training {job.task}", total) as bar:
        bar.advance(state["step"])
        for step in range(state["step"], total):
            lr = get_lr(step, total, peak_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr

            # gather the step's micro-batches first: the loss is normalised by the units in all of them
            micro = []
            for _ in range(cfg.grad_accum):
                picked = [data.train[i] for i in take(len(data.train), cfg.batch_size, seed=cfg.seed, cursor=state["cursor"])]
                state["cursor"] += cfg.batch_size
                state["tokens"] += sum(item_tokens(x) for x in picked)
                micro.append(collate(job.task, picked, job.pad_id))
            step_loss = backward_step(model, micro, job, to_device, autocast)
            torch.nn.utils.clip_grad_norm_(params, CLIP_NORM)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

            state["step"] = step + 1
            elapsed = state["seconds"] + time.perf_counter() - started
            state["curve"].append({"step": step + 1, "loss": step_loss, "lr": lr, "seconds": round(elapsed, 3)})
            bar.advance(1)
            if (step + 1) % max(1, total // 10) == 0 or step + 1 == total:
                say(f"step {step + 1}/{total}  loss {step_loss:.4f}  lr {lr:.2e}")
            if (step + 1) % save_every == 0 and step + 1 < total:
                state["seconds"] += time.perf_counter() - started
                started = time.perf_counter()
                save_checkpoint(job, model, optimizer, state)
    state["seconds"] += time.perf_counter() - started

    eval_after = evaluate(model, data.eval, job, to_device, autocast)
    if eval_after:
        say("eval after: " + ", ".join(f"{k} {v:.4g}" for k, v in eval_after.items()))
    return {
        "steps": total, "resumed_from_step": resumed_from, "lr": peak_lr, "device": device.type,
        "loss_curve": state["curve"], "eval_before": state["eval_before"], "eval_after": eval_after,
        "train_seconds": round(state["seconds"], 3), "tokens_per_second": round(state["tokens"] / max(state["seconds"], 1e-9), 1),
    }  # fmt: skip
