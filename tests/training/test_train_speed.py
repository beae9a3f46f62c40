"""The fast paths give the same numbers as the plain ones: vectorised collate, activation checkpointing, the CUDA attention."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.training.test_train_loop import setup
from training.data import IGNORE, Row, collate_rows, cpt_rows, pack
from training.loop import backward_step, fit
from training.stream import prefetch


def _reference_collate(rows: list[Row], pad_id: int) -> dict[str, list[list[Any]]]:
    """The per-token collate the vectorised one replaced."""
    width = max(len(r.ids) for r in rows)
    out: dict[str, list[list[Any]]] = {"input_ids": [], "position_ids": [], "targets": [], "weights": []}
    for r in rows:
        pad = width - len(r.ids)
        out["input_ids"].append(r.ids + [pad_id] * pad)
        out["position_ids"].append(r.positions + list(range(pad)))
        targets = [r.ids[t + 1] if r.trained[t + 1] and r.positions[t + 1] != 0 else IGNORE for t in range(len(r.ids) - 1)]
        out["targets"].append(targets + [IGNORE] * (pad + 1))
        weights = r.weights or [1.0] * len(r.ids)
        out["weights"].append([weights[t + 1] if x != IGNORE else 0.0 for t, x in enumerate(targets)] + [0.0] * (pad + 1))
    return out


def _random_row(rng: random.Random, *, weighted: bool) -> Row:
    examples = []
    for _ in range(rng.randint(1, 3)):
        n = rng.randint(1, 9)
        examples.append(
            Row(
                [rng.randrange(50) for _ in range(n)],
                [rng.random() < 0.7 for _ in range(n)],
                list(range(n)),
                [rng.random() for _ in range(n)] if weighted else None,
            )
        )
    return pack(examples, 100)[0]


@pytest.mark.parametrize("seed", range(20))
def test_vectorised_collate_equals_the_per_token_one(seed: int) -> None:
    rng = random.Random(seed)
    weighted = seed % 2 == 1
    rows = [_random_row(rng, weighted=weighted) for _ in range(rng.randint(1, 4))]
    batch, expected = collate_rows(rows, 0), _reference_collate(rows, 0)
    assert batch["input_ids"].tolist() == expected["input_ids"] and batch["targets"].tolist() == expected["targets"]
    packed = any(p == 0 for r in rows for p in r.positions[1:])
    assert ("position_ids" in batch) is packed and (not packed or batch["position_ids"].tolist() == expected["position_ids"])
    assert batch["target_index"].tolist() == [i for i, t in enumerate(t for row in expected["targets"] for t in row) if t != IGNORE]
    if weighted:
        torch.testing.assert_close(batch["weights"], torch.tensor(expected["weights"]))


def test_prefetch_hands_over_items_in_order_and_raises_the_producers_error() -> None:
    def items() -> Any:
        yield from (1, 2, 3)
        raise ValueError("collate failed")

    got = []
    with pytest.raises(ValueError, match="collate failed"):
        for x in prefetch(items()):  # type: ignore[arg-type]
            got.append(x)
    assert got == [1, 2, 3]


def test_activation_checkpointing_gives_the_same_gradient(lm_dir: Path, tmp_path: Path) -> None:
    from training.loop import speed_and_memory

    grads = []
    for on in (False, True):
        model, data, job = setup("sft", lm_dir, tmp_path, method="full", gradient_checkpointing=on, eval_fraction=0.0)
        model.train()
        assert speed_and_memory(model, job, torch.device("cpu"), lambda _m: None) is False  # compile: auto is off on CPU
        assert model.is_gradient_checkpointing is on
        backward_step(model, [collate_rows(data.train[:2], job.pad_id)], job, lambda b: b, contextlib.nullcontext)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-6, msg=name)


def test_evaluation_is_capped_and_can_be_skipped(lm_dir: Path, tmp_path: Path) -> None:
    model, data, job = setup("sft", lm_dir, tmp_path, packing=False, max_steps=1, eval_max_rows=3)
    assert len(data.eval) > 3
    assert fit(model, data, job)["eval_after"]["tokens"] == sum(int(sum(r.trained[1:])) for r in data.eval[:3])
    skipped = fit(model, data, job, run_eval=False)
    assert skipped["eval_before"] == {} and skipped["eval_after"] == {}


# ---------------------------------------------------------------------------- CUDA
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_packed_examples_do_not_attend_to_each_other_on_cuda_flex_attention(lm_dir: Path, tokenizer: Any) -> None:
    """The CUDA path: a FlexAttention document mask for the packed block, plain causal SDPA for the lone example."""
    from training.attention import attention_kwargs
    from training.models import causal_parts, load_model

    model = load_model(str(lm_dir), "cpt", labels=[], pad_id=tokenizer.pad_token_id).cuda().eval()
    backbone, _ = causal_parts(model)
    first, second = (cpt_rows(tokenizer, t, 64)[0] for t in ("the sky is blue. the snow is white.", "coal is black and plum is purple."))
    packed = {k: v.cuda() for k, v in collate_rows(pack([first, second], 128), tokenizer.pad_token_id).items()}
    alone = {k: v.cuda() for k, v in collate_rows([second], tokenizer.pad_token_id).items()}
    with torch.no_grad():
        kwargs = attention_kwargs(model, packed)
        assert model.config._attn_implementation == "flex_attention"
        hidden_packed = backbone(input_ids=packed["input_ids"], **kwargs, use_cache=False).last_hidden_state[0, len(first.ids) :]
        kwargs = attention_kwargs(model, alone)
        assert model.config._attn_implementation == "sdpa" and kwargs["position_ids"] is None
        hidden_alone = backbone(input_ids=alone["input_ids"], **kwargs, use_cache=False).last_hidden_state[0]
    torch.testing.assert_close(hidden_packed, hidden_alone, rtol=1e-3, atol=1e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_with_compile_and_flex_attention_learns(lm_dir: Path, tmp_path: Path) -> None:
    model, data, job = setup("sft", lm_dir, tmp_path, method="full", max_steps=10, compile=True)
    metrics = fit(model, data, job)
    assert metrics["device"] == "cuda" and metrics["compiled"] and metrics["eval_after"]["loss"] < metrics["eval_before"]["loss"]


@pytest.mark.slow
def test_gpu_check_dry_run_measures_every_line_on_cpu(lm_dir: Path, tmp_path: Path) -> None:
    """The GPU measurement script, on tiny shapes: it must not rot between the rare GPU sessions."""
    import json
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHON": sys.executable, "TOKENIZER_DIR": str(lm_dir), "OUT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        ["bash", "tests/benchmarks/gpu_check.sh", "--dry-run"], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0 and "!!" not in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    small = json.loads((tmp_path / "135m.json").read_text())["results"]
    assert {(r["impl"], r["method"]) for r in small} == {("ours", "full"), ("trainer", "full"), ("ours", "lora"), ("trainer", "lora")}
    ours = next(r for r in small if r["impl"] == "ours")
    assert set(ours["breakdown"]) == {"data", "forward_backward", "optimizer"} and ours["checkpoint"]["steps"] == [3]
    assert "vs trainer" in proc.stdout and (tmp_path / "1b.json").is_file()
