"""Checkpoints by wall-clock interval, at the end and on interrupt; the copy is consistent and resume stays exact."""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from curation.core.errors import RunError
from tests.training.test_train_loop import setup
from training.checkpoint import snapshot
from training.models import trainable_state


class _Steps:
    """A progress factory whose training bar counts the steps done: the test's clock reads it."""

    def __init__(self, *, interrupt_at: int | None = None) -> None:
        self.done, self.interrupt_at = 0, interrupt_at

    @contextlib.contextmanager
    def __call__(self, description: str, total: int | None) -> Iterator[Any]:
        yield self if description.startswith("training") else _Quiet()

    def advance(self, n: int = 1) -> None:
        self.done += n
        if n == 1 and self.done == self.interrupt_at:
            signal.raise_signal(signal.SIGINT)  # as Ctrl-C in the middle of a step


class _Quiet:
    def advance(self, n: int = 1) -> None:
        return None


def test_a_200_step_run_at_defaults_checkpoints_by_wall_clock_not_by_share_of_steps(lm_dir: Path, tmp_path: Path) -> None:
    """Steps of 20 s each and the default 30-minute interval: saves at steps 90 and 180, and a final one (not every 40 steps)."""
    from training.loop import fit

    model, data, job = setup("sft", lm_dir, tmp_path, max_steps=200, batch_size=2, max_length=32, eval_fraction=0.0)
    assert job.cfg.checkpoint_minutes == 30
    bars = _Steps()
    metrics = fit(model, data, job, progress=bars, clock=lambda: 20.0 * bars.done)
    assert metrics["checkpoints"]["steps"] == [90, 180, 200]
    assert json.loads((job.checkpoint_dir / "meta.json").read_text())["step"] == 200  # the final save, in case evaluation fails
    assert len(metrics["loss_curve"]) == 200 and all(isinstance(p["loss"], float) for p in metrics["loss_curve"])


def test_interrupt_saves_stops_in_one_line_and_resume_reaches_the_uninterrupted_weights(lm_dir: Path, tmp_path: Path) -> None:
    from training.loop import fit

    model, data, job = setup("sft", lm_dir, tmp_path / "straight", method="full", max_steps=8, eval_fraction=0.0)
    straight = fit(model, data, job)
    expected = trainable_state(model)

    model, data, job = setup("sft", lm_dir, tmp_path / "stopped", method="full", max_steps=8, eval_fraction=0.0)
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(RunError, match=r"interrupted by SIGINT at step 3 of 8; .*`--resume`"):
        fit(model, data, job, progress=_Steps(interrupt_at=3))
    assert signal.getsignal(signal.SIGINT) is previous  # handlers given back
    assert json.loads((job.checkpoint_dir / "meta.json").read_text())["step"] == 3

    model, data, job = setup("sft", lm_dir, tmp_path / "stopped", method="full", max_steps=8, eval_fraction=0.0)
    resumed = fit(model, data, job, resume=True)
    assert resumed["resumed_from_step"] == 3
    assert [p["loss"] for p in resumed["loss_curve"]] == [p["loss"] for p in straight["loss_curve"]]
    after = trainable_state(model)
    assert all(torch.equal(after[k], v) for k, v in expected.items())


def test_the_snapshot_does_not_move_when_training_goes_on(lm_dir: Path, tmp_path: Path) -> None:
    """The background write must see the state of the step it was taken at, not a later one."""
    model, _, _ = setup("sft", lm_dir, tmp_path, method="full")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=0.1)
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer.step()
    progress = {"step": 1, "curve": [{"step": 1}]}
    state = snapshot(model, optimizer, progress)
    frozen = {k: v.clone() for k, v in state["model"].items()}
    moments = [s["exp_avg"].clone() for s in state["optimizer"]["state"].values()]
    optimizer.step()  # mutates parameters and moments in place
    progress["curve"].append({"step": 2})
    assert all(torch.equal(state["model"][k], v) for k, v in frozen.items())
    assert all(torch.equal(s["exp_avg"], m) for s, m in zip(state["optimizer"]["state"].values(), moments, strict=True))
    assert state["progress"]["curve"] == [{"step": 1}]
