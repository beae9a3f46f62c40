"""The training stream: each optimizer step's micro-batches, collated on a background thread ahead of use.

The order of the rows is a pure function of (seed, cursor) (``training.data.take``), so
the stream can run ahead of the loop without changing what a step sees, and a resumed run
starts it at the checkpoint's cursor. On CUDA the batches are pinned, so the loop's
copies to the device are asynchronous and the GPU never waits on Python collating.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from training.data import IGNORE, Labelled, Pair, Prepared, Row, Task, collate, take


@dataclass(frozen=True)
class Step:
    """One optimizer step's input."""

    micro: list[dict[str, torch.Tensor]]  # grad_accum collated batches, on CPU
    units: float  # what the step's loss is averaged over (see ``units``)
    tokens: int  # tokens in its rows, for tokens/s
    cursor: int  # position in the data stream after this step


def units(task: str, batch: dict[str, torch.Tensor]) -> float:
    """What a step's loss is averaged over: target tokens (sft/cpt) or rows/pairs, each counted by its weight if weighted.

    Call it on the CPU batch: on a device tensor the count would stall the GPU pipeline.
    """
    if "weights" in batch:  # zero where there is no target
        return float(batch["weights"].sum(dtype=torch.float64))
    if task in ("sft", "cpt"):
        return int((batch["targets"] != IGNORE).sum())
    return int(batch["input_ids"].shape[0] // (2 if task == "dpo" else 1))


def item_tokens(item: Row | Labelled | Pair) -> int:
    if isinstance(item, Pair):
        return 2 * len(item.prompt) + len(item.chosen) + len(item.rejected)
    return len(item.ids)


def steps(
    data: Prepared, task: Task, *, batch_size: int, grad_accum: int, seed: int, pad_id: int, cursor: int, count: int, pin: bool
) -> Iterator[Step]:
    """``count`` steps from ``cursor`` on: each ``grad_accum`` micro-batches of ``batch_size`` rows."""
    for _ in range(count):
        micro, tokens = [], 0
        for _ in range(grad_accum):
            picked = [data.train[i] for i in take(len(data.train), batch_size, seed=seed, cursor=cursor)]
            cursor += batch_size
            tokens += sum(item_tokens(x) for x in picked)
            batch = collate(task, picked, pad_id)
            micro.append({k: v.pin_memory() for k, v in batch.items()} if pin else batch)
        yield Step(micro, sum(units(task, b) for b in micro), tokens, cursor)


_DONE = object()


def prefetch(source: Iterator[Step], depth: int = 2) -> Iterator[Step]:
    """Iterate ``source`` on a daemon thread, up to ``depth`` items ahead; its errors are raised here.

    Closing the iterator (the loop ends early, or raises) stops the thread.
    """
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in source:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as e:  # handed to the consumer, which raises it
            put(e)

    threading.Thread(target=run, daemon=True, name="batches").start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
