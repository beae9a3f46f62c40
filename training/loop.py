"""The training loop: one function, read top to bottom (after nanoGPT's ``train.py``).

Loss scaling: every micro-batch's loss is a *sum* (over target tokens for sft/cpt, over
rows for classify, over pairs for dpo), divided by the number of those units in the whole
optimizer step. The update is then the mean over the step's units, whatever the split
into micro-batches, so ``batch_size=4, grad_accum=1`` and ``batch_size=1, grad_accum=4``
give the same step. With the balance stage's ``sample_weight`` each unit's loss is
multiplied by its row's weight and the step divides by the sum of its units' weights
instead of their count: a weighted mean, with the same property. Held-out examples carry
no weights, so evaluation is unweighted.

No avoidable host syncs in a step: batches are collated ahead on a background thread
(training.stream), the loss selects its target positions by indices found on the CPU,
and the loss curve stays on the device until a log line or a checkpoint needs it.
Checkpoints (when, what, and the write off the training thread) are training.checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from curation.core.config import TrainConfig
from curation.core.errors import RunError
from curation.core.progress import Log, null_progress
from training.checkpoint import Checkpoints, has_checkpoint, load_checkpoint, save_checkpoint
from training.data import Prepared, Task, collate, take
from training.dpo import dpo_loss, preference_scores, reference_logps, sequence_logps, target_index, token_logps, with_reference
from training.models import causal_parts
from training.stream import item_tokens, prefetch, steps, units

__all__ = [
    "Job",
    "backward_step",
    "evaluate",
    "fit",
    "has_checkpoint",
    "item_tokens",
    "load_checkpoint",
    "loss_step",
    "save_checkpoint",
    "units",
]

Progress = Callable[[str, int | None], contextlib.AbstractContextManager[Any]]  # (description, total) -> bar with .advance(n)
DEFAULT_LR = {
    ("lora", "sft"): 2e-4, ("lora", "cpt"): 2e-4, ("lora", "classify"): 1e-3, ("lora", "dpo"): 5e-5,
    ("full", "sft"): 2e-5, ("full", "cpt"): 2e-5, ("full", "classify"): 5e-5, ("full", "dpo"): 1e-6,
}  # fmt: skip
WARMUP_SHARE = 0.05  # of the steps, at least one
MIN_LR_SHARE = 0.1  # cosine decays to this share of the peak
CLIP_NORM = 1.0
LOG_LINES_PER_RUN = 10  # also how often the loss curve is read back from the device


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


def weighted_sum(losses: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """The sum of per-unit losses, (N,), each times its weight when the batch has weights."""
    return losses.sum() if weights is None else (losses * weights).sum()


def loss_step(model: Any, batch: dict[str, torch.Tensor], job: Job) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The summed (weighted, if the batch has ``weights``) loss of one micro-batch and what evaluation needs from it."""
    task, weights = job.task, batch.get("weights")
    if task in ("sft", "cpt"):
        logps, _ = token_logps(model, batch)  # (N,)
        if logps.numel() == 0:
            raise RunError(
                "a batch's loss mask selects no tokens; every example needs response tokens (check `max_length` and empty completions)"
            )
        return -weighted_sum(logps, None if weights is None else weights.flatten()[target_index(batch)]), {}
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
) -> torch.Tensor:
    """Forward and backward over one optimizer step's micro-batches (on the CPU); returns the step's mean loss, on the device.

    Each summed micro-batch loss is divided by the units of the whole step, so the
    accumulated gradient is the step's mean however the rows are split.
    """
    n_units = sum(units(job.task, b) for b in micro)  # counted on the CPU batches: no device sync
    total: torch.Tensor | float = 0.0
    for batch in micro:
        with autocast():
            loss_sum, _ = loss_step(model, to_device(batch), job)
        (loss_sum / n_units).backward()
        total = total + loss_sum.detach()
    assert isinstance(total, torch.Tensor)
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
    model: Any, items: list[Any], job: Job, to_device: Callable[..., dict[str, torch.Tensor]], autocast: Callable[[], Any], *,
    progress: Progress | None = None, label: str = "evaluating",
) -> dict[str, float]:  # fmt: skip
    """Held-out metrics: loss and perplexity; accuracy and F1 (classify); preference accuracy and margin (dpo).

    Unweighted: held-out examples carry no ``sample_weight``, so the metrics describe the data as it is.
    The caller caps ``items`` (``train.eval_max_rows``): evaluation is a check, not a second training run.
    """
    if not items:
        return {}
    model.eval()
    losses, extras = list[torch.Tensor](), dict[str, list[torch.Tensor]]()
    n: float = 0  # stays an int: held-out batches carry no weights
    size = job.cfg.batch_size
    with torch.no_grad(), (progress or null_progress)(label, math.ceil(len(items) / size)) as bar:
        for start in range(0, len(items), size):
            batch = collate(job.task, items[start : start + size], job.pad_id)
            n += units(job.task, batch)
            with autocast():
                loss, extra = loss_step(model, to_device(batch), job)
            losses.append(loss.detach().float())
            for k, v in extra.items():
                extras.setdefault(k, []).append(v.detach())
            bar.advance(1)
    model.train()
    loss_sum = float(torch.stack(losses).double().sum())  # the one sync of the evaluation
    return _summarise(job.task, loss_sum, n, {k: [v.cpu() for v in vs] for k, vs in extras.items()})


