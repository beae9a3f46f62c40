"""The pipeline runner: ingest, then each configured stage in order, with the books kept.

Every stage writes ``RUN/stages/NN-<stage>/`` atomically (output, dropped, findings,
stats.json, _SUCCESS with its input and output fingerprints and each file's SHA-256). On a
rerun a stage whose _SUCCESS matches its input fingerprint, and whose files still match what
_SUCCESS recorded, is loaded instead of recomputed, so a killed run resumes where it stopped
and a finished run reruns in seconds with identical output. Each stage's input fingerprint
is the previous stage's verified output fingerprint, so the dataset fingerprint in the
manifest depends on every stage's actual output.

A run holds ``RUN/.lock`` while it writes the folder; at its start it sweeps temporaries
left by a killed run and marks killed runs ``interrupted`` in the ledger (integrity.py).
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from curation.core import fidelity
from curation.core.config import PipelineConfig
from curation.core.engines import Engine, engine_for
from curation.core.errors import InputError
from curation.core.ingest import QUARANTINE_SCHEMA, file_sha256, ingest, quarantine_reason, resolve_inputs
from curation.core.integrity import acquire_lock, signature_status, signed, signing_key, this_process
from curation.core.ledger import Ledger, ledger_path_for
from curation.core.progress import Log, Reporter, seconds_text
from curation.core.registry import STAGES, resume_inputs
from curation.core.rundir import (
    DATASET,
    MANIFEST,
    atomic_dir,
    export_files,
    frame_fingerprint,
    library_versions,
    manifest_status,
    sha256_json,
    sweep_temporaries,
    write_bytes,
    write_manifest,
    write_parquet,
)
from curation.core.schema import BALANCE_COLUMNS, Kind, kind_columns
from curation.core.stage import StageContext, StageResult

FORMAT_VERSION = 4  # 4: fingerprint v4, per-row digests ordered by id (curation.core.fingerprint). 3: floats fingerprinted as text (NaN, inf, null apart), file hashes in _SUCCESS, masked labels, ids and file names. Bump when a stage's on-disk output changes meaning, to invalidate resumes


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


def _sensitive_names(names: list[str], *, raw: bool, pii_stage: bool) -> list[str]:
    """The files of a stage folder that hold raw text.

    Outputs of every stage before the first PII stage (all of them in a run without one) still
    hold raw text; so do the PII stage's own dropped rows. Findings never hold raw values.
    """
    return sorted(
        f for f in names if f.endswith(".parquet") and (raw or (pii_stage and f == "dropped.parquet")) and f != "findings.parquet"
    )


def _write_stage(
    stage_dir: Path,
    result: StageResult,
    stats: dict[str, Any],
    success: dict[str, Any],
    extra: dict[str, pl.DataFrame] | None = None,
    *,
    raw: bool,
    pii_stage: bool = False,
) -> None:
    """Write a stage directory whole; ``_SUCCESS`` lists the files a resume needs back with their SHA-256,
    and which of them hold raw text; it is signed when a signing key is set."""
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
        _seal(tmp, [*frames, *result.files], stats, success, raw=raw, pii_stage=pii_stage)


def _seal(tmp: Path, names: list[str], stats: dict[str, Any], success: dict[str, Any], *, raw: bool, pii_stage: bool) -> None:
    """Write ``stats.json``, then ``_SUCCESS`` over ``names`` and stats.json: their SHA-256s, which hold raw text, signed when a key is set."""
    (tmp / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    files = sorted([*names, "stats.json"])
    marker = {**success, "files": files, "sha256": {f: file_sha256(tmp / f) for f in files}}
    marker["sensitive_files"] = _sensitive_names(files, raw=raw, pii_stage=pii_stage)
    (tmp / "_SUCCESS").write_text(json.dumps(signed(marker, signing_key()), sort_keys=True) + "\n", encoding="utf-8")


def _load_stage(stage_dir: Path, input_fp: str, log: Log) -> tuple[StageResult, dict[str, Any], dict[str, Any]] | None:
    """The finished stage in ``stage_dir`` if it was made from ``input_fp`` and is whole and unchanged, else None.

    None means recompute. A stage whose files were removed (``tuneprep clean``), changed since
    it wrote them, or cannot be read is not reused; ``log`` says why, except when the input changed.
    """
    marked = _marker_for(stage_dir, input_fp)
    if marked is None:
        return None
    success, why = marked
    if why is None:
        try:
            loaded = _read_stage(stage_dir, success)
        except (OSError, ValueError, KeyError, TypeError, pl.exceptions.PolarsError):
            loaded, why = None, "its files cannot be read"
    if why is None and loaded is not None and frame_fingerprint(loaded[0].kept) != success.get("output_fingerprint"):
        why = "output.parquet does not match the output fingerprint _SUCCESS recorded"
    if why is not None:
        log(f"{stage_dir.name}: not reused, {why}; recomputing")
        return None
    return loaded


def _marker_for(stage_dir: Path, input_fp: str) -> tuple[dict[str, Any], str | None] | None:
    """The stage's ``_SUCCESS`` if it was made from ``input_fp``, with why its files cannot be trusted (None: they can); else None."""
    try:
        success = json.loads((stage_dir / "_SUCCESS").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(success, dict) or success.get("input_fingerprint") != input_fp:
        return None
    return success, _changed_since_written(stage_dir, success)


def _changed_since_written(stage_dir: Path, success: dict[str, Any]) -> str | None:
    """Why the stage's files cannot be trusted (missing, changed, marker not signed with the key), or None."""
    status = signature_status(success, signing_key())
    if status not in ("valid", "no_key"):
        return (
            "its _SUCCESS is not signed with the current signing key" if status in ("unsigned", "other_key") else "its _SUCCESS was edited"
        )
    hashes = success.get("sha256")
    if not isinstance(hashes, dict):
        return "its _SUCCESS records no file hashes"
    for name in success.get("files", []):
        if not (stage_dir / name).is_file():
            return f"{name} is missing"
        if file_sha256(stage_dir / name) != hashes.get(name):
            return f"{name} changed since the stage wrote it"
    return None


def _read_stage(stage_dir: Path, success: dict[str, Any]) -> tuple[StageResult, dict[str, Any], dict[str, Any]]:
    q = stage_dir / "quarantine.parquet"
    stats = json.loads((stage_dir / "stats.json").read_text(encoding="utf-8"))
    result = StageResult(
        kept=pl.read_parquet(stage_dir / "output.parquet"),
        dropped=pl.read_parquet(stage_dir / "dropped.parquet"),
        findings=pl.read_parquet(stage_dir / "findings.parquet"),
        stats=stats.get("metrics", {}),
        quarantined=pl.read_parquet(q) if q.is_file() else StageResult(pl.DataFrame(), pl.DataFrame()).quarantined,
        kind=success.get("kind"),
    )
    return result, stats, success


def _ingest_stage(
    cfg: PipelineConfig, inputs: dict[Path, str], stage_dir: Path, ctx: StageContext, reporter: Reporter, *, files: bool = False
) -> tuple[StageResult, dict[str, Any], bool, float]:
    input_fp = sha256_json(
        {
            "input": cfg.input.model_dump(mode="json"),
            "files": [str(p) for p in inputs],
            "hashes": list(inputs.values()),
            "v": FORMAT_VERSION,
        }
    )
    with reporter.stage("ingest", None) as timing:
        if files:  # file mode: checked by its files' hashes and fingerprint, the rows not read
            from curation.core.filerun import load_stage as load_files

            loaded = load_files(stage_dir, input_fp, reporter.log)
        else:
            loaded = _load_stage(stage_dir, input_fp, reporter.log)
        if loaded is None:
            with ctx.progress("reading input", None) as bar:
                data = ingest(
                    list(inputs),
                    cfg.input.kind,
                    dict(cfg.input.fields),
                    separator=cfg.input.join_separator,
                    advance=bar.advance,
                    show_paths=cfg.report.show_paths,
                )
    if loaded is not None:
        return loaded[0], loaded[1], True, timing.seconds
    q = data.quarantine.select("id", "error", "source", "line")
    result = StageResult(kept=data.rows, dropped=data.rows.clear().with_columns(reason=pl.lit(None, pl.String)), quarantined=q)
    stats = {
        "stage": "ingest",
        "books": {"rows_in": data.rows_read, "kept": data.rows.height, "dropped": 0, "quarantined": data.quarantine.height},
        "dropped_by_reason": {},
        "config": cfg.to_yaml_dict(shown=True)["input"],
        "metrics": {
            "form": data.form.name,
            "files": [{"path": cfg.shown_path(f.path), "sha256": f.sha256, "bytes": f.bytes} for f in data.files],
            "warnings": data.warnings,
        },
        **timing.as_stats(),
    }
    success = {"input_fingerprint": input_fp, "output_fingerprint": frame_fingerprint(data.rows), "kind": cfg.input.kind}
    _write_stage(stage_dir, result, stats, success, extra={"quarantine_full.parquet": data.quarantine}, raw=True)
    return result, stats, False, timing.seconds


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
    inputs = {p: file_sha256(p) for p in resolve_inputs(cfg.input.path, cfg.base_dir, show_paths=cfg.report.show_paths)}
    run_dir = Path(out_dir) if out_dir else Path(runs_root) / default_run_id(cfg, config_name, list(inputs.values()))
    run_id = run_dir.name
    reporter = Reporter(quiet=quiet and log is None, log=say)
    ctx = StageContext(
        kind=cfg.input.kind,
        run_dir=run_dir,
        seed=cfg.run.seed,
        config_dir=cfg.base_dir,
        runs_root=run_dir.parent,
        progress_factory=reporter.factory,
    )
    # Before any work: a missing secret (the hash salt) fails the run now, not after ingest.
    secrets = [resume_inputs(stage.name, stage.options, ctx) for stage in cfg.stages]
    signing_key()  # an unreadable key file fails now, before any work
    owned = engine is None  # an engine made here is closed here; a caller's stays open
    engine = engine or engine_for(cfg.run.engine)
    run_dir.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(ledger_path_for(run_dir, str(cfg.resolve(cfg.run.ledger)) if cfg.run.ledger else None))
    lock = _claim_run_dir(run_dir, ledger, say)
    try:
        write_bytes(run_dir / "config.yaml", yaml.safe_dump(cfg.to_yaml_dict(shown=True), sort_keys=False).encode("utf-8"))
        config_fp = sha256_json(cfg.to_yaml_dict())
        started = ledger.start_run(run_id, run_dir, kind=cfg.input.kind, config_fp=config_fp, process=this_process())
        try:
            result = _run_stages(cfg, inputs, secrets, run_dir, run_id, ctx, ledger, started, say, reporter, engine)
        except BaseException:
            ledger.finish_run(run_id, started, status="failed", dataset_fp=None, rows_in=None, rows_out=None)
            raise
        ledger.finish_run(
            run_id, started, status="succeeded", dataset_fp=result.dataset_fingerprint, rows_in=result.rows_in, rows_out=result.rows_out
        )
    finally:
        lock.release()
        if owned:
            engine.close()
    return result


def _claim_run_dir(run_dir: Path, ledger: Ledger, say: Log) -> Any:
    """Lock the run folder, then clear what a killed run left: its temporaries, its `running` ledger rows."""
    lock = acquire_lock(run_dir)
    if lock.stale is not None:
        say(f"run folder lock of pid {lock.stale.get('pid')} on {lock.stale.get('host')} is stale (process gone); taken over")
    swept = sweep_temporaries(run_dir, skip=("training",))
    if swept:
        say(f"removed {len(swept)} temporary files or folders left by an interrupted run")
    ledger.mark_interrupted()
    return lock


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
    reporter: Reporter,
    engine: Engine,
) -> RunResult:
    stages_dir = run_dir / "stages"
    t0 = time.perf_counter()
    files = engine.name == "spark" and cfg.run.spark_io == "files"  # file mode: stages go file to file (curation/core/filerun.py)
    current, stats, skipped, seconds = _ingest_stage(cfg, inputs, stages_dir / "00-ingest", ctx, reporter, files=files)
    books = stats["books"]
    ingest_fp = (
        json.loads((stages_dir / "00-ingest/_SUCCESS").read_text())["output_fingerprint"] if files else frame_fingerprint(current.kept)
    )
    ledger.record_stage(
        run_id,
        started,
        0,
        "ingest",
        status="skipped" if skipped else "done",
        books=books,
        seconds=time.perf_counter() - t0,
        output_fp=ingest_fp,
    )
    if current.kept.is_empty():
        raise InputError(
            f"every one of the {books['rows_in']} input rows was quarantined ({quarantine_reason(current.quarantined)}); see {run_dir / 'stages/00-ingest/quarantine_full.parquet'} for the errors and fix the input or `input.fields`"
        )
    line = f"ingest: {books['rows_in']} rows read, {books['kept']} kept, {books['quarantined']} quarantined"
    say(line + (f" [reused, {seconds_text(seconds)}]" if skipped else f" in {_took(stats)}"))
    for warning in stats["metrics"].get("warnings", []):
        say(f"ingest: warning: {warning}")
    entries = [_manifest_entry(0, "ingest", stages_dir / "00-ingest", stats, skipped, sensitive=True)]
    quarantines = [current.quarantined.with_columns(stage=pl.lit("ingest"))]
    src = stages_dir / "00-ingest" / "output.parquet"
    df, kind, prev_fp, scrubbed = pl.DataFrame() if files else current.kept, cfg.input.kind, ingest_fp, False
    del current  # file mode: the driver holds no rows between stages
    for idx, (stage, secret) in enumerate(zip(cfg.stages, secrets, strict=True), start=1):
        name = stage.name
        stage_dir = stages_dir / f"{idx:02d}-{name}"
        options = stage.options.model_dump(mode="json")
        t0 = time.perf_counter()
        ctx.kind = kind
        input_fp = sha256_json(  # `secret`: e.g. the PII salt's digest, so a new salt recomputes
            {"input": prev_fp, "stage": name, "options": options, "kind": kind, "seed": cfg.run.seed, "v": FORMAT_VERSION, **secret}
        )
        scrubs = STAGES[name].scrubs_pii
        if files:
            from curation.core.filerun import run_stage as run_file_stage

            raw = not (scrubbed or scrubs)
            result, st, success, skipped, seconds = run_file_stage(
                engine, name, stage.options, src, stage_dir, input_fp, ctx, reporter, say, raw=raw, pii_stage=scrubs
            )
            src = stage_dir / "output.parquet"
        else:
            with reporter.stage(name, f"{df.height} rows in") as timing:
                loaded = _load_stage(stage_dir, input_fp, say)
                if loaded is None:
                    result = engine.run_stage(name, df, stage.options, ctx)
            seconds = timing.seconds
            if loaded is not None:
                result, st, success = loaded
                skipped = True
            else:
                books = _books(df.height, result, kind)
                _check_ids(df, result, kind)
                st = {
                    "stage": name,
                    "books": books,
                    "dropped_by_reason": _dropped_by_reason(result.dropped),
                    "config": options,
                    "metrics": result.stats,
                    **timing.as_stats(),
                    "fidelity": fidelity.measure(df, result.kept, kind, after_kind=result.kind),  # what it rewrote (docs/checks.md)
                }
                success = {"input_fingerprint": input_fp, "output_fingerprint": frame_fingerprint(result.kept), "kind": result.kind or kind}
                _write_stage(stage_dir, result, st, success, raw=not (scrubbed or scrubs), pii_stage=scrubs)
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
        entries.append(_manifest_entry(idx, name, stage_dir, st, skipped, sensitive=not (scrubbed or scrubs)))
        scrubbed = scrubbed or scrubs
        if not result.quarantined.is_empty():
            quarantines.append(result.quarantined.select("id", "error").with_columns(stage=pl.lit(name)))
        say(_stage_line(name, st, skipped, seconds))
        df, kind, prev_fp = result.kept, success["kind"], success["output_fingerprint"]
    return _finish(cfg, inputs, run_dir, run_id, src if files else df, kind, entries, quarantines)


