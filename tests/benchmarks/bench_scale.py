"""Benchmark: dedup of millions of short documents on one machine, and the same on Spark local[2].

    .venv/bin/python -m tests.benchmarks.bench_scale                                 # 200k, ~2 minutes
    nice .venv/bin/python -m tests.benchmarks.bench_scale --n 1000000 5000000 --spark-n 0 --boilerplate on --data /tmp/scale
    nice .venv/bin/python -m tests.benchmarks.bench_scale --n 20000000 --spark-n 0 --boilerplate on --data /tmp/scale
    nice .venv/bin/python -m tests.benchmarks.bench_scale --n 1000000 --spark-n 1000000 --boilerplate on --data /tmp/scale
    nice .venv/bin/python -m tests.benchmarks.bench_scale --n 200000 --spark-n 200000 --boilerplate on --files --data /tmp/scale
    nice .venv/bin/python -m tests.benchmarks.bench_scale --n 40000 --spark-n 40000 --words 300 600 --boilerplate on --files --data /tmp/scale

The corpus is ``tests.data.scale_data``: 100-300 byte messages with exact, re-formatted and
edited copies and messages sharing boilerplate blocks, written to Parquet in chunks (kept
under ``--data`` for the next run). Each size runs the dedup stage with its defaults
(boilerplate discounting on; the bounded-memory ``spill`` path from 1M rows on) in a fresh
process, which reads the Parquet file and runs the stage: wall time of the stage, docs/s,
the process's peak RSS (``ru_maxrss``) and its RSS with only the frame read (``frame``), and
precision/recall of the removals against the generator's truth. ``--boilerplate both``
(the default) also runs it with ``boilerplate: {enabled: false}``: the bounded part alone.

``--words A B`` makes the messages A to B-1 words long (default 12 to 45). ``--files`` also
runs Spark in file mode (``spark_dedup_files``): the workers read the Parquet file, the
driver holds ids, ranks and verdicts, never the texts; its ``frame`` column is the RSS before
the run (nothing read).

The Spark side runs ``curation.spark.dedup.spark_dedup`` at the defaults (boilerplate
discounting on, distributed; ``--boilerplate off`` runs both without it) on a ``local[2]``
session (``spark.driver.memory`` 6g: the 1g default ran out of heap at 1M; the JVM's
``-Xmx`` is printed) started, and warmed on 500 documents, before the clock; its peak RSS
is the driver Python's (the JVM and Python workers' resident memory at the end is printed
apart). Its findings are compared with the local run's at the same setting: they must be
identical.

Measured (2 cores shared with other jobs; one size at a time; MB are MiB):

    engine        docs        wall s   docs/s  peak MB  frame  removed    prec    recall
    local spill   1,000,000     21.6   46,361      828    431    273,288  0.9985  0.9671
    local spill   5,000,000    152.8   32,716    2,180  1,335  1,549,741  0.9977  0.9661
    local spill  20,000,000  1,070.6   18,681    7,530  4,520  6,393,555  0.9966  0.9654
    local spill   1,000,000     21.3   47,048      831    430    273,288  0.9985  0.9671
    spark local2  1,000,000    109.4    9,139      945    467    273,288  0.9985  0.9671   (driver Python;
                  JVM -Xmx6g + workers 7,293 MB at the end) 5.15x local's wall; identical findings: True

File mode against ``spark_dedup`` (``--files``; same findings in every run). At 200k short
messages (40 MB of text) the driver's peak is its fixed share (PySpark, collects, ids), about
the same; at 40k messages of 300-600 words (59 MB of Parquet, about 130 MB of text) file
mode keeps the texts off the driver. Walls vary by tens of seconds between runs on this
shared machine (a second 40k run: 74.0 s in memory, 46.0 s files):

    engine            docs   wall s  peak MB  frame
    spark local[2]  200,000    108.3      397    235   (frame: RSS with the frame read)
    spark files     200,000    105.5      436    264   (frame: RSS before the run)
    spark local[2]   40,000     50.9      590    348   (--words 300 600)
    spark files      40,000     66.4      419    281

At 1M short messages (``--n 1000000 --spark-n 1000000 --boilerplate on --files``, idle machine):

    local (spill)     1,000,000     18.2   54,975      859    461
    spark local[2]    1,000,000    100.7    9,933      952    473   5.53x local's wall
    spark files       1,000,000    140.5    7,120      660    250   7.72x local's wall; identical findings
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Phases:
    """Peak RSS per step of the stage: a thread samples RSS; the stage's progress bars name the steps."""

    def __init__(self) -> None:
        self.current, self.peaks = "start", {"start": _rss_mb()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peaks[self.current] = max(self.peaks.get(self.current, 0.0), _rss_mb())

    def enter(self, name: str) -> None:
        self.peaks[name] = max(self.peaks.get(name, 0.0), _rss_mb())
        self.current = name

    @contextmanager
    def factory(self, description: str, total: int | None) -> Iterator[Any]:
        self.enter(description.removeprefix("dedup: "))
        yield self
        self.enter("after " + description.removeprefix("dedup: "))

    def advance(self, n: int = 1) -> None:
        pass

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return dict(self.peaks)


def _config(boilerplate: bool, spill: str) -> Any:
    from curation.stages.dedup.stage import DedupConfig

    options: dict[str, Any] = {"boilerplate": {"enabled": boilerplate}}
    if spill != "auto":
        options["spill"] = spill == "on"
    return DedupConfig.model_validate(options)


def _local(path: str, boilerplate: bool, spill: str, out: str) -> dict[str, Any]:
    from curation.core.stage import StageContext
    from curation.stages.dedup import spill as spill_path
    from curation.stages.dedup.stage import dedup

    cfg = _config(boilerplate, spill)
    cfg.minhash.lsh_params()
    phases = _Phases()
    df = pl.read_parquet(path)
    frame = _rss_mb()
    phases.enter("frame read")
    t0 = time.perf_counter()
    result = dedup(df, cfg, StageContext(kind="text", progress_factory=phases.factory))
    seconds = time.perf_counter() - t0
    return {**_measured(result, seconds, frame, out), "spilled": spill_path.wanted(df, cfg), "phases": phases.stop()}


def _spark(path: str, boilerplate: bool, out: str, files: bool = False) -> dict[str, Any]:
    import psutil
    from pyspark.sql import SparkSession

    from curation.core.stage import StageContext
    from curation.spark.dedup import spark_dedup

    os.environ["PYSPARK_PYTHON"] = sys.executable
    cfg = _config(boilerplate, "auto")
    t0 = time.perf_counter()
    builder: Any = SparkSession.builder.master("local[2]")
    builder = builder.config("spark.driver.memory", "6g")  # local mode: the driver's 1g default ran out of heap at 1M rows
    spark = builder.config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false").getOrCreate()
    spark.conf.set("spark.sql.shuffle.partitions", "4")
    startup = time.perf_counter() - t0
    if files:
        return _spark_files(spark, path, cfg, out, startup)
    df = pl.read_parquet(path)
    frame = _rss_mb()
    spark_dedup(spark, df.head(500), cfg, StageContext(kind="text"))  # workers start and import, as imports precede the local clock
    t0 = time.perf_counter()
    result = spark_dedup(spark, df, cfg, StageContext(kind="text"))
    seconds = time.perf_counter() - t0
    kids = psutil.Process().children(recursive=True)
    children = sum(p.memory_info().rss for p in kids) / 2**20
    heap = [a for p in kids if p.name().startswith("java") for a in p.cmdline() if a.startswith("-Xmx")]  # driver.memory took
    spark.stop()
    return {**_measured(result, seconds, frame, out), "startup": startup, "jvm_mb": children, "jvm_heap": ",".join(heap) or "?"}


def _spark_files(spark: Any, path: str, cfg: Any, out: str, startup: float) -> dict[str, Any]:
    """``spark_dedup_files`` (file mode): the workers read the Parquet file, the driver never holds the texts."""
    import shutil
    import tempfile

    import psutil

    from curation.core.stage import StageContext
    from curation.spark.dedup import spark_dedup_files

    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm.parquet"
        pl.scan_parquet(path).head(500).collect().write_parquet(warm)
        (Path(tmp) / "warm").mkdir()
        spark_dedup_files(spark, warm, Path(tmp) / "warm", cfg, StageContext(kind="text"))  # workers start and import
        frame = _rss_mb()
        (Path(tmp) / "run").mkdir()
        t0 = time.perf_counter()
        result = spark_dedup_files(spark, Path(path), Path(tmp) / "run", cfg, StageContext(kind="text"))
        seconds = time.perf_counter() - t0
        shutil.copy(Path(tmp) / "run" / "findings.parquet", out)
    kids = psutil.Process().children(recursive=True)
    children = sum(p.memory_info().rss for p in kids) / 2**20
    heap = [a for p in kids if p.name().startswith("java") for a in p.cmdline() if a.startswith("-Xmx")]
    spark.stop()
    measured = {"seconds": seconds, "peak_mb": _peak_mb(), "frame_mb": frame, "removed": result.dropped}
    return measured | {"startup": startup, "jvm_mb": children, "jvm_heap": ",".join(heap) or "?"}


def _measured(result: Any, seconds: float, frame_mb: float, out: str) -> dict[str, Any]:
    """What both engines report of a run; its findings are written to ``out`` for the comparison."""
    result.findings.write_parquet(out)
    return {"seconds": seconds, "peak_mb": _peak_mb(), "frame_mb": frame_mb, "removed": result.findings.height}


def _in_fresh_process(fn: Any, *args: Any) -> dict[str, Any]:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)  # type: ignore[no-any-return]