# ---------------------------------------------------------------------------- setup
def speed_and_memory(model: Any, job: Job, device: torch.device, say: Log) -> bool:
    """Activation checkpointing and ``torch.compile`` as configured; returns whether the model is compiled.

    ``compile: auto`` compiles on CUDA only (on CPU the compile time outweighs a short
    run). A model that fails to compile runs eagerly: dynamo's ``suppress_errors`` falls
    back per frame, so a new architecture never stops a run.
    """
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if job.cfg.gradient_checkpointing:
        inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        inner.config.use_cache = False
    wanted = job.cfg.compile is True or (job.cfg.compile == "auto" and device.type == "cuda")
    if not wanted:
        return False
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True
    (inner if job.task == "classify" else causal_parts(model)[0]).compile()  # the module our loss calls
    say("compiling the model (the first steps are slow)")
    return True


def _curve(pending: list[tuple[dict[str, Any], torch.Tensor]]) -> list[dict[str, Any]]:
    """The pending curve points with their losses read back from the device in one transfer."""
    if not pending:
        return []
    losses = torch.stack([loss for _, loss in pending]).tolist()
    points = [{**point, "loss": loss} for (point, _), loss in zip(pending, losses, strict=True)]
    pending.clear()
    return points


# ---------------------------------------------------------------------------- the loop
def fit(
    model: Any, data: Prepared, job: Job, *, resume: bool = False, run_eval: bool = True, progress: Progress | None = None,
    log: Log | None = None, clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:  # fmt: skip
    """Train ``model`` in place on ``data.train``; returns the metrics (curve, eval before/after, speed, checkpoints).

    Args:
        run_eval: evaluate on the held-out split (at most ``train.eval_max_rows`` of it) before and after.
        clock: seconds, for the checkpoint interval and the speed; injectable for tests.
    """
    cfg, say = job.cfg, log or (lambda _m: None)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    autocast = autocast_for(device)
    model.to(device).train()
    compiled = speed_and_memory(model, job, device, say)

    def to_device(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}

    total = total_steps(cfg, len(data.train))
    peak_lr = cfg.lr or default_lr(job.task, cfg.method)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=peak_lr, betas=(0.9, 0.999), weight_decay=0.0, fused=device.type == "cuda")
    data = dataclasses.replace(data, eval=data.eval[: cfg.eval_max_rows] if run_eval else [])
    bars = progress or null_progress

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
        state = {"step": 0, "cursor": 0, "curve": [], "tokens": 0, "seconds": 0.0}
        state["eval_before"] = evaluate(model, data.eval, job, to_device, autocast, progress=bars, label="evaluating before training")
        if state["eval_before"]:
            say("eval before: " + ", ".join(f"{k} {v:.4g}" for k, v in state["eval_before"].items()))
    resumed_from = state["step"]

    batches = prefetch(
        steps(data, job.task, batch_size=cfg.batch_size, grad_accum=cfg.grad_accum, seed=cfg.seed, pad_id=job.pad_id,
              cursor=state["cursor"], count=total - state["step"], pin=device.type == "cuda")
    )  # fmt: skip
    log_every = max(1, total // LOG_LINES_PER_RUN)
    pending: list[tuple[dict[str, Any], torch.Tensor]] = []  # curve points whose loss is still on the device
    started = clock()
    with bars(f"training {job.task}", total) as bar, Checkpoints(job, clock=clock) as checkpoints:
        bar.advance(state["step"])
        for step, batch in zip(range(state["step"], total), batches, strict=True):
            lr = get_lr(step, total, peak_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            step_loss = backward_step(model, batch.micro, job, to_device, autocast)
            torch.nn.utils.clip_grad_norm_(params, CLIP_NORM)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

            state.update(step=step + 1, cursor=batch.cursor, tokens=state["tokens"] + batch.tokens)
            pending.append(({"step": step + 1, "lr": lr, "seconds": round(state["seconds"] + clock() - started, 3)}, step_loss))
            bar.advance(1)
            save = checkpoints.due() or step + 1 == total
            if (step + 1) % log_every == 0 or save:
                state["curve"] += _curve(pending)
                say(f"step {step + 1}/{total}  loss {state['curve'][-1]['loss']:.4f}  lr {lr:.2e}")
            if save:
                state["seconds"] += clock() - started
                checkpoints.save(model, optimizer, state)
                started = clock()
                checkpoints.stop_if_interrupted(step + 1, total)
        state["seconds"] += clock() - started
        checkpoints.restore_signals()
        eval_after = evaluate(model, data.eval, job, to_device, autocast, progress=bars, label="evaluating after training")
    if eval_after:
        say("eval after: " + ", ".join(f"{k} {v:.4g}" for k, v in eval_after.items()))
    return {
        "steps": total, "resumed_from_step": resumed_from, "lr": peak_lr, "device": device.type, "compiled": compiled,
        "loss_curve": state["curve"], "eval_before": state["eval_before"], "eval_after": eval_after,
        "train_seconds": round(state["seconds"], 3), "tokens_per_second": round(state["tokens"] / max(state["seconds"], 1e-9), 1),
        "checkpoints": {"steps": checkpoints.steps, "stall_seconds": round(checkpoints.stall_seconds, 3),
                        "write_seconds": round(checkpoints.write_seconds, 3)},
    }  # fmt: skip
