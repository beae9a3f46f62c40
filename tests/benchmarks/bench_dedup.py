"""Benchmark: the dedup stage against a plain datasketch loop, and with boilerplate discounting on and off.

    .venv/bin/python -m tests.benchmarks.bench_dedup            # 100k docs, then 1M (minutes)
    .venv/bin/python -m tests.benchmarks.bench_dedup --n 20000 --skip-1m --repeat 3

Two corpora. ``near-dup``: the generated near-duplicate corpus of ``dedup_data.generate``
(long messages, some ending in long disclaimers). ``boilerplate``: ``generate_boilerplate``,
short messages (about 8 words) under shared ~30-word footers or banners next to longer
ones, with exact, re-formatted and lightly edited copies. On each the stage runs with
its defaults (``boilerplate on``) and with ``boilerplate: {enabled: false}`` (the old
behaviour, ``boilerplate off``), alternately, ``--repeat`` times each; the fastest run
of each is shown. The datasketch loop runs once on the near-dup corpus.

Both sides get the generated near-duplicate corpus of ``dedup_data`` (about 2 KB per
document) and the same normalisation and shingling (word bigrams, 128 permutations,
threshold 0.6). The baseline is the usual loop: per document one ``MinHash``,
``update_batch`` over its shingles, ``MinHashLSH.query`` then ``insert``; a document
whose query returns a candidate is a duplicate of it (no verification). Ours is the
whole stage (exact keys, signatures, LSH, exact-Jaccard verification, clusters).

Each side runs in its own fresh process; peak memory is that process's ``ru_maxrss``
(and the growth over its resident size after loading the data), CPU time its user +
system time over all its threads. Imports are done before
the clock starts on both sides. Printed: docs/s, the ratio, peak memory, and duplicate
precision/recall against the generator's truth.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
    return usage.ru_utime + usage.ru_stime


def _ours(path: str, workers: int | None, options: dict[str, Any]) -> dict[str, Any]:
    from curation.core.stage import StageContext
    from curation.stages.dedup.stage import DedupConfig, dedup

    df = pl.read_parquet(path)
    cfg = DedupConfig.model_validate({**options, "workers": workers})
    cfg.minhash.lsh_params()  # import datasketch/scipy before the clock, as the baseline does
    before, cpu0 = _rss_mb(), _cpu_s()
    t0 = time.perf_counter()
    result = dedup(df, cfg, StageContext(kind="text"))
    seconds = time.perf_counter() - t0
    cpu = _cpu_s() - cpu0
    return {
        "seconds": seconds,
        "cpu": cpu,
        "peak_mb": _peak_mb(),
        "growth_mb": _peak_mb() - before,
        "findings": result.findings.select("id", "kept_id"),
        "kept": result.kept["id"],
        "stats": result.stats,
    }


def _baseline(path: str) -> dict[str, Any]:
    from datasketch import MinHash, MinHashLSH

    from curation.stages.dedup.minhash import normalize, reference_shingles

    df = pl.read_parquet(path)
    before, cpu0 = _rss_mb(), _cpu_s()
    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=0.6, num_perm=128)
    removed_ids = []
    for doc_id, text in df.select("id", "text").iter_rows():
        m = MinHash(num_perm=128)
        m.update_batch(reference_shingles(normalize(text), "word", 2))
        hits = lsh.query(m)
        if hits:
            removed_ids.append((doc_id, min(hits)))
        else:
            lsh.insert(doc_id, m)
    seconds, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    findings = pl.DataFrame(removed_ids, schema={"id": pl.String, "kept_id": pl.String}, orient="row")
    kept = df.filter(~pl.col("id").is_in(findings["id"].implode()))["id"]
    return {"seconds": seconds, "cpu": cpu, "peak_mb": _peak_mb(), "growth_mb": _peak_mb() - before, "findings": findings, "kept": kept}


def _in_child(fn: Any, *args: Any) -> dict[str, Any]:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)  # type: ignore[no-any-return]


def _corpus(n: int, folder: Path, kind: str = "near-dup") -> tuple[str, pl.DataFrame]:
    from tests.data.dedup_data import generate, generate_boilerplate

    t0 = time.perf_counter()
    df, truth = (generate if kind == "near-dup" else generate_boilerplate)(n, seed=2026)
    path = folder / f"corpus_{kind}_{n}.parquet"
    df.write_parquet(path)
    print(
        f"generated {n:,} {kind} docs ({df['text'].str.len_bytes().mean() or 0:.0f} bytes on average) in {time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    return str(path), truth


def _row(corpus: str, name: str, n: int, res: dict[str, Any], truth: pl.DataFrame) -> dict[str, Any]:
    from tests.data.dedup_data import score

    s = score(res["findings"], truth, res["kept"])
    return {
        "corpus": corpus,
        "run": name,
        "docs": n,
        "seconds": res["seconds"],
        "docs/s": n / res["seconds"],
        "CPU s": res["cpu"],
        "peak MB": res["peak_mb"],
        "precision": s["precision"],
        "recall": s["recall"],
        "distinct lost": s["groups_lost"],
    }


_OFF = {"boilerplate": {"enabled": False}}


def _on_and_off(path: str, workers: int | None, repeat: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fastest of ``repeat`` runs with boilerplate discounting on (the default) and off, run alternately."""
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    for _ in range(repeat):
        runs["off"].append(_in_child(_ours, path, workers, _OFF))
        runs["on"].append(_in_child(_ours, path, workers, {}))
    on, off = (min(runs[k], key=lambda r: r["seconds"]) for k in ("on", "off"))
    return on, off


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="documents per corpus")
    parser.add_argument("--skip-1m", action="store_true", help="skip the 1M-document run of ours")
    parser.add_argument("--skip-loop", action="store_true", help="skip the datasketch loop")
    parser.add_argument("--repeat", type=int, default=1, help="runs of ours per setting (the fastest is shown)")
    parser.add_argument("--workers", type=int, default=None, help="hashing threads for ours (default: CPU count)")
    args = parser.parse_args()
    rows, ratios = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("near-dup", "boilerplate"):
            path, truth = _corpus(args.n, Path(tmp), kind)
            on, off = _on_and_off(path, args.workers, args.repeat)
            print(f"{kind}: on {on['seconds']:.2f} s, off {off['seconds']:.2f} s; {on['stats']['minhash']}", flush=True)
            print(f"{kind} boilerplate stats: { {k: v for k, v in on['stats']['boilerplate'].items() if k != 'blocks'} }", flush=True)
            rows += [
                _row(kind, "tuneprep dedup, boilerplate on", args.n, on, truth),
                _row(kind, "tuneprep dedup, boilerplate off", args.n, off, truth),
            ]
            ratios[kind] = (rows[-2]["docs/s"] / rows[-1]["docs/s"], off["cpu"] / on["cpu"])
            if kind == "near-dup" and not args.skip_loop:
                rows.append(_row(kind, "datasketch loop", args.n, _in_child(_baseline, path), truth))
        if not args.skip_1m:
            big_path, big_truth = _corpus(1_000_000, Path(tmp))
            rows.append(
                _row("near-dup", "tuneprep dedup, boilerplate on", 1_000_000, _in_child(_ours, big_path, args.workers, {}), big_truth)
            )
    table = pl.DataFrame(rows)
    with pl.Config(
        tbl_rows=12, tbl_cols=12, tbl_width_chars=220, float_precision=3, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True
    ):
        print(table)
    for kind, (speed, cpu) in ratios.items():
        print(f"{kind}: docs/s with boilerplate on / off: {speed:.2f} (CPU time off / on: {cpu:.2f})")
    if not args.skip_loop:
        loop = next(r for r in rows if r["run"] == "datasketch loop")
        print(
            f"throughput ratio (ours, defaults / datasketch loop) on {args.n:,} docs: {rows[0]['docs/s'] / loop['docs/s']:.1f}x wall-clock"
        )
        print(
            f"CPU-time ratio (datasketch loop / ours): {loop['CPU s'] / rows[0]['CPU s']:.1f}x (the machine may be shared: CPU time is the steadier measure)"
        )


if __name__ == "__main__":
    main()
