"""Direct preference optimisation: sequence log-probs, the sigmoid loss and the reference.

The reference policy is never a second model copy: under LoRA it is the same model with
its adapters disabled (peft's ``disable_adapter()``); under full fine-tuning its
log-probs are computed once, before the first update, and stored with each pair.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from training.attention import attention_kwargs
from training.data import IGNORE, Pair, collate_pairs
from training.loss import head_logps
from training.models import causal_parts


def target_index(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Flat (B*T) positions that carry a target, (N,): precomputed by collate on the CPU, so no device sync."""
    if "target_index" in batch:
        return batch["target_index"]
    return (batch["targets"].flatten() != IGNORE).nonzero().squeeze(1)


def token_logps(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities of the target tokens, (N,), and the batch row of each, (N,).

    The output head runs only on positions with a target, so the (B, T, vocab) logits of a
    prompt-heavy batch are never built, and a chunk of them at a time (training.loss).
    """
    backbone, head = causal_parts(model)
    hidden = backbone(input_ids=batch["input_ids"], **attention_kwargs(model, batch), use_cache=False).last_hidden_state  # (B, T, H)
    index = target_index(batch)  # (N,)
    logps = head_logps(head, hidden.flatten(0, 1)[index], batch["targets"].flatten()[index])  # (N,)
    return logps, index // hidden.shape[1]


def sequence_logps(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed log-probability of each row's completion tokens, (2B,)."""
    logps, rows = token_logps(model, batch)
    return torch.zeros(batch["input_ids"].shape[0], device=logps.device, dtype=logps.dtype).index_add(0, rows, logps)


def dpo_loss(policy: torch.Tensor, reference: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sigmoid DPO loss per pair, (B,), and the implicit rewards of chosen and rejected, (B,) each.

    ``policy`` and ``reference`` are (2B,) sequence log-probs: chosen rows, then rejected.
    """
    chosen, rejected = (policy - reference).chunk(2)  # log-ratios, (B,) each
    loss = -F.logsigmoid(beta * (chosen - rejected))
    return loss, beta * chosen.detach(), beta * rejected.detach()


TIE_TOL = 1e-4  # implicit rewards this close are a tie (before training they are equal up to rounding)


def preference_scores(chosen: torch.Tensor, rejected: torch.Tensor) -> dict[str, float]:
    """Preference accuracy with ties as half a win, and the share of ties, over (N,) implicit rewards.

    Before training the policy is the reference, so every pair ties: 0.5 (chance), not 0,
    and the gain a model card reports is the gain over chance.
    """
    diff = chosen - rejected
    ties = diff.abs() <= TIE_TOL
    wins = (diff > TIE_TOL).float().sum() + 0.5 * ties.float().sum()
    n = max(diff.numel(), 1)
    return {"preference_accuracy": float(wins / n), "preference_ties": float(ties.float().sum() / n)}


def reference_logps(model: Any, batch: dict[str, torch.Tensor], *, lora: bool) -> torch.Tensor:
    """The reference's sequence log-probs, (2B,): precomputed ones, or the base model under LoRA."""
    if "ref_logps" in batch:
        return batch["ref_logps"]
    if not lora:
        raise AssertionError("full fine-tuning needs precomputed reference log-probs")
    with torch.no_grad(), model.disable_adapter():
        return sequence_logps(model, batch)


def with_reference(
    model: Any,
    pairs: list[Pair],
    *,
    batch_size: int,
    pad_id: int,
    to_device: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]],
    autocast: Any = contextlib.nullcontext,
) -> list[Pair]:
    """``pairs`` with the current model's log-probs stored as their reference (before training)."""
    out = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            with autocast():
                logps = sequence_logps(model, to_device(collate_pairs(chunk, pad_id))).float().cpu()
            chosen, rejected = logps.chunk(2)
            out += [dataclasses.replace(p, ref=(float(c), float(r))) for p, c, r in zip(chunk, chosen, rejected, strict=True)]
    return out
