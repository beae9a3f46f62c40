"""Training throughput: our loop vs ``transformers.Trainer`` (and TRL's ``SFTTrainer`` with packing), same model, data and batch.

Models are random-init from a config of a real shape (``--shape``; speed does not depend
on the weights, and nothing is downloaded), with the SmolLM2 tokenizer (the embedded
model's, or ``--tokenizer DIR``, written once by ``--export-tokenizer DIR`` where the
embedded package is installed). The data: synthetic prompt/completion examples (random
ids, 20-200 prompt and 20-400 completion tokens), packed into blocks of ``--seq`` tokens
for ours and the Trainer (prompts masked), handed unpacked to TRL, which packs them itself.

Each (implementation, method) run is a fresh subprocess, so its peak memory is its own.
Reported per run: tokens/s (all block positions, after ``--warmup`` steps, checkpoint
excluded), MFU against the GPU's spec bf16 dense peak and against a measured bf16 matmul
peak (FLOPs per token: 6N for full fine-tuning, 4N for LoRA where frozen weights get no
weight gradient, plus 12·layers·hidden·seq for attention), peak memory, and for ours a
breakdown of a step: data (collate, copy to device), forward+backward, optimizer, and
the checkpoint (training-thread stall and background write of the final save).

    .venv/bin/python -m tests.benchmarks.bench_train --shape 135m                         # CPU: shorter blocks, fewer steps
    .venv/bin/python -m tests.benchmarks.bench_train --shape 1b --methods full --batch-size 8 --seq 2048
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from curation.core.config import TrainConfig
from training.data import Prepared, Row, pack
from training.loop import Job, autocast_for, backward_step, fit
from training.models import EMBEDDED_LM, add_lora, load_tokenizer
from training.stream import steps as step_stream

BF16_PEAK = {"H100": 989e12, "H200": 989e12, "B200": 2250e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12, "4090": 165e12}
SHAPES: dict[str, dict[str, Any]] = {  # LlamaConfig fields; vocabulary from the tokenizer
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": True},
    "135m": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "tie_word_embeddings": True},
    "1b": {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32, "num_key_value_heads": 4, "tie_word_embeddings": False},
    "3b": {"hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 28, "num_attention_heads": 24, "num_key_value_heads": 8, "tie_word_embeddings": True},
}  # fmt: skip


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def spec_peak() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in BF16_PEAK.items() if k in name), None)


def measured_peak() -> float:
    """FLOP/s of a large matmul: bf16 on CUDA, fp32 on CPU (the dtype each device trains in)."""
    cuda = torch.cuda.is_available()
    n, dtype = (8192, torch.bfloat16) if cuda else (1024, torch.float32)
    a, b = torch.randn(n, n, device=device(), dtype=dtype), torch.randn(n, n, device=device(), dtype=dtype)
    for _ in range(3):
        a @ b
    reps = 50 if cuda else 5
    sync()
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync()
    return 2 * n**3 * reps / (time.perf_counter() - start)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------- model and data
def tokenizer_for(args: argparse.Namespace) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(args.tokenizer) if args.tokenizer else load_tokenizer(EMBEDDED_LM, "sft")


def build(shape: str, method: str, tokenizer: Any) -> Any:
    """A random-init Llama of ``shape``, float32 master weights (bf16 autocast on CUDA), built on the device (fast init)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=len(tokenizer), max_position_embeddings=8192, rope_theta=100_000.0, pad_token_id=tokenizer.pad_token_id, **SHAPES[shape]
    )
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with device():
        model = LlamaForCausalLM(cfg)
    return add_lora(model, "sft", r=16, alpha=32) if method == "lora" else model


