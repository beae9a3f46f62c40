"""Benchmark: the balance stage on 100k generated support tickets (2 CPU cores target).

Prints one table: the whole stage without and with embeddings (MiniLM on a seeded
sample of ``max_embed`` texts per side), and two parts against a naive baseline run on
the same data in the same process:

- Clarify metrics from one facet x label count table (ours) vs per-value boolean
  masks over a pandas frame, the way smclarify computes them;
- Vendi score on the d x d Gram matrix (ours) vs the n x n kernel of the original paper.

Usage: ``.venv/bin/python -m tests.benchmarks.bench_balance [--rows 100000] [--max-embed 5000]``
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curation.core.stage import StageContext
from curation.stages.balance import bias_metrics as bm
from curation.stages.balance.stage import BalanceConfig, balance, clarify_stats

TOPICS = {
    "billing": [
        "I was charged {n} times for my {plan} plan",
        "my invoice for the {plan} plan shows the wrong amount",
        "the card payment failed at checkout",
    ],
    "technical": [
        "the {device} app crashes when I open settings",
        "error {n} after the update on my {device}",
        "the page stays blank on {device}",
    ],
    "shipping": ["my {item} is {n} days late", "the parcel with my {item} never arrived", "tracking for the {item} has not moved"],
    "returns": ["how do I return the {item}, it is broken", "I want a refund for the {item}", "the {item} came in the wrong size"],
}
PASSWORD = [
    "I forgot my password and the reset mail never comes",
    "how do I reset my password on the {device}",
    "locked out of my account after {n} tries",
]
SLOTS = {
    "n": ["2", "3", "5", "12"],
    "plan": ["basic", "premium", "family"],
    "device": ["iPhone", "Android", "laptop", "tablet"],
    "item": ["jacket", "lamp", "charger", "shoes"],
}
FILLER = ["", " Thanks.", " Please help.", " This is urgent.", " I have been a customer for years and never had this problem before."]


def _fill(template: str, rng: random.Random) -> str:
    for slot, values in SLOTS.items():
        template = template.replace("{" + slot + "}", rng.choice(values))
    return template + rng.choice(FILLER)


def generate(n: int, seed: int = 0) -> pl.DataFrame:
    """Skewed labels (60/25/10/5), two sources, three languages."""
    rng = random.Random(seed)
    labels = rng.choices(list(TOPICS), weights=[60, 25, 10, 5], k=n)
    texts = [f"Ticket {i}: " + _fill(rng.choice(TOPICS[lab]), rng) for i, lab in enumerate(labels)]
    return pl.DataFrame(
        {
            "id": [f"t{i:07d}" for i in range(n)],
            "text": texts,
            "label": labels,
            "source": rng.choices(["email", "chat"], weights=[7, 3], k=n),
            "language": rng.choices(["en", "de", "fr"], weights=[8, 1, 1], k=n),
        }
    )


def reference(n: int, seed: int = 1) -> pl.DataFrame:
    """Real inputs: balanced topics, plus password resets the dataset never has."""
    rng = random.Random(seed)
    pools = [*TOPICS.values(), PASSWORD]
    texts = [_fill(rng.choice(rng.choice(pools)), rng) for _ in range(n)]
    return pl.DataFrame(
        {"text": texts, "source": rng.choices(["email", "chat", "phone"], k=n), "language": rng.choices(["en", "de", "fr"], k=n)}
    )


def naive_clarify(df: pl.DataFrame, facets: list[str], label: str) -> dict[str, Any]:
    """smclarify's way: for every facet value, boolean masks and per-side label pdfs."""
    pdf = df.to_pandas()
    labels = sorted(pdf[label].unique())
    out: dict[str, Any] = {}
    for facet in facets:
        for value in sorted(pdf[facet].unique()):
            mask = pdf[facet] == value
            pa = pdf.loc[~mask, label].value_counts(normalize=True).reindex(labels, fill_value=0).to_numpy()
            pd_ = pdf.loc[mask, label].value_counts(normalize=True).reindex(labels, fill_value=0).to_numpy()
            ci = (int((~mask).sum()) - int(mask.sum())) / len(pdf)
            out[f"{facet}={value}"] = (ci, 0.5 * float(np.abs(pa - pd_).sum()))
    return out


def naive_vendi(x: np.ndarray) -> float:
    eig = np.linalg.eigvalsh(x @ x.T / len(x))  # n x n
    eig = eig[eig > 1e-12]
    return math.exp(-float(np.sum(eig * np.log(eig))))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--max-embed", type=int, default=5000)
    ap.add_argument("--vendi-n", type=int, default=3000)
    args = ap.parse_args()
    df = generate(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        reference(args.max_embed).write_ndjson(Path(tmp) / "ref.jsonl")
        ctx = StageContext(kind="classification", config_dir=Path(tmp), seed=0)
        cfg = BalanceConfig(reference="ref.jsonl", max_embed=args.max_embed, target={"shares": "uniform"})  # type: ignore[arg-type]
        t_plain, _ = timed(lambda: balance(df, cfg.model_copy(update={"embeddings": False}), ctx))
        t_load, _ = timed(
            lambda: ctx.engine(
                "encoder:embedded:all-MiniLM-L6-v2", __import__("curation.embeddings", fromlist=["load_encoder"]).load_encoder
            )
        )
        t_full, result = timed(lambda: balance(df, cfg, ctx))
        t_again, _ = timed(lambda: balance(df, cfg, ctx))  # embeddings cached on the context
    facets = ["source", "language"]
    t_ours, _ = timed(lambda: clarify_stats(df, facets, "label", {}))
    t_naive, _ = timed(lambda: naive_clarify(df, facets, "label"))
    x = np.random.default_rng(0).normal(size=(args.vendi_n, 384))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    t_vd, ours_v = timed(lambda: bm.vendi_score(x))
    t_vn, naive_v = timed(lambda: naive_vendi(x))
    assert abs(ours_v - naive_v) < 1e-6 * naive_v
    emb = result.stats["embeddings"]
    print(
        f"\nbalance stage on {args.rows:,} rows, reference {args.max_embed:,} rows, max_embed {args.max_embed:,} (shared 2-core machine: timings are noisy)\n"
    )
    print(f"{'step':70} {'ours s':>8} {'baseline s':>11} {'ratio':>7}")
    rows = [
        ("stage, embeddings off (facets, Clarify, lengths, drift, weights)", t_plain, None),
        ("load MiniLM encoder", t_load, None),
        (f"stage, embeddings on (embeds {emb['embedded']['dataset'] + emb['embedded']['reference']:,} texts)", t_full, None),
        ("stage again, embeddings cached on the context", t_again, None),
        (f"Clarify on {len(facets)} facets: count table vs per-value masks", t_ours, t_naive),
        (f"Vendi on {args.vendi_n:,} x 384: d x d Gram vs n x n kernel", t_vd, t_vn),
    ]
    for name, ours, base in rows:
        base_s, ratio = ("", "") if base is None else (f"{base:.2f}", f"{base / ours:.1f}x")
        print(f"{name:70} {ours:8.2f} {base_s:>11} {ratio:>7}")
    print(
        f"\ncoverage {emb['coverage']}, density {emb['density']}, vendi {emb['vendi']}, lacking topics {emb['lacking_topics']}, rows kept {result.kept.height:,}"
    )


if __name__ == "__main__":
    main()
