"""Benchmark: ingest of millions of short JSON Lines records: memory and speed against polars' own reader.

    .venv/bin/python -m tests.benchmarks.bench_ingest                      # 200k rows, ~1 minute
    nice .venv/bin/python -m tests.benchmarks.bench_ingest --n 1000000 5000000 --data /tmp/scale

The records are ``tests.data.scale_data``'s short messages (100-300 bytes) as ``{"text": ...}``
lines without ids, so ingest validates each record and gives it a content id. Each side
runs in a fresh process: ours is ``curation.core.ingest.ingest`` (per-record validation,
quarantine, content ids); the baseline is ``pl.read_ndjson`` of the same file (parsing only:
no validation, no ids, no quarantine). Printed per size: wall time, rows/s, the process's
peak RSS (``ru_maxrss``), the size of the resulting frame, and ours/baseline ratios.

Measured at 1M on 2 cores shared with five other jobs (so the wall times are slow; MB are
MiB). Before ingest held rows in polars chunks (commit 1579c7f) its 1M peak was 795 MB:

    side             rows   wall s    rows/s  peak MB frame MB
    ingest      1,000,000     25.6    39,045      410      196
    read_ndjson  1,000,000      0.8 1,205,859      466      181

Ingest validates every record in Python: about 30x polars' parser, in less memory.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
from pathlib import Path
from typing import Any

import polars as pl


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ours(path: str) -> dict[str, Any]:
    from curation.core.ingest import ingest

    t0 = time.perf_counter()
    data = ingest([Path(path)], "text", {})
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_mb": _peak_mb(), "frame_mb": data.rows.estimated_size() / 2**20, "rows": data.rows.height}


def _baseline(path: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    frame = pl.read_ndjson(path)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_mb": _peak_mb(), "frame_mb": frame.estimated_size() / 2**20, "rows": frame.height}


def _in_fresh_process(fn: Any, *args: Any) -> dict[str, Any]:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)  # type: ignore[no-any-return]


def _jsonl(data: Path, n: int) -> str:
    """``short-<n>.jsonl`` under ``data``: the scale corpus's texts as JSON Lines, generated once."""
    from tests.data.scale_data import write_short

    path = data / f"short-{n}.jsonl"
    if not path.exists():
        docs, truth = data / f"short-{n}.parquet", data / f"short-{n}-truth.parquet"
        if not docs.exists():
            write_short(docs, truth, n, seed=0)
        tmp = path.with_suffix(".tmp")
        pl.scan_parquet(docs).select("text").sink_ndjson(tmp)
        tmp.replace(path)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[200_000], help="sizes (records)")
    parser.add_argument("--data", type=Path, default=Path("tests/benchmarks/out/scale"), help="where the generated files are kept")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    print(f"{'side':<10}{'rows':>11}{'wall s':>9}{'rows/s':>10}{'peak MB':>9}{'frame MB':>9}")
    for n in args.n:
        path = _jsonl(args.data, n)
        ours, base = _in_fresh_process(_ours, path), _in_fresh_process(_baseline, path)
        assert ours["rows"] == base["rows"] == n, (ours["rows"], base["rows"], n)
        for side, r in (("ingest", ours), ("read_ndjson", base)):
            print(f"{side:<10}{n:>11,}{r['seconds']:>9.1f}{n / r['seconds']:>10,.0f}{r['peak_mb']:>9,.0f}{r['frame_mb']:>9,.0f}")
        print(
            f"# {n:,}: ingest/read_ndjson wall {ours['seconds'] / base['seconds']:.2f}x, peak RSS {ours['peak_mb'] / base['peak_mb']:.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
