"""Assemble ``report.json``: everything the compliance report shows, read from the run's files.

The report reads files only: ``manifest.json``, ``config.yaml``, each stage's
``stats.json`` and the SVG charts a stage wrote under its ``charts/`` folder, the
``checks`` section of the manifest with the outcomes JSON it points at, and (label audit)
the ids and labels in a stage's findings. Of the curated dataset it takes only what the
gate checks: its fingerprint, row count and column types, so that a dataset changed
after validation is reported as not validated. It shows no row, so a report built after
``tuneprep clean`` is the same report.
Every number the page shows is computed here; the renderers only format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from curation.core.config import read_run_config
from curation.core.errors import RunError
from curation.core.rundir import DATASET, file_fingerprint, read_manifest
from curation.core.runfiles import read_json_object, read_stats
from curation.report.safety import sanitize_svg, scrub_value

REPORT_FORMAT = 2  # bump when report.json changes shape


@dataclass(frozen=True)
class StageRecord:
    """One stage of the run as the report sees it: manifest entry plus stats.json."""

    index: int
    name: str
    dir: str
    books: dict[str, int]
    dropped_by_reason: dict[str, int]
    config: dict[str, Any]
    metrics: dict[str, Any]
    skipped: bool
    input_fingerprint: str
    output_fingerprint: str
    charts: dict[str, str] = field(default_factory=dict)  # chart file name -> sanitised SVG
    seconds: float | None = None  # wall time of the stage when it was computed (None: not recorded)
    cpu_seconds: float | None = None
    fidelity: dict[str, Any] = field(default_factory=dict)  # what the stage rewrote (curation.core.fidelity), masked


@dataclass(frozen=True)
class DatasetFile:
    """The curated dataset file as it is now: what the gate checks, never a value."""

    path: str  # relative to the run directory
    rows: int
    schema: dict[str, pl.DataType]
    fingerprint: str  # curation.core.rundir.file_fingerprint, the one export and train compare with the validated one


@dataclass(frozen=True)
class RunFiles:
    """The run's files, loaded once and handed to every section builder."""

    run_dir: Path
    manifest: dict[str, Any]
    config: dict[str, Any]
    stages: list[StageRecord]
    checks: dict[str, Any] | None
    dataset: DatasetFile | None  # None when the curated file is missing

    @property
    def dataset_rows(self) -> int | None:
        """The curated file's row count; the run's record of it when the file is missing."""
        return self.dataset.rows if self.dataset else self.manifest.get("dataset", {}).get("rows")

    @property
    def dataset_fingerprint(self) -> str | None:
        """The curated file's fingerprint now; the run's record of it when the file is missing."""
        return self.dataset.fingerprint if self.dataset else self.manifest.get("dataset", {}).get("fingerprint")

    def stage(self, name: str) -> StageRecord | None:
        """The last stage called ``name`` (a stage may be configured twice), or None."""
        found = [s for s in self.stages if s.name == name]
        return found[-1] if found else None

    @property
    def ingest(self) -> StageRecord:
        return self.stages[0]

    def rel(self, path: str) -> str:
        """A run-relative path as a link from ``report/report.html``."""
        return f"../{path}"


def load_run(run_dir: Path) -> RunFiles:
    """Read the manifest, config, stage stats and checks results of a run directory.

    Raises:
        RunError: the folder is not a run directory, or its manifest lists no stages.
    """
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    entries = manifest.get("stages") or []
    if not entries:
        raise RunError(f"'{run_dir}' has a manifest without stages; rerun `tuneprep run` to complete it")
    config = read_run_config(run_dir).to_yaml_dict(shown=True)  # file names masked even for runs made before masking
    stages = [_stage_record(run_dir, e) for e in entries]
    return RunFiles(run_dir, manifest, config or {}, stages, _checks(run_dir, manifest), _dataset_file(run_dir))


