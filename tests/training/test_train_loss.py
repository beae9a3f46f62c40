"""The chunked linear + cross-entropy head equals the whole-logits computation, values and gradients."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from training.data import IGNORE
from training.loss import chunk_rows, head_logps, linear_logps


def _full(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -F.cross_entropy((hidden @ weight.T).float(), targets, reduction="none")


@pytest.mark.parametrize("rows", [1, 7, 64, 1000])
def test_chunked_logps_and_gradients_equal_the_full_computation(rows: int) -> None:
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(50, 16, generator=gen, requires_grad=True)
    weight = torch.randn(300, 16, generator=gen, requires_grad=True)
    targets = torch.randint(0, 300, (50,), generator=gen)
    upstream = torch.rand(50, generator=gen)  # a weighted sum downstream, as the loss is
    grads = []
    for fn in (_full, lambda h, w, t: linear_logps(h, w, t, rows=rows)):
        hidden.grad = weight.grad = None
        logps = fn(hidden, weight, targets)
        (logps * upstream).sum().backward()
        grads.append((logps.detach(), hidden.grad.clone(), weight.grad.clone()))
    for full, chunked in zip(grads[0], grads[1], strict=True):
        torch.testing.assert_close(chunked, full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rows", [4, 100])
def test_a_frozen_head_gets_no_gradient_and_the_hidden_states_the_right_one(rows: int) -> None:
    """LoRA: the (tied) head is frozen, so only the hidden states need a gradient."""
    gen = torch.Generator().manual_seed(3)
    weight = torch.randn(60, 8, generator=gen)
    targets = torch.randint(0, 60, (20,), generator=gen)
    grads = []
    for fn in (_full, lambda h, w, t: linear_logps(h, w, t, rows=rows)):
        hidden = torch.randn(20, 8, generator=torch.Generator().manual_seed(4), requires_grad=True)
        fn(hidden, weight, targets).sum().backward()
        grads.append(hidden.grad)
    assert weight.grad is None
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-5)


def test_weighted_loss_with_ignored_positions_equals_the_full_cross_entropy() -> None:
    """The loss the loop computes: targets with -100 left out, each token times its weight, over the weights' sum."""
    gen = torch.Generator().manual_seed(1)
    hidden = torch.randn(2, 12, 8, generator=gen)  # (B, T, H)
    weight = torch.randn(40, 8, generator=gen)
    targets = torch.randint(0, 40, (2, 12), generator=gen)
    targets[0, :5] = IGNORE
    targets[1, -3:] = IGNORE
    weights = torch.rand(2, 12, generator=gen).masked_fill(targets == IGNORE, 0.0)
    full = F.cross_entropy((hidden @ weight.T).flatten(0, 1), targets.flatten(), reduction="none", ignore_index=IGNORE)
    expected = (full * weights.flatten()).sum() / weights.sum()
    index = (targets.flatten() != IGNORE).nonzero().squeeze(1)
    logps = linear_logps(hidden.flatten(0, 1)[index], weight, targets.flatten()[index], rows=3)
    chunked = -(logps * weights.flatten()[index]).sum() / weights.sum()
    torch.testing.assert_close(chunked, expected, rtol=1e-5, atol=1e-5)


def test_chunks_bound_the_logits_memory() -> None:
    assert chunk_rows(49152) * 49152 * 4 <= 256 * 2**20 and chunk_rows(10**9) == 1


def test_the_model_head_goes_through_the_chunked_path_with_the_same_numbers(lm_dir: Path, tokenizer: object) -> None:
    """A tied-embedding Llama head: chunked log-probs and the gradient of the shared weight match the head's own output."""
    from training.models import causal_parts, load_model

    model = load_model(str(lm_dir), "sft", labels=[], pad_id=0)
    _, head = causal_parts(model)
    hidden = torch.randn(9, head.weight.shape[1], generator=torch.Generator().manual_seed(2))
    targets = torch.arange(9)
    chunked = head_logps(head, hidden, targets)
    chunked.sum().backward()
    grad_chunked, head.weight.grad = head.weight.grad.clone(), None
    full = -F.cross_entropy(head(hidden).float(), targets, reduction="none")
    full.sum().backward()
    torch.testing.assert_close(chunked, full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad_chunked, head.weight.grad, rtol=1e-5, atol=1e-5)
