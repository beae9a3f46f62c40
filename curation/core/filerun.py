"""The runner's file mode (Spark with ``run.spark_io: files``): stages go from file to file.

Each stage's input is the previous stage's ``output.parquet``; the engine writes the stage's
files into the stage's temporary folder (``run_in_files``), or, for a stage without a
file-mode function, the input is read on the driver and the engine's frame path runs (the
adapter). Either way the runner keeps the books, ``stats.json`` and ``_SUCCESS`` exactly as
for frames, a resume checks the files by their SHA-256s and the output by its fingerprint
without reading the rows, and the curated dataset is streamed from the last output.

``ctx.artifacts`` of a stage holds its findings and quarantine whole, its kept rows as
their ids and its dropped rows as ``id``, ``label`` and ``reason``: what later stages read
(the dedup clusters' labels, the near-duplicate rate, the PII findings per row).
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from curation.core import fidelity
from curation.core.errors import RunError
from curation.core.progress import Log, Reporter
from curation.core.rundir import atomic_dir, atomic_path, file_fingerprint
from curation.core.runner import _books, _check_ids, _dropped_by_reason, _marker_for, _seal
from curation.core.schema import BALANCE_COLUMNS, Kind, kind_columns
from curation.core.stage import StageContext, StageResult

OUTPUT = "output.parquet"


def rows_of(path: Path) -> int:
    return int(pq.ParquetFile(path).metadata.num_rows)


def run_stage(
    engine: Any,  # the Spark engine: run_stage (frames) and run_in_files
    name: str,
    options: Any,
    src: Path,
    stage_dir: Path,
    input_fp: str,
    ctx: StageContext,
    reporter: Reporter,
    say: Log,
    *,
    raw: bool,
    pii_stage: bool,
) -> tuple[StageResult, dict[str, Any], dict[str, Any], bool, float]:
    """The stage from ``src`` into ``stage_dir`` (or reused): its artifacts, stats, _SUCCESS marker, whether reused, seconds."""
    kind, rows_in = ctx.kind, rows_of(src)
    with ExitStack() as stack:
        with reporter.stage(name, f"{rows_in} rows in") as timing:
            loaded = load_stage(stage_dir, input_fp, say)
            if loaded is None:
                tmp = stack.enter_context(atomic_dir(stage_dir))
                done = engine.run_in_files(name, src, tmp, options, ctx) or _adapter(engine, name, src, tmp, options, ctx)
        if loaded is not None:
            return *loaded, True, timing.seconds
        st = {
            "stage": name,
            "books": _books_of(rows_in, done, kind),
            "dropped_by_reason": done.dropped_by_reason,
            "config": options.model_dump(mode="json"),
            "metrics": done.stats,
            **timing.as_stats(),
            "fidelity": done.fidelity,
        }
        success = {"input_fingerprint": input_fp, "output_fingerprint": file_fingerprint(tmp / OUTPUT), "kind": done.kind or kind}
        for rel, content in sorted(done.files.items()):
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        frames = [f for f in ("output.parquet", "dropped.parquet", "findings.parquet", "quarantine.parquet") if (tmp / f).is_file()]
        _seal(tmp, [*frames, *done.files], st, success, raw=raw, pii_stage=pii_stage)
    return _artifacts(stage_dir, done.stats, success), st, success, False, timing.seconds


def _books_of(rows_in: int, done: Any, input_kind: Kind) -> dict[str, int]:
    """rows_in = kept + dropped + quarantined, as ``runner._books`` counts them (a stage that changes kind: the rows it used)."""
    changes_kind = done.kind not in (None, input_kind)
    kept = int(done.stats.get("rows_used", -1)) if changes_kind else done.kept
    books = {"rows_in": rows_in, "kept": kept, "dropped": done.dropped, "quarantined": done.quarantined}
    if changes_kind:
        books["rows_out"] = done.kept
    if kept + books["dropped"] + books["quarantined"] != rows_in:
        raise AssertionError(f"stage books do not balance: {books}")
    return books


def _adapter(engine: Any, name: str, src: Path, out_dir: Path, options: Any, ctx: StageContext) -> Any:
    """A stage without a file-mode function: the input read on the driver, the engine's frame path, its files written as today."""
    from curation.spark.files import FileStageResult

    df = pl.read_parquet(src)
    result = engine.run_stage(name, df, options, ctx)
    _books(df.height, result, ctx.kind)
    _check_ids(df, result, ctx.kind)
    measured = fidelity.measure(df, result.kept, ctx.kind, after_kind=result.kind)
    frames = {"output.parquet": result.kept, "dropped.parquet": result.dropped, "findings.parquet": result.findings}
    if not result.quarantined.is_empty():
        frames["quarantine.parquet"] = result.quarantined
    for file, frame in frames.items():
        frame.write_parquet(out_dir / file, statistics=False)
    return FileStageResult(
        stats=result.stats,
        kept=result.kept.height,
        dropped=result.dropped.height,
        quarantined=result.quarantined.height,
        dropped_by_reason=_dropped_by_reason(result.dropped),
        fidelity=measured,
        kind=result.kind,
        files=result.files,
    )


