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
from tiny import label_rows, pair_rows, qa_rows, text_rows

from curation.config import TrainConfig
from curation.errors import RunError
from training.data import IGNORE, Prepared, collate_rows, cpt_rows, pack, prepare
from training.loop import Job, backward_step, fit, get_lr, load_checkpoint, loss_step, save_checkpoint
from training.models import add_lora, load_model, load_tokenizer, trainable_state

ROWS = {"sft": qa_rows(48), "cpt": text_rows(40), "classify": label_rows(48), "dpo": pair_rows(32)}


def setup(task: Any, model_dir: Path, tmp_path: Path, **options: Any) -> tuple[Any, Prepared, Job]:
    """Model, data and job for ``task`` exactly as training.api builds them."""
    cfg = TrainConfig(
        task=task, model=str(model_dir), **{"max_steps": 20, "batch_size": 4, "max_length": 64, "eval_fraction": 0.2, "lr": 3e-3, **options}
    )
    torch.manual_seed(cfg.seed)
    tokenizer = load_tokenizer(str(model_dir), task)
    data = prepare(
        pl.DataFrame(ROWS[task]),
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
    ("dpo", "lora", {"lr": 1e-2, "beta": 1.0, "max_steps": 30}),
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


def test_gradient_accumulation_4x1_equals_1x4(lm_dir: Path, tmp_path: Path) -> None:
    """One step's gradient is the same however its rows are split into micro-batches."""
    model, data, job = setup("sft", lm_dir, tmp_path, method="full", packing=False, eval_fraction=0.0)
    data = prepare(
        pl.DataFrame(_uneven_rows()), "sft", load_tokenizer(str(lm_dir), "sft"), max_length=64, eval_fraction=0.0, seed=0, packing=False
    )
    rows = data.train[:4]
    assert len({sum(r.trained) for r in rows}) == 4  # really uneven
    grads = []
    for micro in ([collate_rows(rows, job.pad_id)], [collate_rows([r], job.pad_id) for r in rows]):
        model.zero_grad()
        backward_step(model, micro, job, lambda b: b, contextlib.nullcontext)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_accumulated_training_matches_a_big_batch(lm_dir: Path, tmp_path: Path) -> None:
    """End to end through fit: 4x1 and 1x4 reach the same weights."""
    after = []
    for batch_size, accum in ((4, 1), (1, 4)):
        model, data, job = setup(
            "sft", lm_dir, tmp_path, method="full", packing=False, max_steps=3, batch_size=batch_size, grad_accum=accum, eval_fraction=0.0
        )
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


def test_an_all_masked_batch_is_an_error(lm_dir: Path, tmp_path: Path) -> None:
    model, data, job = setup("sft", lm_dir, tmp_path, packing=False)
    batch = collate_rows(data.train[:2], job.pad_id)
    batch["targets"] = torch.full_like(batch["targets"], IGNORE)
    with pytest.raises(RunError, match="selects no tokens"):
        loss_step(model, batch, job)


def test_packed_examples_do_not_attend_to_each_other(lm_dir: Path, tokenizer: Any) -> None:
    """Logits of a document packed after another equal its logits alone (block-diagonal mask)."""
    model = load_model(str(lm_dir), "cpt", labels=[], pad_id=tokenizer.pad_token_id).eval()
    first, second = (cpt_rows(tokenizer, t, 64)[0] for t in ("the sky is blue. the snow is white.", "coal is black and plum is purple."))
    packed = collate_rows(pack([first, second], 128), tokenizer.pad_token_id)
    alone = collate_rows([second], tokenizer.pad_token_id)
    with torch.no_grad():
        logits_packed = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False).logits[
            0, len(first.ids) :
        ]
        logits_alone = model(input_ids=alone["input_ids"], position_ids=alone["position_ids"], use_cache=False).logits[0]
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
