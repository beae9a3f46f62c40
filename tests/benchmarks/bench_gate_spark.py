"""Benchmark: the checks gate on Spark ``local[2]``, the workers reading the dataset vs the driver shipping it.

Three ways to validate one run (generated classification rows, the default suite), each in
its own process so the driver's peak RSS (this Python process; Spark's JVM and Python
workers are children, not counted) is its own: ``local`` (pandas, the reference),
``spark`` (the default: the workers read ``dataset/data.parquet`` in units and derive the
columns, ``checks.spark_derive``), ``spark-driver`` (``run.spark_io: driver``: the driver
loads, derives and ships the frame). The table shows wall time, driver peak RSS, the
verdict and whether ``verdict.json`` equals the local one byte for byte.

    nice .venv/bin/python -m tests.benchmarks.bench_gate_spark [--rows 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

MODES = ("local", "spark", "spark-driver")


def check(run: Path, mode: str) -> dict[str, Any]:
    """Validate ``run`` one way; the figures as a dict (run in a child process)."""
    import checks.gate
    from checks.gate import run_checks
    from curation.core.engines import LocalEngine
    from curation.spark.engine import SparkEngine

    if mode == "spark-driver":  # what `run.spark_io: driver` selects, without the config field on this branch
        original = checks.gate._pipeline_config
        checks.gate._pipeline_config = lambda d: original(d).model_copy(update={"run": SimpleNamespace(engine="spark", spark_io="driver")})
    engine: Any = LocalEngine() if mode == "local" else SparkEngine(master="local[2]")
    if mode != "local":
        engine.spark.sparkContext.setLogLevel("ERROR")
        engine.spark.range(1).count()  # start the JVM before the clock
    t0 = time.perf_counter()
    result = run_checks(run, engine=engine)
    wall = time.perf_counter() - t0
    engine.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mode": mode, "wall": wall, "rss_mb": rss, "verdict": result.verdict, "file": (run / "checks/verdict.json").read_text()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--child", nargs=2, metavar=("RUN", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(check(Path(args.child[0]), args.child[1])))
        return
    from tests.benchmarks.bench_checks import make_run, synthetic

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp), synthetic(args.rows))
        rows = []
        for mode in MODES:
            shutil.rmtree(run / "checks", ignore_errors=True)
            cmd = [sys.executable, "-m", "tests.benchmarks.bench_gate_spark", "--child", str(run), mode]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:  # e.g. the driver path out of JVM memory: shown in the table, not a crash
                errors = [line for line in done.stderr.splitlines() if "Error" in line or "error" in line] or ["?"]
                rows.append({"mode": mode, "failed": errors[-1][:160]})
            else:
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"rows: {args.rows:,}; Spark local[2]; driver RSS = this Python process's peak (not the JVM or the workers)")
    print(f"{'mode':14} {'wall s':>8} {'driver RSS MB':>14} {'verdict':>8}  verdict.json as local")
    for r in rows:
        if "failed" in r:
            print(f"{r['mode']:14} failed: {r['failed']}")
            continue
        print(f"{r['mode']:14} {r['wall']:8.1f} {r['rss_mb']:14.0f} {r['verdict']:>8}  {r['file'] == rows[0].get('file')}")


if __name__ == "__main__":
    main()
