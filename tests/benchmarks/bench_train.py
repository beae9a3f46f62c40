"""Training throughput: our loop vs a plain ``transformers.Trainer``, same model, data and batch.

For each method (full, LoRA) both implementations train SmolLM2-135M for the same number
of steps on the same packed SFT blocks (the demo's support answers, ``--seq`` tokens per
block, prompts masked). Each run is a fresh subprocess, so peak memory is its own.
Reported: tokens/s (all block positions, after ``--warmup`` steps), MFU (6N FLOPs per
token plus attention, 12·layers·hidden·seq, against the GPU's bf16 dense peak) and peak
memory (CUDA allocator peak, or peak RSS on CPU).

Without CUDA the script still runs, on a tiny 2-layer Llama (hidden 64) with short blocks,
and says so: those numbers check the harness, not the speed claim.

    .venv/bin/python -m tests.benchmarks.bench_train                # defaults per device
    .venv/bin/python -m tests.benchmarks.bench_train --steps 30 --batch-size 8 --seq 2048
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import torch

from curation.core.config import TrainConfig
from training.data import Prepared, Row, collate_rows, conversations, pack, sft_row
from training.loop import Job, fit
from training.models import EMBEDDED_LM, add_lora, load_model, load_tokenizer

BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12, "4090": 165e12}  # dense, FLOP/s


def gpu_peak() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in BF16_PEAK.items() if k in name), None)


def blocks(tokenizer: Any, seq: int, count: int) -> list[Row]:
    """``count`` packed SFT blocks of exactly ``seq`` tokens (the tail padded as its own untrained segment)."""
    from curation.demo import instruction_rows

    parsed = []
    for line in instruction_rows(count * seq // 60 + 50, seed=3):
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("prompt"), str) and isinstance(row.get("completion"), str):
            parsed.append({"prompt": row["prompt"], "completion": row["completion"]})
    rows = [sft_row(tokenizer, msgs, seq)[0] for msgs in conversations(pl.DataFrame(parsed))]
    packed = pack(rows, seq)[:count]
    if len(packed) < count:
        raise SystemExit(f"only {len(packed)} blocks of {seq} tokens from the demo corpus; lower --steps or --batch-size")
    pad = tokenizer.pad_token_id
    return [
        Row(b.ids + [pad] * (seq - len(b.ids)), b.trained + [False] * (seq - len(b.ids)), b.positions + list(range(seq - len(b.ids))))
        for b in packed
    ]


def tiny_model_dir(tokenizer: Any) -> str:
    """A 2-layer Llama with the SmolLM2 tokenizer, for a CPU run of the harness."""
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path("/tmp/tuneprep-bench-tiny-llama")
    if not (out / "config.json").is_file():
        torch.manual_seed(0)
        cfg = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=4096,
            tie_word_embeddings=True,
        )
        LlamaForCausalLM(cfg).save_pretrained(out)
        tokenizer.save_pretrained(out)
    return str(out)


def build(model_name: str, method: str, pad_id: int) -> Any:
    model = load_model(model_name, "sft", labels=[], pad_id=pad_id)
    return add_lora(model, "sft", r=16, alpha=32) if method == "lora" else model


def run_ours(model: Any, data: list[Row], args: argparse.Namespace, method: str, pad_id: int) -> list[float]:
    options = {"task": "sft", "method": method, "model": "bench", "max_steps": args.steps, "lr": 1e-4, "batch_size": args.batch_size}
    cfg = TrainConfig.model_validate({**options, "max_length": args.seq, "eval_fraction": 0.0, "compile": args.compile})
    job = Job(cfg=cfg, pad_id=pad_id, checkpoint_dir=Path("/tmp/tuneprep-bench-ckpt"), fingerprint="bench", lora=method == "lora")
    metrics = fit(model, Prepared("sft", data, []), job)
    return [p["seconds"] for p in metrics["loss_curve"]]


def run_baseline(model: Any, data: list[Row], args: argparse.Namespace, pad_id: int) -> list[float]:
    """A plain Trainer: bf16 on CUDA, HF labels (unshifted), causal attention over each whole block."""
    from transformers import Trainer, TrainerCallback, TrainingArguments, default_data_collator

    examples = []
    for row in data:
        batch = collate_rows([row], pad_id)
        labels = torch.cat([torch.tensor([-100]), batch["targets"][0, :-1]])
        examples.append({"input_ids": batch["input_ids"][0], "labels": labels, "attention_mask": torch.ones(args.seq, dtype=torch.long)})
    stamps: list[float] = []

    class Clock(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, *_: Any, **__: Any) -> None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

    cuda = torch.cuda.is_available()
    targs = TrainingArguments(
        output_dir="/tmp/tuneprep-bench-trainer", per_device_train_batch_size=args.batch_size, max_steps=args.steps, learning_rate=1e-4, lr_scheduler_type="cosine",
        warmup_steps=1, bf16=cuda, use_cpu=not cuda, save_strategy="no", report_to="none", logging_steps=10_000, dataloader_num_workers=0, disable_tqdm=True,
    )  # fmt: skip
    trainer = Trainer(model=model, args=targs, train_dataset=examples, data_collator=default_data_collator, callbacks=[Clock()])
    start = time.perf_counter()
    trainer.train()
    return [s - start for s in stamps]


def one(args: argparse.Namespace) -> dict[str, Any]:
    """One (implementation, method) run; printed as JSON for the parent."""
    impl, method = args.one.split(":")
    name = args.model or (EMBEDDED_LM if torch.cuda.is_available() else None)
    tokenizer = load_tokenizer(EMBEDDED_LM if name is None else name, "sft")
    name = name or tiny_model_dir(tokenizer)
    data = blocks(tokenizer, args.seq, args.steps * args.batch_size)
    torch.manual_seed(0)
    model = build(name, method, tokenizer.pad_token_id)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    seconds = (
        run_ours(model, data, args, method, tokenizer.pad_token_id)
        if impl == "ours"
        else run_baseline(model, data, args, tokenizer.pad_token_id)
    )
    timed = seconds[-1] - seconds[args.warmup - 1] if args.warmup else seconds[-1]
    tokens = (args.steps - args.warmup) * args.batch_size * args.seq
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    n_params, cfg = sum(p.numel() for p in base.parameters()), base.config
    flops_per_token = 6 * n_params + 12 * cfg.num_hidden_layers * cfg.hidden_size * args.seq
    peak_mem = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "impl": impl,
        "method": method,
        "tokens_per_s": tokens / timed,
        "flops_per_token": flops_per_token,
        "peak_mem_gb": peak_mem / 1e9,
        "params": n_params,
    }


def main() -> None:
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30 if cuda else 20)
    p.add_argument(
        "--warmup", type=int, default=5 if cuda else 3, help="first steps left out of the timing (compilation, allocator warm-up)"
    )
    p.add_argument("--batch-size", type=int, default=8 if cuda else 2)
    p.add_argument("--seq", type=int, default=2048 if cuda else 256)
    p.add_argument("--model", default=None, help="model id or directory (default: SmolLM2-135M on CUDA, a tiny Llama on CPU)")
    p.add_argument("--methods", default="full,lora")
    p.add_argument("--compile", action="store_true", help="torch.compile our backbone (CUDA)")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args)))
        return
    device = torch.cuda.get_device_name() if cuda else "CPU"
    if not cuda:
        print(
            "no CUDA device: running the harness on CPU with a tiny 2-layer Llama (hidden 64); speed ratios here say nothing about GPUs",
            flush=True,
        )
    results = []
    for method in args.methods.split(","):
        for impl in ("ours", "trainer"):
            cmd = [sys.executable, __file__, "--one", f"{impl}:{method}", *sys.argv[1:]]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if out.returncode:
                raise SystemExit(f"{impl}:{method} failed:\n{out.stderr[-3000:]}")
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print_table(results, device, gpu_peak(), args)


def print_table(results: list[dict[str, Any]], device: str, peak: float | None, args: argparse.Namespace) -> None:
    print(
        f"\n{device}; {args.steps} steps ({args.warmup} warm-up not timed), batch {args.batch_size} x {args.seq} tokens, packed SFT blocks"
    )
    print(f"{'method':6} {'impl':8} {'tokens/s':>10} {'MFU':>7} {'peak mem GB':>12} {'vs trainer':>11}")
    by = {(r["method"], r["impl"]): r for r in results}
    for r in results:
        mfu = f"{r['tokens_per_s'] * r['flops_per_token'] / peak:.1%}" if peak else "n/a"
        ratio = r["tokens_per_s"] / by[(r["method"], "trainer")]["tokens_per_s"]
        print(f"{r['method']:6} {r['impl']:8} {r['tokens_per_s']:>10.0f} {mfu:>7} {r['peak_mem_gb']:>12.2f} {ratio:>10.2f}x")


if __name__ == "__main__":
    main()
