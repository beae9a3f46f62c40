"""Benchmark: the checks gate on 1M classification rows (target: under a minute on 2 cores).

Ours is ``run_checks`` end to end (dataset fingerprint, derived columns in polars, the
polars -> pandas conversion, GX validation of the default suite, Data Docs, manifest and
ledger). The baseline is plain GX on the same rows with the nearest built-in
expectations on raw columns (uniqueness of the raw text instead of its hash, character
length instead of token count; no class-share checks), i.e. what validating with GX
alone costs. Same data, same process, one table with the ratio.

    .venv/bin/python -m tests.benchmarks.bench_checks [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import polars as pl

WORDS = [
    "refund",
    "router",
    "invoice",
    "firmware",
    "password",
    "parcel",
    "upgrade",
    "warranty",
    "cable",
    "login",
    "billing",
    "account",
    "charge",
    "screen",
    "battery",
]
LABELS = ["billing", "technical", "account", "shipping", "feedback"]


def synthetic(n: int) -> pl.DataFrame:
    """n distinct support-ticket-like rows: ~14 words each, 5 labels (36/26/18/12/8%)."""
    i = pl.int_range(n, eager=True)
    words = [pl.lit(WORDS[k]) for k in range(len(WORDS))]
    text = pl.concat_str(
        [pl.lit("ticket"), i.cast(pl.String), *(pl.when(i % (k + 2) == 0).then(words[k]).otherwise(words[-k - 1]) for k in range(12))],
        separator=" ",
    )
    bucket = (i * 7919 % 100).alias("b")
    label = pl.when(bucket < 36).then(pl.lit(LABELS[0])).when(bucket < 62).then(pl.lit(LABELS[1])).when(bucket < 80).then(pl.lit(LABELS[2]))
    label = label.when(bucket < 92).then(pl.lit(LABELS[3])).otherwise(pl.lit(LABELS[4]))
    return pl.select(id=pl.concat_str(pl.lit("r"), i.cast(pl.String)), text=text, label=label)


def make_run(root: Path, df: pl.DataFrame) -> Path:
    """A real run made by the runner on a tiny input, its dataset then replaced by ``df``."""
    from curation.core.config import parse_config
    from curation.core.runner import run_pipeline
    from tests.checks.checks_fixtures import copy_run

    data = root / "tiny.jsonl"
    data.write_text("".join(json.dumps({"id": f"t{k}", "text": f"tiny {k}", "label": "billing"}) + "\n" for k in range(3)))
    tiny = run_pipeline(parse_config({"input": {"path": str(data), "kind": "classification"}, "stages": []}), out_dir=root / "tiny").run_dir
    return copy_run(tiny, root / "run", df)  # the dataset replaced and recorded as the run's, so the gate accepts it as made by the run


def baseline(df: pl.DataFrame) -> tuple[float, bool]:
    import great_expectations as gx

    from checks.gx import make_context

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as docs:
        context = make_context(Path(docs))
        batch = context.data_sources.add_pandas("d").add_dataframe_asset("a").add_batch_definition_whole_dataframe("b")
        suite = context.suites.add(gx.ExpectationSuite(name="baseline"))
        E = gx.expectations
        for exp in [
            E.ExpectTableColumnsToMatchSet(column_set=["id", "text", "label"], exact_match=False),
            *(E.ExpectColumnValuesToBeOfType(column=c, type_="str") for c in ("id", "text", "label")),
            *(E.ExpectColumnValuesToNotBeNull(column=c) for c in ("id", "text", "label")),
            E.ExpectColumnValuesToNotMatchRegex(column="text", regex=r"^\s*$"),
            E.ExpectColumnValuesToBeUnique(column="id"),
            E.ExpectColumnValuesToBeUnique(column="text"),
            E.ExpectTableRowCountToBeBetween(min_value=1),
            E.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1),
        ]:
            suite.add_expectation(exp)
        vd = context.validation_definitions.add(gx.ValidationDefinition(name="v", data=batch, suite=suite))
        result = vd.run(
            batch_parameters={"dataframe": df.to_pandas()},
            result_format={"result_format": "SUMMARY", "unexpected_index_column_names": ["id"]},
        )
    return time.perf_counter() - t0, bool(result.success)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    t0 = time.perf_counter()
    import checks.gx

    checks.gx._import_gx()
    from checks.gate import require_pass, run_checks
    from curation.core.config import ChecksConfig

    t_import = time.perf_counter() - t0
    df = synthetic(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp), df)
        t0 = time.perf_counter()
        result = run_checks(run)
        ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        require_pass(run)
        gate = time.perf_counter() - t0
        t0 = time.perf_counter()  # worst case: every row breaks a map expectation
        failing = run_checks(run, config=ChecksConfig(max_tokens=5))
        worst = time.perf_counter() - t0
    base, base_ok = baseline(df)
    print(f"rows: {args.rows:,}; great_expectations import: {t_import:.1f} s (paid once, not in the timings below)")
    print(f"{'':38} {'seconds':>8} {'verdict':>8}")
    print(f"{'ours: run_checks (end to end)':38} {ours:8.1f} {result.verdict:>8}")
    print(f"{'ours: run_checks, every row failing':38} {worst:8.1f} {failing.verdict:>8}")
    print(f"{'ours: require_pass (refingerprint)':38} {gate:8.1f} {'':>8}")
    print(f"{'baseline: plain GX, raw columns':38} {base:8.1f} {'pass' if base_ok else 'fail':>8}")
    print(f"{'ratio ours / baseline':38} {ours / base:8.2f}")
    for line in [*result.lines, *failing.lines]:
        print("  ", line)


if __name__ == "__main__":
    main()
