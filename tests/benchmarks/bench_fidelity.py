"""Benchmark: what measuring fidelity costs the runner, next to the stage it measures.

On generated support tickets (names, code-ish lines, numbers), the runner calls
``curation.core.fidelity.measure(input, kept, kind)`` after every stage. This prints its
time beside the ``normalize`` stage itself on the same frame (the baseline a user
already pays), for three cases: a stage that changed nothing (dedup, balance), one that
rewrote a few rows, and a PII-like rewrite of a third of the rows (names replaced by
``<PERSON>``, the diff capped at ``MAX_DIFF_ROWS`` rewritten rows).

Usage: ``.venv/bin/python -m tests.benchmarks.bench_fidelity [--rows 100000]``
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from curation.core.fidelity import MAX_DIFF_ROWS, measure
from curation.core.registry import stage_config_class, stage_function
from curation.core.stage import StageContext

NAMES = ["Jane Doe", "Omar Haddad", "Li Wei", "Grace Hopper", "Ana Souza"]
BODIES = [
    "my invoice {n} shows the wrong amount, please ask {name} to call me back",
    "the app crashes after update {n}:\n    def f(x):\n        return x[::-1]\n",
    "order {n} never arrived; {name} said it shipped on 2024-05-0{d}",
    "How do I reset my password? Tried {n} times already.",
]


def tickets(n: int, seed: int = 0) -> pl.DataFrame:
    rng = random.Random(seed)
    texts = [rng.choice(BODIES).format(n=rng.randint(1, 99999), name=rng.choice(NAMES), d=rng.randint(1, 9)) for _ in range(n)]
    return pl.DataFrame({"id": [f"t{i}" for i in range(n)], "text": texts, "label": [rng.choice(["billing", "tech"]) for _ in range(n)]})


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    df = tickets(args.rows)
    ctx = StageContext(kind="classification", run_dir=Path("."), seed=0)
    options = stage_config_class("normalize").model_validate({})  # the defaults, whatever the stage's version
    t_norm, result = timed(lambda: stage_function("normalize")(df, options, ctx))
    pii_like = df.with_columns(
        pl.when(pl.int_range(pl.len()) % 3 == 0).then(pl.col("text").str.replace_all("|".join(NAMES), "<PERSON>")).otherwise(pl.col("text"))
    )
    cases = [("unchanged (dedup, balance)", df, df), ("after normalize", df, result.kept), ("PII-like, 1 row in 3", df, pii_like)]
    print(f"{args.rows:,} rows; normalize stage itself (baseline): {t_norm:.2f} s; diff cap {MAX_DIFF_ROWS:,} rows")
    print(f"{'case':<28} {'measure s':>10} {'x normalize':>12} {'rewritten':>10} {'diffed':>8}  top replaced")
    for name, before, after in cases:
        seconds, f = timed(lambda b=before, a=after: measure(b, a, "classification"))
        top = f["top_replaced"][0] if f["top_replaced"] else {}
        shown = f"{top.get('before')!r} -> {top.get('after')!r} ({top.get('rows')} rows)" if top else "-"
        print(f"{name:<28} {seconds:>10.2f} {seconds / t_norm:>12.2f} {f['rows_rewritten']:>10,} {f['rows_diffed']:>8,}  {shown}")


if __name__ == "__main__":
    main()
