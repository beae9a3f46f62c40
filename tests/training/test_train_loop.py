"""The training loop on tiny models: every task learns, accumulation is exact, packing is isolated."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import torch

from curation.core.config import TrainConfig
from curation.core.errors import RunError
from tests.training.tiny import label_rows, pair_rows, qa_rows, text_rows
from training.data import IGNORE, Prepared, collate, collate_labelled, collate_rows, cpt_rows, pack, prepare
from training.loop import Job, backward_step, fit, get_lr, load_checkpoint, loss_step, save_checkpoint, units
from training.models import add_lora, load_model, load_tokenizer, trainable_state

ROWS = {"sft": qa_rows(48), "cpt": text_rows(40), "classify": label_rows(48), "dpo": pair_rows(32)}


def setup(task: Any, model_dir: Path, tmp_path: Path, *, frame: pl.DataFrame | None = None, **options: Any) -> tuple[Any, Prepared, Job]:
    """Model, data (``frame``, default the task's rows) and job for ``task`` exactly as training.api builds them."""
    cfg = TrainConfig(
        task=task, model=str(model_dir), **{"max_steps": 20, "batch_size": 4, "max_length": 64, "eval_fraction": 0.2, "lr": 3e-3, **options}
    )
    torch.manual_seed(cfg.seed)
    tokenizer = load_tokenizer(str(model_dir), task)
    data = prepare(
        pl.DataFrame(ROWS[task]) if frame is None else frame,
        task,
        tokenizer,
        max_length=cfg.max_length,
        eval_fraction=cfg.eval_fraction,
        seed=cfg.seed,
        packing=cfg.packing,
    )
    model = load_model(str(model_dir), task, labels=data.labels, pad_id=tokenizer.pad_token_id)
    if cfg.method == "lora":
        model = add_lora(model, task, r=cfg.lora_r, alpha=cfg.lora_alpha)
    job = Job(cfg=cfg, pad_id=tokenizer.pad_token_id, checkpoint_dir=tmp_path / "checkpoint", fingerprint="test", lora=cfg.method == "lora")
    return model, data, job


# Random tiny models need bolder settings than the defaults (tuned for pretrained models).
CASES = [
    ("sft", "lora", {"lr": 3e-3}),
    ("cpt", "full", {"lr": 3e-3}),
    ("classify", "lora", {"lr": 1e-2}),
    ("dpo", "lora", {"lr": 1e-2, "beta": 0.5, "max_steps": 30}),  # beta 1.0 at this lr overshoots on the held-out pairs
    ("dpo", "full", {"lr": 3e-3, "beta": 0.5, "max_steps": 30}),
]


@pytest.mark.slow
@pytest.mark.parametrize(("task", "method", "options"), CASES)
def test_loss_falls_for_every_task(
    task: str, method: str, options: dict[str, Any], lm_dir: Path, encoder_dir: Path, tmp_path: Path
) -> None:
    model, data, job = setup(task, encoder_dir if task == "classify" else lm_dir, tmp_path, method=method, **options)
    metrics = fit(model, data, job)
    losses = [p["loss"] for p in metrics["loss_curve"]]
    assert len(losses) == job.cfg.max_steps and all(math.isfinite(x) for x in losses)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert metrics["eval_after"]["loss"] < metrics["eval_before"]["loss"]
    if task == "dpo":
        assert metrics["eval_before"]["loss"] == pytest.approx(math.log(2), abs=1e-4)  # policy == reference before any update
        assert metrics["eval_after"]["reward_margin"] > 0
    if task == "classify":
        assert {"accuracy", "f1_macro"} <= set(metrics["eval_after"])
    if task in ("sft", "cpt"):
        assert metrics["eval_after"]["perplexity"] == pytest.approx(math.exp(metrics["eval_after"]["loss"]))


def _uneven_rows(n: int = 8) -> list[dict[str, str]]:
    """Responses from 1 to 15 words: a per-batch mean would weight their tokens very differently."""
    return [{"id": f"u{i}", "prompt": f"say {i}", "completion": " ".join(["the sky is blue"] * (1 + 2 * i))[: 4 + 8 * i]} for i in range(n)]


@pytest.mark.parametrize("weights", [None, [0.5, 3.0, 1.0, 0.25, 1.0, 1.0, 1.0, 1.0]], ids=["unweighted", "weighted"])
def test_gradient_accumulation_4x1_equals_1x4(lm_dir: Path, tmp_path: Path, weights: list[float] | None) -> None:
    """One step's gradient is the same however its rows are split into micro-batches (weighted: over the sum of weights)."""
    model, data, job = setup("sft", lm_dir, tmp_path, method="full", packing=False, eval_fraction=0.0)
    frame = pl.DataFrame(_uneven_rows())
    data = prepare(
        frame if weights is None else frame.with_columns(sample_weight=pl.Series(weights)),
        "sft",
        load_tokenizer(str(lm_dir), "sft"),
        max_length=64,
        eval_fraction=0.0,
        seed=0,
        packing=False,
    )
    rows = data.train[:4]
    assert len({sum(r.trained) for r in rows}) == 4  # really uneven
    grads = []
    for micro in ([collate_rows(rows, job.pad_id)], [collate_rows([r], job.pad_id) for r in rows]):
        assert all(("weights" in b) == (weights is not None) for b in micro)
        model.zero_grad()
        backward_step(model, micro, job, lambda b: b, contextlib.nullcontext)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("weighted", [False, True])
def test_accumulated_training_matches_a_big_batch(lm_dir: Path, tmp_path: Path, weighted: bool) -> None:
    """End to end through fit: 4x1 and 1x4 reach the same weights, with sample weights too."""
    frame = pl.DataFrame(ROWS["sft"])
    if weighted:
        frame = frame.with_columns(sample_weight=pl.Series([0.5, 1.0, 2.5] * 16))
    after = []
    for batch_size, accum in ((4, 1), (1, 4)):
        model, data, job = setup(
            "sft", lm_dir, tmp_path, frame=frame, method="full", packing=False, max_steps=3, batch_size=batch_size, grad_accum=accum,
            eval_fraction=0.0,
        )  # fmt: skip
        assert data.stats["balance"]["weighted"] is weighted
        fit(model, data, job)
        after.append(trainable_state(model))
    for name, value in after[0].items():
        torch.testing.assert_close(after[1][name], value, rtol=1e-4, atol=1e-5, msg=name)


def test_token_level_normalisation_weights_long_responses_by_their_tokens(lm_dir: Path, tmp_path: Path) -> None:
    """Loss of a step = mean over its target tokens, not a mean of per-batch means."""
    model, data, job = setup("sft", lm_dir, tmp_path, method="full", packing=False, eval_fraction=0.0)
    model.eval()
    rows = data.train[:3]
    with torch.no_grad():
        whole, _ = loss_step(model, collate_rows(rows, job.pad_id), job)
        parts = [loss_step(model, collate_rows([r], job.pad_id), job)[0] for r in rows]
    torch.testing.assert_close(whole, sum(parts), rtol=1e-5, atol=1e-5)  # summed per token: splitting changes nothing


# ---------------------------------------------------------------------------- sample weights
def _weighted(task: str, weights: list[float]) -> pl.DataFrame:
    rows = pl.DataFrame(ROWS[task])
    return rows.with_columns(sample_weight=pl.Series((weights * rows.height)[: rows.height]))


def test_weighted_classify_loss_is_the_weighted_mean_of_the_row_losses(encoder_dir: Path, tmp_path: Path) -> None:
    weights = [0.5, 2.0, 1.0, 3.0]
    model, data, job = setup("classify", encoder_dir, tmp_path, frame=_weighted("classify", weights), method="full", eval_fraction=0.0)
    model.eval()  # no dropout: the batch and the rows alone see the same network
    with torch.no_grad():
        model.classifier.weight.mul_(50)  # the new head starts near uniform: spread the row losses apart
    items = data.train[:4]
    assert [x.weight for x in items] == weights
    batch = collate_labelled(items, job.pad_id)
    with torch.no_grad():
        loss_sum, _ = loss_step(model, batch, job)
        alone = [model(input_ids=torch.tensor([x.ids])).logits[0] for x in items]  # (classes,) each, no padding
    nll = [-float(torch.log_softmax(logits, -1)[x.label]) for logits, x in zip(alone, items, strict=True)]
    by_hand = sum(w * n for w, n in zip(weights, nll, strict=True)) / sum(weights)
    assert units("classify", batch) == sum(weights)
    assert float(loss_sum) / units("classify", batch) == pytest.approx(by_hand, rel=1e-5)
    assert by_hand != pytest.approx(sum(nll) / len(nll), rel=1e-2)  # the weights matter on this batch


@pytest.mark.parametrize("task", ["sft", "cpt"])
def test_weighted_token_loss_of_a_packed_block_matches_a_hand_computation(task: str, lm_dir: Path, tmp_path: Path) -> None:
    """Each target token counts its own example's weight; the mean is over the sum of the tokens' weights."""
    weights = [0.5, 2.0, 3.0]
    frame = _weighted(task, weights)[:3]
    model, packed, job = setup(task, lm_dir, tmp_path, frame=frame, method="full", eval_fraction=0.0, max_length=256)
    assert len(packed.train) == 1  # the three examples share one block
    tokenizer = load_tokenizer(str(lm_dir), task)
    alone = prepare(frame, task, tokenizer, max_length=256, eval_fraction=0.0, seed=0, packing=False, balance_weights=False).train
    batch = collate_rows(packed.train, job.pad_id)
    with torch.no_grad():
        loss_sum, _ = loss_step(model, batch, job)
        logps = [torch.log_softmax(model(input_ids=torch.tensor([r.ids])).logits[0], -1) for r in alone]  # (T, vocab) each
    total = weight_sum = 0.0
    for row, lp, w in zip(alone, logps, weights, strict=True):
        targets = [t for t in range(1, len(row.ids)) if row.trained[t]]  # token t is predicted at position t - 1
        total += w * -sum(float(lp[t - 1, row.ids[t]]) for t in targets)
        weight_sum += w * len(targets)
    assert units(task, batch) == pytest.approx(weight_sum)
    assert float(loss_sum) / units(task, batch) == pytest.approx(total / weight_sum, rel=1e-5)


def test_weighted_dpo_loss_is_the_weighted_mean_of_the_pair_losses(lm_dir: Path, tmp_path: Path) -> None:
    weights = [0.5, 2.0, 1.0, 3.0]
    model, data, job = setup("dpo", lm_dir, tmp_path, frame=_weighted("dpo", weights), eval_fraction=0.0, beta=5.0)
    with torch.no_grad():  # move the adapters: the policy leaves its reference (the base model) and the pair losses differ
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.add_(0.05 * torch.randn_like(p))
    pairs = data.train[:4]
    batch = collate("dpo", pairs, job.pad_id)
    unweighted = [dataclasses.replace(x, weight=None) for x in pairs]
    with torch.no_grad():
        loss_sum, _ = loss_step(model, batch, job)
        per_pair = [float(loss_step(model, collate("dpo", [x], job.pad_id), job)[0]) for x in unweighted]
    by_hand = sum(w * x for w, x in zip(weights, per_pair, strict=True)) / sum(weights)
    assert float(loss_sum) / units("dpo", batch) == pytest.approx(by_hand, rel=1e-5)
    assert by_hand != pytest.approx(sum(per_pair) / 4, rel=1e-2)


@pytest.mark.parametrize("task", ["sft", "classify", "dpo"])
def test_all_null_balance_columns_train_exactly_as_without_them(task: str, lm_dir: Path, encoder_dir: Path, tmp_path: Path) -> None:
    curves = []
    for frame in (
        pl.DataFrame(ROWS[task]),
        pl.DataFrame(ROWS[task]).with_columns(sample_weight=pl.lit(None, pl.Float64), repeat=pl.lit(None, pl.Int64)),
    ):
        model, data, job = setup(task, encoder_dir if task == "classify" else lm_dir, tmp_path, frame=frame, max_steps=3)
        metrics = fit(model, data, job)
        curves.append(([p["loss"] for p in metrics["loss_curve"]], metrics["eval_after"]))
    assert curves[0] == curves[1]


def test_weights_of_one_give_exactly_the_unweighted_token_loss(lm_dir: Path, tmp_path: Path) -> None:
    """The weighted normalisation reduces to the token count: same curve, bit for bit."""
    curves = []
    for frame in (pl.DataFrame(ROWS["sft"]), _weighted("sft", [1.0])):
        model, data, job = setup("sft", lm_dir, tmp_path, frame=frame, max_steps=3)
        curves.append([p["loss"] for p in fit(model, data, job)["loss_curve"]])
        assert data.stats["balance"]["weighted"] is (frame.width > 3)
    assert curves[0] == curves[1]


def test_an_all_masked_batch_is_an_error(lm_dir: Path, tmp_path: Path) -> None:
    model, data, job = setup("sft", lm_dir, tmp_path, packing=False)
    batch = collate_rows([dataclasses.replace(r, trained=[False] * len(r.ids)) for r in data.train[:2]], job.pad_id)
    assert (batch["targets"] == IGNORE).all()
    with pytest.raises(RunError, match="selects no tokens"):
        loss_step(model, batch, job)


def test_packed_examples_do_not_attend_to_each_other(lm_dir: Path, tokenizer: Any) -> None:
    """Logits of a document packed after another equal its logits alone (block-diagonal mask)."""
    model = load_model(str(lm_dir), "cpt", labels=[], pad_id=tokenizer.pad_token_id).eval()
    first, second = (cpt_rows(tokenizer, t, 64)[0] for t in ("the sky is blue. the snow is white.", "coal is black and plum is purple."))
    packed = collate_rows(pack([first, second], 128), tokenizer.pad_token_id)
    alone = collate_rows([second], tokenizer.pad_token_id)
    assert "position_ids" in packed and "position_ids" not in alone
    with torch.no_grad():
        logits_packed = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False).logits[
            0, len(first.ids) :
        ]
        logits_alone = model(input_ids=alone["input_ids"], use_cache=False).logits[0]  # one example: no position_ids, plain causal
        leaky = model(input_ids=packed["input_ids"], use_cache=False).logits[0, len(first.ids) :]  # plain causal mask, for contrast
    torch.testing.assert_close(logits_packed, logits_alone, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(leaky, logits_alone, atol=1e-3)


def test_schedule_warms_up_then_decays_by_cosine() -> None:
    lrs = [get_lr(s, 100, 1.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.2) and lrs[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(lrs[4:]))
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_cuda_step_uses_bf16_autocast_and_fused_adamw(lm_dir: Path, tmp_path: Path) -> None:
    model, data, job = setup("sft", lm_dir, tmp_path, method="full", max_steps=5)
    metrics = fit(model, data, job)
    assert metrics["device"] == "cuda" and metrics["eval_after"]["loss"] < metrics["eval_before"]["loss"]


def test_a_checkpoint_from_another_job_is_refused(lm_dir: Path, tmp_path: Path) -> None:
    model, _, job = setup("sft", lm_dir, tmp_path)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    save_checkpoint(job, model, optimizer, {"step": 3, "cursor": 12})
    assert load_checkpoint(job, model, optimizer) == {"step": 3, "cursor": 12}
    other = dataclasses.replace(job, fingerprint="another config")
    with pytest.raises(RunError, match="belongs to another config"):
        load_checkpoint(other, model, optimizer)
