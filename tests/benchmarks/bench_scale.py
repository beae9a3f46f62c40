"""Benchmark: dedup at growing sizes on the local engine, and the same on Spark local[2].

    .venv/bin/python -m tests.benchmarks.bench_scale --n 20000 50000 --spark-n 20000

Each size runs the dedup stage on the generated near-duplicate corpus of ``dedup_data``
(about 2 KB per document) in a fresh process: wall time, docs/s and the process's peak
RSS. The Spark side runs ``curation.spark.dedup.spark_dedup`` on a ``local[2]`` session
started, and warmed on 500 documents, before the clock (session start is printed apart); its peak RSS is the driver
Python's, and the JVM and Python workers' resident memory at the end is printed apart
(their peaks are not visible from here). The two results are compared: the findings must
be identical. The 5M/20M sizes of issue 21 need the bounded-memory local engine, which
does not exist yet: today the local engine holds every signature in memory.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _local(path: str) -> dict[str, Any]:
    from curation.core.stage import StageContext
    from curation.stages.dedup.stage import DedupConfig, dedup

    df = pl.read_parquet(path)
    cfg = DedupConfig()
    cfg.minhash.lsh_params()
    t0 = time.perf_counter()
    result = dedup(df, cfg, StageContext(kind="text"))
    seconds = time.perf_counter() - t0
    result.findings.write_parquet(path + ".local.parquet")
    return {"seconds": seconds, "peak_mb": _peak_mb(), "removed": result.findings.height}


def _spark(path: str) -> dict[str, Any]:
    import psutil
    from pyspark.sql import SparkSession

    from curation.core.stage import StageContext
    from curation.spark.dedup import spark_dedup
    from curation.stages.dedup.stage import DedupConfig

    os.environ["PYSPARK_PYTHON"] = sys.executable
    t0 = time.perf_counter()
    builder: Any = SparkSession.builder.master("local[2]")
    spark = builder.config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false").getOrCreate()
    spark.conf.set("spark.sql.shuffle.partitions", "4")
    startup = time.perf_counter() - t0
    df = pl.read_parquet(path)
    spark_dedup(
        spark, df.head(500), DedupConfig(), StageContext(kind="text")
    )  # Python workers start and import, as imports precede the local clock
    t0 = time.perf_counter()
    result = spark_dedup(spark, df, DedupConfig(), StageContext(kind="text"))
    seconds = time.perf_counter() - t0
    children = sum(p.memory_info().rss for p in psutil.Process().children(recursive=True)) / 2**20
    spark.stop()
    same = result.findings.equals(pl.read_parquet(path + ".local.parquet"))
    return {
        "seconds": seconds,
        "peak_mb": _peak_mb(),
        "removed": result.findings.height,
        "startup": startup,
        "jvm_mb": children,
        "same": same,
    }


def _in_fresh_process(fn: Any, path: str) -> dict[str, Any]:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, (path,))  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[20_000], help="local-engine sizes (documents)")
    parser.add_argument("--spark-n", type=int, default=20_000, help="size for the Spark local[2] comparison (0: skip)")
    args = parser.parse_args()
    from tests.data.dedup_data import generate

    sizes = sorted(set(args.n) | ({args.spark_n} if args.spark_n else set()))
    print(f"{'engine':<14}{'docs':>10}{'wall s':>10}{'docs/s':>10}{'peak RSS MB':>13}{'removed':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = str(Path(tmp) / f"docs-{n}.parquet")
            generate(n, seed=0)[0].write_parquet(path)
            local = _in_fresh_process(_local, path)
            print(
                f"{'local':<14}{n:>10}{local['seconds']:>10.1f}{n / local['seconds']:>10.0f}{local['peak_mb']:>13.0f}{local['removed']:>9}"
            )
            if n != args.spark_n:
                continue
            spark = _in_fresh_process(_spark, path)
            line = f"{'spark local[2]':<14}{n:>10}{spark['seconds']:>10.1f}{n / spark['seconds']:>10.0f}{spark['peak_mb']:>13.0f}{spark['removed']:>9}"
            print(line + f"   (driver only; JVM + workers {spark['jvm_mb']:.0f} MB at the end; session start {spark['startup']:.0f} s)")
            print(f"spark/local wall: {spark['seconds'] / local['seconds']:.1f}x; identical findings: {spark['same']}")


if __name__ == "__main__":
    main()
