"""The output head and token log-probabilities without the whole (tokens x vocab) logits.

A 2048-token block of a 49k-vocabulary model has 100M fp32 logits (400 MB) per row of
the batch, plus as much again for their gradient: more than the rest of a small model's
activations together. ``linear_logps`` computes the head and the log-softmax of the
target token a chunk of rows at a time and keeps only each row's log-sum-exp; its
backward recomputes each chunk's logits and turns them straight into the gradients of
the hidden states and of the head weight, so at most one chunk of logits exists at once
(the idea of Liger's fused linear cross-entropy and of Apple's cut cross-entropy, in
plain torch).

The matmuls run in the autocast dtype when autocast is on (bf16 on CUDA) and the
softmax in fp32, as ``head(hidden).float()`` followed by ``log_softmax`` would.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

CHUNK_BYTES = 256 * 2**20  # fp32 logits per chunk: big enough to keep a GPU busy, small next to a model


def chunk_rows(vocab: int) -> int:
    """Rows of hidden states per chunk, so that one chunk of fp32 logits is about ``CHUNK_BYTES``."""
    return max(1, CHUNK_BYTES // (4 * vocab))


def _compute_dtype(weight: torch.Tensor) -> torch.dtype:
    device = weight.device.type
    if device in ("cuda", "cpu") and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return weight.dtype


class _LinearLogps(torch.autograd.Function):
    """log_softmax(hidden @ weight.T)[i, targets[i]] per row, chunked; see the module docstring.

    When all rows fit in one chunk (a CPU batch, a short run) the softmax is kept from the
    forward pass instead of recomputed: the memory the whole logits always took, and no
    extra matmul.
    """

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, rows: int, dtype: torch.dtype) -> torch.Tensor:
        h, w = hidden.to(dtype), weight.to(dtype)  # (N, H), (V, H)
        lse = torch.empty(h.shape[0], device=h.device, dtype=torch.float32)  # (N,)
        picked = torch.empty_like(lse)  # (N,): the target's logit
        kept = None
        for start in range(0, h.shape[0], rows):
            logits = (h[start : start + rows] @ w.T).float()  # (n, V)
            lse[start : start + rows] = torch.logsumexp(logits, dim=-1)
            picked[start : start + rows] = logits.gather(1, targets[start : start + rows, None]).squeeze(1)
            if h.shape[0] <= rows:
                kept = logits.sub_(lse[:, None]).exp_()  # (N, V): the softmax, for backward
        ctx.save_for_backward(hidden, weight, targets, lse, kept)
        ctx.rows, ctx.dtype = rows, dtype
        return picked - lse

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        hidden, weight, targets, lse, kept = ctx.saved_tensors
        h, w = hidden.to(ctx.dtype), weight.to(ctx.dtype)
        grad_h = torch.empty_like(hidden)  # (N, H)
        want_w = ctx.needs_input_grad[1]  # a frozen head (LoRA) needs no weight gradient
        grad_w = torch.zeros(weight.shape, device=weight.device, dtype=torch.float32) if want_w else None  # (V, H)
        for start in range(0, h.shape[0], ctx.rows):
            part = slice(start, start + ctx.rows)
            probs = kept if kept is not None else torch.exp((h[part] @ w.T).float() - lse[part, None])  # (n, V): softmax
            # d logp[t] / d logits = onehot(t) - softmax, times the incoming gradient of each row
            d_logits = probs * -grad[part, None]  # not in place: ``kept`` must survive a retained graph
            d_logits.scatter_add_(1, targets[part, None], grad[part, None])
            d_logits = d_logits.to(ctx.dtype)
            grad_h[part] = (d_logits @ w).to(hidden.dtype)
            if grad_w is not None:
                grad_w += (d_logits.T @ h[part]).float()  # (V, H)
        return grad_h, None if grad_w is None else grad_w.to(weight.dtype), None, None, None


def linear_logps(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, *, rows: int | None = None) -> torch.Tensor:
    """Log-probabilities of ``targets`` (N,) under ``log_softmax(hidden @ weight.T)``, (N,), chunked.

    Args:
        hidden: (N, H) hidden states of the positions that have a target.
        weight: (V, H) output head weight (no bias).
        targets: (N,) token ids.
        rows: rows per chunk; default ``chunk_rows(V)``.
    """
    return _LinearLogps.apply(hidden, weight, targets, rows or chunk_rows(weight.shape[0]), _compute_dtype(weight))  # type: ignore[no-any-return]


def head_logps(head: Any, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Target log-probs (N,) through ``head``: chunked for a plain bias-free linear head, else the whole logits."""
    if type(head) is torch.nn.Linear and head.bias is None:
        return linear_logps(hidden, head.weight, targets)
    logits = head(hidden).float()  # (N, vocab): a head we cannot see into (adapters, a bias, quantised weights)
    return -F.cross_entropy(logits, targets, reduction="none")