def examples(vocab: int, n_tokens: int, seq: int, seed: int = 3) -> list[Row]:
    """Synthetic prompt/completion rows totalling at least ``n_tokens``, none over ``seq`` (ids drawn above the special tokens)."""
    rng, rows, total = random.Random(seed), [], 0
    while total < n_tokens:
        prompt = min(rng.randint(20, 200), seq // 2)
        completion = min(rng.randint(20, 400), seq - prompt)
        ids = [rng.randrange(100, vocab) for _ in range(prompt + completion)]
        rows.append(Row(ids, [False] * prompt + [True] * completion, list(range(len(ids)))))
        total += len(ids)
    return rows


def blocks(rows: list[Row], seq: int, count: int, pad: int) -> list[Row]:
    """``count`` packed blocks of exactly ``seq`` tokens, the tail padded as its own untrained segment."""
    packed = pack(rows, seq)[:count]
    assert len(packed) == count, "not enough synthetic rows"
    return [
        Row(b.ids + [pad] * (seq - len(b.ids)), b.trained + [False] * (seq - len(b.ids)), b.positions + list(range(seq - len(b.ids))))
        for b in packed
    ]


# ---------------------------------------------------------------------------- implementations
def run_ours(model: Any, data: list[Row], args: argparse.Namespace, method: str, pad_id: int) -> tuple[list[float], dict[str, Any]]:
    """``fit`` as a user runs it (its final checkpoint included), then an instrumented few steps for the breakdown."""
    options = {"task": "sft", "method": method, "model": "bench", "max_steps": args.steps, "lr": 1e-4, "batch_size": args.batch_size}
    cfg = TrainConfig.model_validate({**options, "max_length": args.seq, "eval_fraction": 0.0, "compile": args.compile})
    out = Path(f"/tmp/tuneprep-bench-{method}")
    job = Job(cfg=cfg, pad_id=pad_id, checkpoint_dir=out / "checkpoint", fingerprint="bench", lora=method == "lora")
    metrics = fit(model, Prepared("sft", data, []), job)
    extra = {"checkpoint": metrics["checkpoints"], "compiled": metrics["compiled"], "breakdown": breakdown(model, data, job)}
    return [p["seconds"] for p in metrics["loss_curve"]], extra


def breakdown(model: Any, data: list[Row], job: Job, n: int = 3) -> dict[str, float]:
    """Seconds per step of each part of ``fit``'s step, synchronised between parts (so the sum exceeds an overlapped step)."""
    dev, cfg = device(), job.cfg
    autocast = autocast_for(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-6, fused=dev.type == "cuda")
    parts = {"data": 0.0, "forward_backward": 0.0, "optimizer": 0.0}
    stream = step_stream(
        Prepared("sft", data, []), "sft", batch_size=cfg.batch_size, grad_accum=1, seed=1, pad_id=job.pad_id, cursor=0, count=n, pin=dev.type == "cuda"
    )  # fmt: skip
    for _ in range(n):
        sync()
        start = time.perf_counter()
        step = next(stream)
        micro = [{k: v.to(dev, non_blocking=True) for k, v in b.items()} for b in step.micro]
        sync()
        parts["data"] += time.perf_counter() - start
        start = time.perf_counter()
        backward_step(model, micro, job, lambda b: b, autocast)
        sync()
        parts["forward_backward"] += time.perf_counter() - start
        start = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        parts["optimizer"] += time.perf_counter() - start
    return {k: v / n for k, v in parts.items()}


class _Stamps:
    """A Trainer callback recording when each step ends (synchronised)."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        stamps: list[float] = []

        class Clock(TrainerCallback):  # type: ignore[misc]
            def on_step_end(self, *_: Any, **__: Any) -> None:
                sync()
                stamps.append(time.perf_counter())

        self.stamps, self.callback = stamps, Clock()


def _hf_args(args: argparse.Namespace, name: str) -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    return {
        "output_dir": f"/tmp/tuneprep-bench-{name}", "per_device_train_batch_size": args.batch_size, "max_steps": args.steps, "learning_rate": 1e-4,
        "lr_scheduler_type": "cosine", "warmup_steps": 1, "bf16": cuda, "use_cpu": not cuda, "save_strategy": "no", "report_to": "none",
        "logging_steps": 10_000, "dataloader_num_workers": 0, "disable_tqdm": True,
    }  # fmt: skip


def run_trainer(model: Any, data: list[Row], args: argparse.Namespace, pad_id: int) -> tuple[list[float], dict[str, Any]]:
    """A plain Trainer: bf16 on CUDA, HF labels (unshifted), causal attention over each whole block (no document mask)."""
    from transformers import Trainer, TrainingArguments, default_data_collator

    from training.data import collate_rows

    rows = []
    for row in data:
        batch = collate_rows([row], pad_id)
        labels = torch.cat([torch.tensor([-100]), batch["targets"][0, :-1]])
        rows.append({"input_ids": batch["input_ids"][0], "labels": labels, "attention_mask": torch.ones(args.seq, dtype=torch.long)})
    clock = _Stamps()
    trainer = Trainer(
        model=model,
        args=TrainingArguments(**_hf_args(args, "trainer")),
        train_dataset=rows,
        data_collator=default_data_collator,
        callbacks=[clock.callback],
    )
    start = time.perf_counter()
    trainer.train()
    return [s - start for s in clock.stamps], {}


def run_trl(model: Any, rows: list[Row], args: argparse.Namespace, tokenizer: Any) -> tuple[list[float], dict[str, Any]]:
    """TRL's SFTTrainer, packing the same examples itself (completion-only loss)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    dataset = Dataset.from_list([{"input_ids": r.ids, "completion_mask": [int(t) for t in r.trained]} for r in rows])
    sft = SFTConfig(**_hf_args(args, "trl"), max_length=args.seq, packing=True, completion_only_loss=True, dataset_num_proc=None)
    clock = _Stamps()
    trainer = SFTTrainer(model=model, args=sft, train_dataset=dataset, processing_class=tokenizer, callbacks=[clock.callback])
    start = time.perf_counter()
    trainer.train()
    return [s - start for s in clock.stamps], {}


def one(args: argparse.Namespace) -> dict[str, Any]:
    """One (implementation, method) run; printed as JSON for the parent."""
    impl, method = args.one.split(":")
    tokenizer = tokenizer_for(args)
    rows = examples(len(tokenizer), args.steps * args.batch_size * args.seq * 2, args.seq)
    data = blocks(rows, args.seq, args.steps * args.batch_size, tokenizer.pad_token_id)
    model = build(args.shape, method, tokenizer)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    if impl == "ours":
        seconds, extra = run_ours(model, data, args, method, tokenizer.pad_token_id)
    elif impl == "trainer":
        seconds, extra = run_trainer(model, data, args, tokenizer.pad_token_id)
    else:
        seconds, extra = run_trl(model, rows, args, tokenizer)
    warm = min(args.warmup, len(seconds) - 1)
    timed = seconds[-1] - (seconds[warm - 1] if warm else 0.0)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    n_params, cfg = sum(p.numel() for p in base.parameters()), base.config
    flops_per_token = (6 if method == "full" else 4) * n_params + 12 * cfg.num_hidden_layers * cfg.hidden_size * args.seq
    peak_mem = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tokens = (len(seconds) - warm) * args.batch_size * args.seq
    return {"impl": impl, "method": method, "tokens_per_s": tokens / timed, "step_s": timed / (len(seconds) - warm),
            "flops_per_token": flops_per_token, "peak_mem_gb": peak_mem / 1e9, "params": n_params, **extra}  # fmt: skip


# ---------------------------------------------------------------------------- main
def parse(argv: list[str] | None = None) -> argparse.Namespace:
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", choices=sorted(SHAPES), default="135m")
    p.add_argument("--steps", type=int, default=30 if cuda else 6)
    p.add_argument(
        "--warmup", type=int, default=5 if cuda else 2, help="first steps left out of the timing (compilation, allocator warm-up)"
    )
    p.add_argument("--batch-size", type=int, default=8 if cuda else 2)
    p.add_argument("--seq", type=int, default=2048 if cuda else 256)
    p.add_argument("--methods", default="full,lora")
    p.add_argument("--impls", default="ours,trainer,trl", help="comma-separated: ours, trainer, trl")
    p.add_argument("--compile", default="auto", choices=["auto", "true", "false"], help="`train.compile` for ours")
    p.add_argument("--tokenizer", default=None, help="tokenizer directory (default: the embedded SmolLM2's)")
    p.add_argument("--export-tokenizer", default=None, metavar="DIR", help="save the embedded SmolLM2 tokenizer to DIR and exit")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.compile = {"true": True, "false": False}.get(args.compile, args.compile)
    return args


def main() -> None:
    args = parse()
    if args.export_tokenizer:
        load_tokenizer(EMBEDDED_LM, "sft").save_pretrained(args.export_tokenizer)
        print(args.export_tokenizer)
        return
    if args.one:
        print(json.dumps(one(args)))
        return
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    results, failed = [], []
    for method in args.methods.split(","):
        for impl in args.impls.split(","):
            cmd = [sys.executable, __file__, "--one", f"{impl}:{method}", *sys.argv[1:]]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if out.returncode:
                if impl != "trl":  # TRL is the optional baseline ("where it runs")
                    raise SystemExit(f"{impl}:{method} failed:\n{out.stderr[-3000:]}")
                failed.append(f"trl:{method}: {(out.stderr.strip().splitlines() or ['?'])[-1][:200]}")
                continue
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    peaks = {"spec": spec_peak(), "measured": measured_peak()}
    print_table(results, name, peaks, args)
    for line in failed:
        print(f"not run: {line}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"device": name, "args": vars(args), "peaks": peaks, "results": results}, indent=1, default=str)
        )


def print_table(results: list[dict[str, Any]], device_name: str, peaks: dict[str, float | None], args: argparse.Namespace) -> None:
    spec, measured = peaks["spec"], peaks["measured"] or 1.0
    print(
        f"\n{device_name}; shape {args.shape}; {args.steps} steps ({args.warmup} warm-up not timed), batch {args.batch_size} x {args.seq} tokens"
    )
    print(
        f"peak: spec {spec / 1e12:.0f} TFLOP/s bf16" if spec else "peak: no spec figure for this device",
        f"| measured matmul {measured / 1e12:.1f} TFLOP/s",
    )
    print(f"{'method':6} {'impl':8} {'tokens/s':>10} {'MFU spec':>9} {'MFU meas':>9} {'peak GB':>8} {'vs trainer':>11}")
    by = {(r["method"], r["impl"]): r for r in results}
    for r in results:
        flops = r["tokens_per_s"] * r["flops_per_token"]
        mfu_spec = f"{flops / spec:.1%}" if spec else "n/a"
        base = by.get((r["method"], "trainer"))
        ratio = f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}x" if base else "n/a"
        print(
            f"{r['method']:6} {r['impl']:8} {r['tokens_per_s']:>10.0f} {mfu_spec:>9} {flops / measured:>9.1%} {r['peak_mem_gb']:>8.2f} {ratio:>11}"
        )
    for r in results:
        if "breakdown" in r:
            parts = "  ".join(f"{k} {v * 1e3:.1f} ms" for k, v in r["breakdown"].items())
            ck = r["checkpoint"]
            print(f"ours {r['method']}: step {r['step_s'] * 1e3:.1f} ms; parts (synchronised): {parts}; "
                  f"checkpoint: stall {ck['stall_seconds']:.2f} s + background write {ck['write_seconds']:.2f} s at steps {ck['steps']}; compiled {r['compiled']}")  # fmt: skip


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