def load_stage(stage_dir: Path, input_fp: str, log: Log) -> tuple[StageResult, dict[str, Any], dict[str, Any]] | None:
    """The finished stage in ``stage_dir`` if made from ``input_fp`` and whole and unchanged (as ``runner._load_stage``), its rows unread."""
    marked = _marker_for(stage_dir, input_fp)
    if marked is None:
        return None
    success, why = marked
    if why is None:
        try:
            if file_fingerprint(stage_dir / OUTPUT) != success.get("output_fingerprint"):
                why = "output.parquet does not match the output fingerprint _SUCCESS recorded"
            else:
                stats = json.loads((stage_dir / "stats.json").read_text(encoding="utf-8"))
                return _artifacts(stage_dir, stats.get("metrics", {}), success), stats, success
        except (OSError, ValueError, KeyError, TypeError, RunError, pl.exceptions.PolarsError):
            why = "its files cannot be read"
    log(f"{stage_dir.name}: not reused, {why}; recomputing")
    return None


def _artifacts(stage_dir: Path, metrics: dict[str, Any], success: dict[str, Any]) -> StageResult:
    """What later stages read of this one (module docstring): no text columns of kept or dropped rows."""
    kept = pl.read_parquet(stage_dir / OUTPUT, columns=[c for c in pl.read_parquet_schema(stage_dir / OUTPUT) if c == "id"])
    dropped_cols = [c for c in pl.read_parquet_schema(stage_dir / "dropped.parquet") if c in ("id", "label", "reason")]
    quarantine = stage_dir / "quarantine.parquet"
    return StageResult(
        kept=kept,
        dropped=pl.read_parquet(stage_dir / "dropped.parquet", columns=dropped_cols),
        findings=pl.read_parquet(stage_dir / "findings.parquet"),
        stats=metrics,
        quarantined=pl.read_parquet(quarantine) if quarantine.is_file() else StageResult(pl.DataFrame(), pl.DataFrame()).quarantined,
        kind=success.get("kind"),
    )


def write_dataset(src: Path, kind: Kind, dest: Path) -> tuple[str, int, list[str]]:
    """The curated set streamed from the last stage's output (the kind's columns, weights where set): fingerprint, rows, columns."""
    lf = pl.scan_parquet(src)
    names = lf.collect_schema().names()
    present = [c for c in BALANCE_COLUMNS if c in names]
    counts = lf.select(pl.len().alias("__rows"), *[pl.col(c).null_count() for c in present]).collect().row(0, named=True)
    columns = kind_columns(kind, names) + [c for c in present if counts[c] < counts["__rows"]]
    with atomic_path(dest) as tmp:
        lf.select(columns).sink_parquet(tmp, statistics=False)
    return file_fingerprint(dest), int(counts["__rows"]), columns