def _score(findings: str, truth: str) -> tuple[float, float]:
    """Precision and recall of the removals (as ``dedup_data.score``), joined lazily: 20M rows fit."""
    t = pl.scan_parquet(truth).select("id", "group")
    removed = (
        pl.scan_parquet(findings)
        .select("id", "kept_id")
        .join(t, on="id")
        .join(t.rename({"id": "kept_id", "group": "kept_group"}), on="kept_id")
        .select(n=pl.len(), correct=(pl.col("group") == pl.col("kept_group")).sum())
        .collect()
    )
    sizes = t.select(rows=pl.len(), groups=pl.col("group").n_unique()).collect()
    n, correct = removed["n"][0], removed["correct"][0]
    should = sizes["rows"][0] - sizes["groups"][0]
    return (correct / n if n else 1.0), (correct / should if should else 1.0)


def _generate(docs: Path, truth: Path, n: int, spec: Any) -> dict[str, Any]:
    from tests.data.scale_data import write_short

    write_short(docs, truth, n, seed=0, spec=spec)
    return {}


def _corpus(data: Path, n: int, words: tuple[int, int] | None = None) -> tuple[str, str]:
    from tests.data.scale_data import ShortSpec

    name = f"short-{n}" + (f"-w{words[0]}-{words[1]}" if words else "")
    docs, truth = data / f"{name}.parquet", data / f"{name}-truth.parquet"
    if not (docs.exists() and truth.exists()):
        t0 = time.perf_counter()
        spec = ShortSpec(words=words, own_words=words) if words else None
        # in a fresh process: a process started from this one starts with this one's peak RSS as its own
        _in_fresh_process(_generate, docs.with_suffix(".tmp"), truth.with_suffix(".tmp"), n, spec)
        docs.with_suffix(".tmp").replace(docs)
        truth.with_suffix(".tmp").replace(truth)
        print(f"# generated {n:,} documents in {time.perf_counter() - t0:.0f} s ({docs.stat().st_size / 2**20:.0f} MB parquet)", flush=True)
    return str(docs), str(truth)


