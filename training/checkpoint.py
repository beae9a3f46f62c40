"""Checkpoints: when to write them, a consistent copy of the state, and the write off the training thread.

A checkpoint holds the trained parameters, the optimizer state, the RNG states, the step
and the position in the seeded data stream, so ``--resume`` continues exactly where the
killed run stopped.

When: every ``train.checkpoint_minutes`` of wall-clock time (a fixed share of the steps
made a 1B model write 13 GB after every step of a short run), once more when training
ends (so a crash in the final evaluation loses no training), and when the process gets
SIGINT or SIGTERM (the step in flight finishes, the checkpoint is written, then the run
stops with a one-line error that says to ``--resume``).

How: between two steps the training thread enqueues a copy of every tensor of the state
to CPU (pinned memory, asynchronous on CUDA: the copies are ordered on the stream before
the next optimizer step, so the snapshot is consistent) and goes on training; a
background thread waits for the copies and does the slow ``torch.save``. At most one
write is in flight: the next save, and the end of ``fit``, wait for it.
"""

from __future__ import annotations

import copy
import random
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import torch

from curation.core.errors import RunError
from curation.core.rundir import atomic_dir, write_json
from training.models import load_trainable_state

if TYPE_CHECKING:
    from training.loop import Job

Clock = Callable[[], float]


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


def _to_host(obj: Any) -> Any:
    """``obj`` with every tensor copied to CPU: a clone on CPU, an asynchronous copy into pinned memory from CUDA."""
    if isinstance(obj, torch.Tensor):
        if obj.device.type == "cpu":
            return obj.detach().clone()
        out = torch.empty(obj.shape, dtype=obj.dtype, pin_memory=True)
        return out.copy_(obj.detach(), non_blocking=True)
    if isinstance(obj, dict):
        return {k: _to_host(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_host(v) for v in obj)
    return copy.deepcopy(obj)


def snapshot(model: Any, optimizer: torch.optim.Optimizer, progress: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's content, copied off the live tensors (the optimizer mutates its state in place)."""
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    return _to_host({"model": trained, "optimizer": optimizer.state_dict(), "rng": _rng_state(), "progress": progress})


def write_checkpoint(job: Job, state: dict[str, Any]) -> None:
    """Write the checkpoint atomically: a killed write leaves the previous one intact."""
    with atomic_dir(job.checkpoint_dir) as tmp:
        torch.save(state, tmp / "state.pt")
        write_json(tmp / "meta.json", {"fingerprint": job.fingerprint, "step": state["progress"]["step"]})


def save_checkpoint(job: Job, model: Any, optimizer: torch.optim.Optimizer, progress: dict[str, Any]) -> None:
    """Snapshot and write on the calling thread (``Checkpoints`` does the write in the background)."""
    state = snapshot(model, optimizer, progress)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    write_checkpoint(job, state)


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


def _write_when_copied(job: Job, state: dict[str, Any], copied: torch.cuda.Event | None) -> float:
    """The background half of a save: wait for the device-to-host copies, then write. Returns its seconds."""
    started = time.perf_counter()
    if copied is not None:
        copied.synchronize()
    write_checkpoint(job, state)  # looked up at call time: tests wrap it to kill the process after a write
    return time.perf_counter() - started


class Checkpoints:
    """The checkpoint policy of one ``fit``: by wall-clock interval, at the end, and on SIGINT/SIGTERM.

    Use as a context manager around the loop: it installs the signal handlers (main
    thread only) and, on exit, restores them and waits for the last write.
    """

    def __init__(self, job: Job, *, clock: Clock) -> None:
        self.job, self.clock = job, clock
        self.every = job.cfg.checkpoint_minutes * 60  # seconds; 0: after every step
        self.last = clock()
        self.steps: list[int] = []  # steps saved, for metrics
        self.stall_seconds = 0.0  # the training thread's share: snapshot, and waiting for the previous write
        self.write_seconds = 0.0  # the background writes
        self.interrupted: int | None = None  # the signal received
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._pending: Future[float] | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Checkpoints:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore_signals()
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)

    def restore_signals(self) -> None:
        """Give SIGINT and SIGTERM back to their previous handlers (after the loop: evaluation stops as usual)."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.interrupted is not None:  # a second signal: the user insists, stop now
            previous = self._previous.get(signum)
            self.restore_signals()
            if callable(previous):
                previous(signum, frame)
            raise KeyboardInterrupt
        self.interrupted = signum

    def due(self) -> bool:
        return self.interrupted is not None or self.clock() - self.last >= self.every

    def save(self, model: Any, optimizer: torch.optim.Optimizer, progress: dict[str, Any]) -> None:
        """Snapshot now, write in the background (after the previous write, if one is in flight)."""
        started = time.perf_counter()
        self.wait()
        state = snapshot(model, optimizer, progress)
        copied = None
        if torch.cuda.is_available() and any(p.is_cuda for p in model.parameters()):
            copied = torch.cuda.Event()
            copied.record()
        self._pending = self._pool.submit(_write_when_copied, self.job, state, copied)
        self.steps.append(progress["step"])
        self.last = self.clock()
        self.stall_seconds += time.perf_counter() - started

    def wait(self) -> None:
        """Block until the write in flight, if any, is on disk; re-raise its error."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self.write_seconds += pending.result()

    def stop_if_interrupted(self, step: int, total: int) -> None:
        """After the interrupt's checkpoint: wait for it, then stop the run with a one-line error."""
        if self.interrupted is None:
            return
        self.wait()
        name = signal.Signals(self.interrupted).name
        raise RunError(f"interrupted by {name} at step {step} of {total}; the checkpoint is saved: rerun with `--resume` to continue")
