"""Masking a long token without `@`: the one e-mail pattern (curation/core/masking.py) vs the old one.

The old pattern (`report/safety.py` before issue 18) retried the local part from every
start position of a token, so its time grows with the square of the token's length; the
new one starts only at a token boundary and `mask_text` cuts a value before any regex.

Run from the repo root: python -m tests.benchmarks.bench_masking [--max-old 40000]
"""

from __future__ import annotations

import argparse
import re
import time

from curation.core.masking import EMAIL, mask_text

OLD_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")


def _seconds(fn: object, text: str) -> float:
    t = time.perf_counter()
    fn(text)  # type: ignore[operator]
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-old", type=int, default=40_000, help="longest token the old pattern is timed on")
    args = parser.parse_args()
    print(f"{'characters':>12} {'old pattern s':>14} {'new pattern s':>14} {'mask_text s':>12}")
    for n in (10_000, 20_000, 40_000, 100_000, 5 * 1024 * 1024):
        token = "a" * n
        old = f"{_seconds(lambda t: OLD_EMAIL.sub('<email>', t), token):.3f}" if n <= args.max_old else "(skipped)"
        new = _seconds(lambda t: EMAIL.sub("<email>", t), token)
        print(f"{n:>12,} {old:>14} {new:>14.4f} {_seconds(mask_text, token):>12.4f}")


if __name__ == "__main__":
    main()