def _took(stats: dict[str, Any]) -> str:
    """``4.2 s (cpu 3.9 s)`` from a stage's stats.json (written before timings were recorded: ``?``)."""
    if "seconds" not in stats:
        return "? s"
    return f"{seconds_text(stats['seconds'])} (cpu {seconds_text(stats['cpu_seconds'])})"


def _stage_line(name: str, stats: dict[str, Any], skipped: bool, seconds: float) -> str:
    b = stats["books"]
    reasons = ", ".join(f"{r} {n}" for r, n in stats["dropped_by_reason"].items())
    kept = f"{b['kept']} used in {b['rows_out']} output rows" if "rows_out" in b else f"{b['kept']} kept"
    dropped = f"{b['dropped']} dropped" + (f" ({reasons})" if reasons else "")
    line = f"{name}: {b['rows_in']} in, {kept}, {dropped}, {b['quarantined']} quarantined"
    return line + (f" [reused, {seconds_text(seconds)}]" if skipped else f" in {_took(stats)}")


def _manifest_entry(idx: int, name: str, stage_dir: Path, stats: dict[str, Any], skipped: bool, *, sensitive: bool) -> dict[str, Any]:
    success = json.loads((stage_dir / "_SUCCESS").read_text(encoding="utf-8"))
    rel = f"stages/{stage_dir.name}"
    sensitive_files = [f"{rel}/{f}" for f in success["sensitive_files"]]
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
        "fidelity": fidelity.summary(stats.get("fidelity")),
    }


