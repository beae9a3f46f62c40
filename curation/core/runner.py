"""The pipeline runner: ingest, then each configured stage in order, with the books kept.

Every stage writes ``RUN/stages/NN-<stage>/`` atomically (output, dropped, findings,
stats.json, _SUCCESS with its input fingerprint). On a rerun a stage whose _SUCCESS
matches its input fingerprint is loaded instead of recomputed, so a killed run resumes
where it stopped and a finished run reruns in seconds with identical output.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from curation.core.config import PipelineConfig
from curation.core.engines import Engine, engine_for
from curation.core.errors import InputError
from curation.core.ingest import QUARANTINE_SCHEMA, file_sha256, ingest, resolve_inputs
from curation.core.ledger import Ledger, ledger_path_for
from curation.core.progress import make_progress_factory
from curation.core.registry import STAGES, resume_inputs
from curation.core.rundir import (
    DATASET,
    MANIFEST,
    atomic_dir,
    export_files,
    frame_fingerprint,
    library_versions,
    sha256_json,
    write_bytes,
    write_json,
    write_parquet,
)
from curation.core.schema import BALANCE_COLUMNS, Kind, kind_columns
from curation.core.stage import StageContext, StageResult

FORMAT_VERSION = 2  # bump when a stage's on-disk output changes meaning, to invalidate resumes
Log = Callable[[str], None]


@dataclass(frozen=True)
class RunResult:
    run_id: str
    run_dir: Path
    kind: Kind
    dataset_fingerprint: str
    rows_in: int
    rows_out: int
    quarantined: int
    stages: list[dict[str, Any]]

    def summary(self) -> str:
        """The run's books in one line: every input row is curated, dropped or quarantined.

        Past a stage that turns rows into another kind (ratings into preference pairs), the
        input rows it used and the rows it made are counted apart, each side reconciling.
        """
        change = next((i for i, e in enumerate(self.stages) if "rows_out" in e["books"]), len(self.stages) - 1)
        rows, made = self.stages[: change + 1], self.stages[change + 1 :]
        dropped, quarantined = (sum(e["books"][k] for e in rows) for k in ("dropped", "quarantined"))
        if "rows_out" not in self.stages[change]["books"]:
            return f"{self.rows_in} rows in: {self.rows_out} curated, {dropped} dropped, {quarantined} quarantined"
        books = self.stages[change]["books"]
        line = f"{self.rows_in} rows in: {books['kept']} used, {dropped} dropped, {quarantined} quarantined; "
        line += f"{books['rows_out']} {self.kind} rows made from them: {self.rows_out} curated"
        later = {k: sum(e["books"][k] for e in made) for k in ("dropped", "quarantined")}
        return line + (f", {later['dropped']} dropped, {later['quarantined']} quarantined" if any(later.values()) else "")


def default_run_id(cfg: PipelineConfig, config_name: str, input_hashes: list[str]) -> str:
    """``<config name>-<12 hex>``: the same config on the same inputs maps to the same run."""
    digest = sha256_json({"config": cfg.to_yaml_dict(), "inputs": input_hashes, "v": FORMAT_VERSION})[:12]
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', config_name)}-{digest}"


def _books(rows_in: int, result: StageResult, input_kind: Kind) -> dict[str, int]:
    """rows_in = kept + dropped + quarantined, on input rows.

    A stage that changes the record kind (rows into preference pairs) keeps the input rows
    it used (``stats["rows_used"]``); what it wrote is reported alongside as ``rows_out``.
    """
    changes_kind = result.kind not in (None, input_kind)
    kept = int(result.stats.get("rows_used", -1)) if changes_kind else result.kept.height
    books = {"rows_in": rows_in, "kept": kept, "dropped": result.dropped.height, "quarantined": result.quarantined.height}
    if changes_kind:
        books["rows_out"] = result.kept.height
    if kept + books["dropped"] + books["quarantined"] != rows_in:
        raise AssertionError(f"stage books do not balance: {books}")
    return books


def _check_ids(df_in: pl.DataFrame, result: StageResult, input_kind: Kind) -> None:
    """Every input id leaves the stage exactly once (kept, dropped or quarantined)."""
    if result.kind not in (None, input_kind):
        out = pl.concat([result.dropped.select("id"), result.quarantined.select("id")])
        assert out["id"].is_unique().all(), "a row left the stage twice"
        assert out["id"].is_in(df_in["id"].implode()).all(), "a stage invented row ids"
        return
    out = pl.concat([result.kept.select("id"), result.dropped.select("id"), result.quarantined.select("id")])
    assert out.height == df_in.height and out["id"].sort().equals(df_in["id"].sort()), "stage lost, invented or duplicated rows"


def _dropped_by_reason(dropped: pl.DataFrame) -> dict[str, int]:
    if dropped.is_empty():
        return {}
    counts = dropped.group_by("reason").len().sort("reason")
    return {r: int(n) for r, n in counts.iter_rows()}


def _write_stage(
    stage_dir: Path, result: StageResult, stats: dict[str, Any], success: dict[str, Any], extra: dict[str, pl.DataFrame] | None = None
) -> None:
    """Write a stage directory whole; ``_SUCCESS`` lists the files a resume needs back."""
    frames = {"output.parquet": result.kept, "dropped.parquet": result.dropped, "findings.parquet": result.findings}
    if not result.quarantined.is_empty():
        frames["quarantine.parquet"] = result.quarantined
    frames |= extra or {}
    with atomic_dir(stage_dir) as tmp:
        for name, frame in frames.items():
            frame.write_parquet(tmp / name, statistics=False)
        for rel, content in sorted(result.files.items()):
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
        marker = {**success, "files": sorted([*frames, *result.files, "stats.json"])}
        (tmp / "_SUCCESS").write_text(json.dumps(marker, sort_keys=True) + "\n", encoding="utf-8")


def _load_stage(stage_dir: Path, input_fp: str) -> tuple[StageResult, dict[str, Any], dict[str, Any]] | None:
    """The finished stage in ``stage_dir`` if it was made from ``input_fp`` and is whole, else None (recompute).

    A stage whose files were removed since (``tuneprep clean``) or cannot be read is not whole.
    """
    try:
        success = json.loads((stage_dir / "_SUCCESS").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    needed = success.get("files", ["output.parquet", "dropped.parquet", "findings.parquet", "stats.json"])
    if success.get("input_fingerprint") != input_fp or not all((stage_dir / f).is_file() for f in needed):
        return None
    q = stage_dir / "quarantine.parquet"
    try:
        stats = json.loads((stage_dir / "stats.json").read_text(encoding="utf-8"))
        result = StageResult(
            kept=pl.read_parquet(stage_dir / "output.parquet"),
            dropped=pl.read_parquet(stage_dir / "dropped.parquet"),
            findings=pl.read_parquet(stage_dir / "findings.parquet"),
            stats=stats.get("metrics", {}),
            quarantined=pl.read_parquet(q) if q.is_file() else StageResult(pl.DataFrame(), pl.DataFrame()).quarantined,
            kind=success.get("kind"),
        )
    except (OSError, ValueError, pl.exceptions.PolarsError):
        return None
    return result, stats, success


def _ingest_stage(
    cfg: PipelineConfig, inputs: dict[Path, str], stage_dir: Path, ctx: StageContext, log: Log
) -> tuple[StageResult, dict[str, Any], bool]:
    input_fp = sha256_json(
        {
            "input": cfg.input.model_dump(mode="json"),
            "files": [str(p) for p in inputs],
            "hashes": list(inputs.values()),
            "v": FORMAT_VERSION,
        }
    )
    loaded = _load_stage(stage_dir, input_fp)
    if loaded is not None:
        log("ingest: unchanged, reusing")
        return loaded[0], loaded[1], True
    with ctx.progress("reading input", None) as bar:
        data = ingest(list(inputs), cfg.input.kind, dict(cfg.input.fields), advance=bar.advance)
    q = data.quarantine.select("id", "error", "source", "line")
    result = StageResult(kept=data.rows, dropped=data.rows.clear().with_columns(reason=pl.lit(None, pl.String)), quarantined=q)
    stats = {
        "stage": "ingest",
        "books": {"rows_in": data.rows_read, "kept": data.rows.height, "dropped": 0, "quarantined": data.quarantine.height},
        "dropped_by_reason": {},
        "config": cfg.input.model_dump(mode="json"),
        "metrics": {"form": data.form.name, "files": [{"path": f.path, "sha256": f.sha256, "bytes": f.bytes} for f in data.files]},
    }
    success = {"input_fingerprint": input_fp, "output_fingerprint": frame_fingerprint(data.rows), "kind": cfg.input.kind}
    _write_stage(stage_dir, result, stats, success, extra={"quarantine_full.parquet": data.quarantine})
    return result, stats, False


def run_pipeline(
    cfg: PipelineConfig,
    *,
    out_dir: Path | None = None,
    config_name: str = "run",
    runs_root: Path = Path("runs"),
    quiet: bool = True,
    log: Log | None = None,
    engine: Engine | None = None,
) -> RunResult:
    """Run ingest and every configured stage; write the run directory, manifest and ledger rows.

    Args:
        cfg: the validated pipeline config.
        out_dir: the run directory; default ``runs_root/<config name>-<fingerprint>``.
        config_name: used in the default run id (the YAML file's stem).
        quiet: no progress bars (they are also off when stderr is not a terminal).
        log: receives one line per stage; default prints to stderr unless quiet.
        engine: where stages run; default the one ``run.engine`` names (made and closed here).

    Raises:
        InputError: the input cannot be read, or every row was quarantined.
    """
    say: Log = log or ((lambda _m: None) if quiet else (lambda m: print(m, file=sys.stderr)))
    inputs = {p: file_sha256(p) for p in resolve_inputs(cfg.input.path, cfg.base_dir)}
    run_dir = Path(out_dir) if out_dir else Path(runs_root) / default_run_id(cfg, config_name, list(inputs.values()))
    run_id = run_dir.name
    ctx = StageContext(
        kind=cfg.input.kind,
        run_dir=run_dir,
        seed=cfg.run.seed,
        config_dir=cfg.base_dir,
        runs_root=run_dir.parent,
        progress_factory=make_progress_factory(quiet),
    )
    # Before any work: a missing secret (the hash salt) fails the run now, not after ingest.
    secrets = [resume_inputs(stage.name, stage.options, ctx) for stage in cfg.stages]
    owned = engine is None  # an engine made here is closed here; a caller's stays open
    engine = engine or engine_for(cfg.run.engine)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_bytes(run_dir / "config.yaml", yaml.safe_dump(cfg.to_yaml_dict(), sort_keys=False).encode("utf-8"))
    config_fp = sha256_json(cfg.to_yaml_dict())
    ledger = Ledger(ledger_path_for(run_dir, str(cfg.resolve(cfg.run.ledger)) if cfg.run.ledger else None))
    started = ledger.start_run(run_id, run_dir, kind=cfg.input.kind, config_fp=config_fp)
    try:
        result = _run_stages(cfg, inputs, secrets, run_dir, run_id, ctx, ledger, started, say, engine)
    except BaseException:
        ledger.finish_run(run_id, started, status="failed", dataset_fp=None, rows_in=None, rows_out=None)
        raise
    finally:
        if owned:
            engine.close()
    ledger.finish_run(
        run_id, started, status="succeeded", dataset_fp=result.dataset_fingerprint, rows_in=result.rows_in, rows_out=result.rows_out
    )
    return result


def _run_stages(
    cfg: PipelineConfig,
    inputs: dict[Path, str],
    secrets: list[dict[str, Any]],
    run_dir: Path,
    run_id: str,
    ctx: StageContext,
    ledger: Ledger,
    started: float,
    say: Log,
    engine: Engine,
) -> RunResult:
    stages_dir = run_dir / "stages"
    t0 = time.perf_counter()
    current, stats, skipped = _ingest_stage(cfg, inputs, stages_dir / "00-ingest", ctx, say)
    books = stats["books"]
    ledger.record_stage(
        run_id,
        started,
        0,
        "ingest",
        status="skipped" if skipped else "done",
        books=books,
        seconds=time.perf_counter() - t0,
        output_fp=frame_fingerprint(current.kept),
    )
    if current.kept.is_empty():
        raise InputError(
            f"every one of the {books['rows_in']} input rows was quarantined; see {run_dir / 'stages/00-ingest/quarantine_full.parquet'} for the errors and fix the input or `input.fields`"
        )
    say(f"ingest: {books['rows_in']} rows read, {books['kept']} kept, {books['quarantined']} quarantined")
    entries = [_manifest_entry(0, "ingest", stages_dir / "00-ingest", stats, skipped, sensitive=True)]
    quarantines = [current.quarantined.with_columns(stage=pl.lit("ingest"))]
    df, kind, prev_fp, scrubbed = current.kept, cfg.input.kind, frame_fingerprint(current.kept), False
    for idx, (stage, secret) in enumerate(zip(cfg.stages, secrets, strict=True), start=1):
        name = stage.name
        stage_dir = stages_dir / f"{idx:02d}-{name}"
        options = stage.options.model_dump(mode="json")
        t0 = time.perf_counter()
        ctx.kind = kind
        input_fp = sha256_json(  # `secret`: e.g. the PII salt's digest, so a new salt recomputes
            {"input": prev_fp, "stage": name, "options": options, "kind": kind, "seed": cfg.run.seed, "v": FORMAT_VERSION, **secret}
        )
        loaded = _load_stage(stage_dir, input_fp)
        if loaded is not None:
            result, st, success = loaded
            skipped = True
        else:
            result = engine.run_stage(name, df, stage.options, ctx)
            books = _books(df.height, result, kind)
            _check_ids(df, result, kind)
            st = {
                "stage": name,
                "books": books,
                "dropped_by_reason": _dropped_by_reason(result.dropped),
                "config": options,
                "metrics": result.stats,
            }
            success = {"input_fingerprint": input_fp, "output_fingerprint": frame_fingerprint(result.kept), "kind": result.kind or kind}
            _write_stage(stage_dir, result, st, success)
            skipped = False
        ctx.artifacts[name] = result
        ledger.record_stage(
            run_id,
            started,
            idx,
            name,
            status="skipped" if skipped else "done",
            books=st["books"],
            seconds=time.perf_counter() - t0,
            output_fp=success["output_fingerprint"],
        )
        scrubs = STAGES[name].scrubs_pii
        entries.append(_manifest_entry(idx, name, stage_dir, st, skipped, sensitive=not (scrubbed or scrubs), pii_stage=scrubs))
        scrubbed = scrubbed or scrubs
        if not result.quarantined.is_empty():
            quarantines.append(result.quarantined.select("id", "error").with_columns(stage=pl.lit(name)))
        say(_stage_line(name, st, skipped))
        df, kind, prev_fp = result.kept, success["kind"], success["output_fingerprint"]
    return _finish(cfg, inputs, run_dir, run_id, df, kind, entries, quarantines)


def _stage_line(name: str, stats: dict[str, Any], skipped: bool) -> str:
    b = stats["books"]
    reasons = ", ".join(f"{r} {n}" for r, n in stats["dropped_by_reason"].items())
    kept = f"{b['kept']} used in {b['rows_out']} output rows" if "rows_out" in b else f"{b['kept']} kept"
    dropped = f"{b['dropped']} dropped" + (f" ({reasons})" if reasons else "")
    return f"{name}: {b['rows_in']} in, {kept}, {dropped}, {b['quarantined']} quarantined" + (" [reused]" if skipped else "")


def _manifest_entry(
    idx: int, name: str, stage_dir: Path, stats: dict[str, Any], skipped: bool, *, sensitive: bool, pii_stage: bool = False
) -> dict[str, Any]:
    success = json.loads((stage_dir / "_SUCCESS").read_text(encoding="utf-8"))
    rel = f"stages/{stage_dir.name}"
    files = sorted(p.name for p in stage_dir.iterdir() if p.is_file())
    # Outputs of every stage before the first PII stage (all of them in a run without one) still
    # hold raw text; so do the PII stage's own dropped rows. Findings never hold raw values.
    sensitive_files = [
        f"{rel}/{f}"
        for f in files
        if f.endswith(".parquet") and (sensitive or (pii_stage and f == "dropped.parquet")) and f != "findings.parquet"
    ]
    return {
        "index": idx,
        "name": name,
        "dir": rel,
        "input_fingerprint": success["input_fingerprint"],
        "output_fingerprint": success["output_fingerprint"],
        "books": stats["books"],
        "dropped_by_reason": stats["dropped_by_reason"],
        "sensitive": sensitive,
        "sensitive_files": sensitive_files,
        "skipped": skipped,
    }


def _finish(
    cfg: PipelineConfig,
    inputs: dict[Path, str],
    run_dir: Path,
    run_id: str,
    df: pl.DataFrame,
    kind: Kind,
    entries: list[dict[str, Any]],
    quarantines: list[pl.DataFrame],
) -> RunResult:
    weights = [c for c in BALANCE_COLUMNS if c in df.columns and df[c].null_count() < df.height]
    dataset = df.select(kind_columns(kind, df.columns) + weights)
    write_parquet(run_dir / DATASET, dataset)
    ingest_q = pl.read_parquet(run_dir / "stages/00-ingest/quarantine_full.parquet")
    later = [
        q.select(
            pl.col("stage"),
            pl.lit(None, pl.String).alias("source"),
            pl.lit(None, pl.Int64).alias("line"),
            pl.col("id"),
            pl.col("error"),
            pl.lit(None, pl.String).alias("raw"),
        )
        for q in quarantines[1:]
    ]
    quarantine = pl.concat([ingest_q, *later]) if later else ingest_q
    write_parquet(run_dir / "quarantine.parquet", quarantine.select(list(QUARANTINE_SCHEMA)))
    fp = frame_fingerprint(dataset)
    sensitive_paths = ["quarantine.parquet", *(f for e in entries for f in e["sensitive_files"])]
    if entries[-1]["sensitive"]:  # no PII stage ran: the dataset and what was exported from it hold raw text
        sensitive_paths += [str(DATASET), *export_files(run_dir)]
    manifest = {
        "run_id": run_id,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "kind": kind,
        "input_kind": cfg.input.kind,
        "config": {"path": "config.yaml", "fingerprint": sha256_json(cfg.to_yaml_dict())},
        "inputs": [{"path": str(p), "sha256": h} for p, h in inputs.items()],
        "stages": entries,
        "quarantine": {"path": "quarantine.parquet", "rows": quarantine.height},
        "dataset": {"path": str(DATASET), "fingerprint": fp, "rows": dataset.height, "columns": dataset.columns},
        "sensitive_paths": sensitive_paths,
        "versions": library_versions(),
        "ledger": str(cfg.resolve(cfg.run.ledger).resolve()) if cfg.run.ledger else None,  # None: <runs root>/ledger.db
    }
    old = run_dir / MANIFEST
    if old.is_file():  # keep sections written by later commands only if the data is unchanged
        try:
            prev = json.loads(old.read_text(encoding="utf-8"))
        except ValueError:  # a damaged manifest is rewritten whole
            prev = {}
        if prev.get("dataset", {}).get("fingerprint") == fp:
            manifest.update({k: v for k, v in prev.items() if k in ("checks", "training", "created")})
    write_json(old, manifest)
    rows_in = entries[0]["books"]["rows_in"]
    return RunResult(run_id, run_dir, kind, fp, rows_in, dataset.height, quarantine.height, entries)