def _dataset_file(run_dir: Path) -> DatasetFile | None:
    """Fingerprint, rows and column types of ``RUN/dataset/data.parquet``; None when it is missing.

    One pass over the file, the same as the gate's check before export and training.

    Raises:
        RunError: the file is not readable parquet.
    """
    path = run_dir / DATASET
    if not path.is_file():
        return None
    fingerprint = file_fingerprint(path)  # raises RunError for a damaged file, before the footer reads below
    rows = int(pl.scan_parquet(path).select(pl.len()).collect().item())
    return DatasetFile(DATASET.as_posix(), rows, dict(pl.read_parquet_schema(path)), fingerprint)


def _stage_record(run_dir: Path, entry: Mapping[str, Any]) -> StageRecord:
    stage_dir = run_dir / entry["dir"]
    stats_path = stage_dir / "stats.json"
    stats = read_stats(stats_path, missing_ok=True)
    return StageRecord(
        index=int(entry["index"]),
        name=str(entry["name"]),
        dir=str(entry["dir"]),
        books={k: int(v) for k, v in (stats.get("books") or entry["books"]).items()},
        dropped_by_reason={k: int(v) for k, v in (stats.get("dropped_by_reason") or entry.get("dropped_by_reason") or {}).items()},
        config=stats.get("config") or {},
        metrics=stats.get("metrics") or {},
        skipped=bool(entry.get("skipped", False)),
        input_fingerprint=str(entry.get("input_fingerprint", "")),
        output_fingerprint=str(entry.get("output_fingerprint", "")),
        charts=_charts(stage_dir),
        seconds=stats.get("seconds"),
        cpu_seconds=stats.get("cpu_seconds"),
        fidelity=stats.get("fidelity") or {},
    )


def _charts(stage_dir: Path) -> dict[str, str]:
    folder = stage_dir / "charts"
    if not folder.is_dir():
        return {}
    return {p.name: sanitize_svg(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.svg"))}


def _checks(run_dir: Path, manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """The manifest's ``checks`` section, plus where the Data Docs landed (relative to the run)."""
    checks = manifest.get("checks")
    if not isinstance(checks, dict):
        return None
    out = dict(checks)
    docs = sorted((run_dir / "checks").rglob("index.html")) if (run_dir / "checks").is_dir() else []
    if docs and not out.get("data_docs"):
        out["data_docs"] = docs[0].relative_to(run_dir).as_posix()
    verdict_file = run_dir / str(out.get("verdict_path") or out.get("verdict_file") or "checks/verdict.json")
    if "outcomes" not in out and verdict_file.is_file():  # per-expectation outcomes live beside the manifest
        out["outcomes"] = read_json_object(verdict_file).get("outcomes", [])
    return out


# ---------------------------------------------------------------------------- helpers for sections
def share(part: float, whole: float) -> float | None:
    """``part`` as a percentage of ``whole``, one decimal; None when ``whole`` is 0."""
    return round(100.0 * part / whole, 1) if whole else None


def rounded(value: Any, digits: int = 4) -> Any:
    """Floats to ``digits`` significant digits (what the page shows is what JSON holds)."""
    if isinstance(value, bool) or not isinstance(value, float):
        return value
    return float(f"{value:.{digits}g}")


def scalars(metrics: Mapping[str, Any], *, skip: set[str] | frozenset[str] = frozenset(), prefix: str = "") -> dict[str, Any]:
    """Flatten nested metrics to ``a.b`` -> scalar, for the tables of metrics a section does not know.

    Lists of scalars are kept as lists; lists of mappings and long lists are left to the
    section (they are usually per-class or per-entity tables).
    """
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if key in skip:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(scalars(value, prefix=f"{name}."))
        elif isinstance(value, (int, float, bool)) or value is None:
            out[name] = rounded(value)
        elif isinstance(value, str) and len(value) <= 80:
            out[name] = scrub_value(value)  # a stage's string metric may echo data: mask it
        elif isinstance(value, list) and len(value) <= 12 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            out[name] = [rounded(v) for v in value]
    return out


def books_total(src: RunFiles, key: str) -> int:
    return sum(s.books.get(key, 0) for s in src.stages)
