"""Attention over packed blocks, in the form the device runs fastest.

A packed block holds several examples that must not attend to each other. Given
``position_ids`` that restart at each example and no mask, transformers detects the
packing and builds a block-diagonal mask, which on CUDA rules out SDPA's flash kernel
(and its detection reads a device tensor on the host, a sync per forward). So:

- a batch whose rows each hold one example comes without ``position_ids``
  (``training.data.collate_rows``): the plain causal mask, SDPA's fastest kernel;
- a packed batch on CUDA runs FlexAttention with a document block mask built here from
  the positions (fully masked 128x128 tiles are skipped, so packing costs nothing);
- a packed batch elsewhere (CPU) keeps the transformers path: exact, and CPU has no
  flash kernel to lose.
"""

from __future__ import annotations

from typing import Any

import torch

FLEX = "flex_attention"


def document_mask(positions: torch.Tensor) -> Any:
    """A FlexAttention ``BlockMask``, (B, 1, T, T): causal, and only within the example of each token."""
    from torch.nn.attention.flex_attention import create_block_mask

    docs = (positions == 0).cumsum(dim=1)  # (B, T): index of each token's example

    def same_example_causal(b: Any, h: Any, q: Any, kv: Any) -> Any:
        return (kv <= q) & (docs[b, q] == docs[b, kv])

    batch, length = positions.shape
    return create_block_mask(same_example_causal, batch, None, length, length, device=positions.device)


def _inner(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _use(model: Any, implementation: str) -> bool:
    """Switch the model's attention to ``implementation`` if it is not already; False if the model cannot."""
    inner = _inner(model)
    if inner.config._attn_implementation == implementation:
        return True
    if getattr(inner, "_tuneprep_no_flex", False) and implementation == FLEX:
        return False
    try:
        inner.set_attn_implementation(implementation)
    except (ValueError, ImportError):  # an architecture without FlexAttention support: keep what it has
        inner._tuneprep_no_flex = True
    return bool(inner.config._attn_implementation == implementation)


def attention_kwargs(model: Any, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
    """``attention_mask`` and ``position_ids`` for the backbone's forward on ``batch`` (see the module docstring)."""
    positions, mask = batch.get("position_ids"), batch.get("attention_mask")
    if positions is not None and mask is None and positions.is_cuda and _use(model, FLEX):
        return {"attention_mask": document_mask(positions), "position_ids": positions}
    if _inner(model).config._attn_implementation == FLEX:
        _use(model, "sdpa")
    return {"attention_mask": mask, "position_ids": positions}