def _line(engine: str, boiler: bool, n: int, r: dict[str, Any], scores: tuple[float, float]) -> str:
    return (
        f"{engine:<16}{'on' if boiler else 'off':>6}{n:>11,}{r['seconds']:>9.1f}{n / r['seconds']:>9,.0f}"
        f"{r['peak_mb']:>10,.0f}{r['frame_mb']:>9,.0f}{r['removed']:>10,}{scores[0]:>8.4f}{scores[1]:>8.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[200_000], help="local-engine sizes (documents)")
    parser.add_argument("--spark-n", type=int, default=200_000, help="size for the Spark local[2] comparison (0: skip)")
    parser.add_argument("--boilerplate", choices=["on", "off", "both"], default="both", help="boilerplate discounting of the local runs")
    parser.add_argument("--spill", choices=["auto", "on", "off"], default="auto", help="the local stage's `spill` option")
    parser.add_argument("--data", type=Path, default=None, help="folder for the generated corpora (default: a temporary one)")
    parser.add_argument("--words", type=int, nargs=2, default=None, help="words per message (a half-open range; default 12 46)")
    parser.add_argument("--files", action="store_true", help="also run Spark in file mode (`spark_dedup_files`: no texts on the driver)")
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        print(
            f"{'engine':<16}{'boiler':>6}{'docs':>11}{'wall s':>9}{'docs/s':>9}{'peak MB':>10}{'frame':>9}{'removed':>10}{'prec':>8}{'recall':>8}"
        )
        for n in sorted(set(args.n) | ({args.spark_n} if args.spark_n else set())):
            docs, truth = _corpus(data, n, tuple(args.words) if args.words else None)
            settings = [s for s in (True, False) if args.boilerplate == "both" or (args.boilerplate == "on") == s]
            spark_boiler = args.boilerplate != "off"  # Spark at the defaults unless only `off` is asked for
            if n == args.spark_n and spark_boiler not in settings:
                settings.append(spark_boiler)
            same_setting: dict[str, Any] | None = None
            for boiler in settings if n in args.n else [spark_boiler]:
                out = str(Path(tmp) / f"local-{n}-{boiler}.parquet")
                r = _in_fresh_process(_local, docs, boiler, args.spill, out)
                engine = "local (spill)" if r["spilled"] else "local (memory)"
                print(_line(engine, boiler, n, r, _score(out, truth)), flush=True)
                print("#   peak RSS MB by step: " + ", ".join(f"{k} {v:,.0f}" for k, v in r["phases"].items()), flush=True)
                if boiler == spark_boiler:
                    same_setting = r | {"out": out}
            if n != args.spark_n or same_setting is None:
                continue
            for files in (False, True) if args.files else (False,):
                out = str(Path(tmp) / f"spark-{n}-{files}.parquet")
                s = _in_fresh_process(_spark, docs, spark_boiler, out, files)
                print(
                    _line("spark files" if files else "spark local[2]", spark_boiler, n, s, _score(out, truth))
                    + f"   driver only; JVM ({s['jvm_heap']}) + workers {s['jvm_mb']:,.0f} MB at the end"
                )
                same = pl.read_parquet(out).equals(pl.read_parquet(same_setting["out"]))
                ratio = s["seconds"] / same_setting["seconds"]
                print(
                    f"# spark/local wall {ratio:.2f}x (session start {s['startup']:.0f} s not counted); identical findings: {same}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
