"""Dataset fingerprint: v4 (per-row digests ordered by id) vs the v3 definition, and file_fingerprint's memory.

One run, the same generated frames: ``--n`` rows of short texts and ``--n`` rows of
``--long-bytes`` texts. For each: seconds of the old in-memory fingerprint (copied below as
the baseline: SHA-256 over the schema then the NDJSON rows in row order) and of the new
``frame_fingerprint``, and their ratio. Then the long frame is written to parquet and three
child processes report their peak RSS: reading the file (``pl.read_parquet``), the old
``file_fingerprint`` (which read the whole file) and the new one (streamed batches).

Run from the repo root: python -m tests.benchmarks.bench_fingerprint [--n 1000000] [--long-bytes 2048]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from curation.core.fingerprint import _floats_as_text, frame_fingerprint


def old_frame_fingerprint(df: pl.DataFrame) -> str:
    """The v3 definition (curation/core/rundir.py before v4), verbatim: row order counts."""
    df = df.select(sorted(df.columns))
    schema = df.schema
    df = df.with_columns(pl.col(c).cast(_floats_as_text(t)) for c, t in schema.items() if _floats_as_text(t) != t)
    h = hashlib.sha256(json.dumps({k: str(v) for k, v in schema.items()}, sort_keys=True).encode())
    for start in range(0, max(df.height, 1), 200_000):
        h.update(df.slice(start, 200_000).write_ndjson().encode("utf-8"))
    return h.hexdigest()


def generate(n: int, text_bytes: int) -> pl.DataFrame:
    """``n`` rows of id, label, score and a distinct text of about ``text_bytes`` characters."""
    words = ["the", "invoice", "was", "charged", "twice", "and", "the", "support", "ticket", "about", "the", "refund", "is", "open"]
    base = " ".join(words[(i * 7) % len(words)] for i in range(text_bytes // 3 + 200))
    i = pl.int_range(n)
    return pl.select(
        id=pl.format("row-{}", (i * 7919) % n),
        text=pl.format("{} ", i) + pl.lit(base).str.slice(i % 300, text_bytes),
        label=(i % 5).cast(pl.String),
        score=(i % 1000).cast(pl.Float64) / 7,
    )


def _seconds(fn: object, df: pl.DataFrame) -> float:
    t = time.perf_counter()
    fn(df)  # type: ignore[operator]
    return time.perf_counter() - t


CHILD = {
    "read the file (pl.read_parquet)": "import polars as pl; pl.read_parquet(PATH)",
    "old file_fingerprint (reads it whole)": "import polars as pl; from tests.benchmarks.bench_fingerprint import old_frame_fingerprint as f; f(pl.read_parquet(PATH))",
    "new file_fingerprint (streamed)": "from curation.core.fingerprint import file_fingerprint; file_fingerprint(PATH)",
}


def peak_rss_mib(code: str, path: Path) -> tuple[float, float]:
    """Peak RSS (MiB, the child's own VmHWM: ru_maxrss would carry this parent's over the fork) and seconds of ``code``."""
    script = f"import time; PATH = {str(path)!r}; t = time.perf_counter(); {code}; s = time.perf_counter() - t; "
    script += "hwm = next(line for line in open('/proc/self/status') if line.startswith('VmHWM')); print(int(hwm.split()[1]) / 1024, s)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000, help="rows per generated frame")
    parser.add_argument("--long-bytes", type=int, default=2048, help="characters per long text")
    args = parser.parse_args()
    print(f"{'frame':<28} {'old s':>8} {'new s':>8} {'new/old':>8}")
    for name, text_bytes in (("short texts", 40), (f"{args.long_bytes} B texts", args.long_bytes)):
        df = generate(args.n, text_bytes)
        old, new = _seconds(old_frame_fingerprint, df), _seconds(frame_fingerprint, df)
        print(f"{f'{args.n:,} rows, {name}':<28} {old:>8.2f} {new:>8.2f} {new / old:>8.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.parquet"
        df.write_parquet(path)
        print(f"\npeak RSS, {args.n:,} rows of {args.long_bytes} B texts ({path.stat().st_size / 2**20:,.0f} MiB parquet)")
        del df
        for label, code in CHILD.items():
            rss, secs = peak_rss_mib(code, path)
            print(f"{label:<40} {rss:>8,.0f} MiB {secs:>7.2f} s")


if __name__ == "__main__":
    main()