def _kept_sections(path: Path, fp: str) -> dict[str, Any]:
    """Sections written by later commands (checks, training), kept only if the data is unchanged
    and, with a signing key set, the old manifest verifies: a rerun must not sign an edited verdict."""
    try:
        prev = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):  # a damaged manifest is rewritten whole
        return {}
    if not isinstance(prev, dict) or not isinstance(prev.get("dataset"), dict) or prev["dataset"].get("fingerprint") != fp:
        return {}
    if manifest_status(prev) not in ("valid", "no_key"):
        return {}
    return {k: v for k, v in prev.items() if k in ("checks", "training", "created")}


def _finish(
    cfg: PipelineConfig,
    inputs: dict[Path, str],
    run_dir: Path,
    run_id: str,
    df: pl.DataFrame | Path,
    kind: Kind,
    entries: list[dict[str, Any]],
    quarantines: list[pl.DataFrame],
) -> RunResult:
    if isinstance(df, Path):  # file mode: streamed from the last stage's output.parquet
        from curation.core.filerun import write_dataset

        fp, rows, columns = write_dataset(df, kind, run_dir / DATASET)
    else:
        weights = [c for c in BALANCE_COLUMNS if c in df.columns and df[c].null_count() < df.height]
        dataset = df.select(kind_columns(kind, df.columns) + weights)
        write_parquet(run_dir / DATASET, dataset)
        fp, rows, columns = frame_fingerprint(dataset), dataset.height, dataset.columns
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
    sensitive_paths = ["quarantine.parquet", *(f for e in entries for f in e["sensitive_files"])]
    if entries[-1]["sensitive"]:  # no PII stage ran: the dataset and what was exported from it hold raw text
        sensitive_paths += [str(DATASET), *export_files(run_dir)]
    manifest = {
        "run_id": run_id,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "kind": kind,
        "input_kind": cfg.input.kind,
        "config": {"path": "config.yaml", "fingerprint": sha256_json(cfg.to_yaml_dict())},
        "inputs": [{"path": cfg.shown_path(p), "sha256": h} for p, h in inputs.items()],
        "stages": entries,
        "quarantine": {"path": "quarantine.parquet", "rows": quarantine.height},
        "dataset": {"path": str(DATASET), "fingerprint": fp, "rows": rows, "columns": columns},
        "sensitive_paths": sensitive_paths,
        "versions": library_versions(),
        "ledger": str(cfg.resolve(cfg.run.ledger).resolve()) if cfg.run.ledger else None,  # None: <runs root>/ledger.db
    }
    manifest.update(_kept_sections(run_dir / MANIFEST, fp))
    write_manifest(run_dir, manifest, sign=True)
    rows_in = entries[0]["books"]["rows_in"]
    return RunResult(run_id, run_dir, kind, fp, rows_in, rows, quarantine.height, entries)
