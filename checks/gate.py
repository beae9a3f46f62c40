"""The validation gate: run the checks on a run's curated set, record the verdict, enforce it.

``run_checks`` validates ``RUN/dataset/data.parquet`` with the suite for its record kind,
writes GX results and Data Docs under ``RUN/checks/`` and records the verdict with the
suite and dataset fingerprints in the manifest and the ledger. ``require_pass`` is what
training calls: it passes only if that verdict is ``pass`` and the dataset on disk still
has the fingerprint that was validated. With a signing key set (``TUNEPREP_SIGNING_KEY`` or
``TUNEPREP_SIGNING_KEY_FILE``) both also verify the manifest's HMAC, which covers the verdict
and the hashes of ``checks/verdict.json`` and ``checks/results.json``, and refuse an edited,
unsigned or otherwise-signed manifest.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from checks.derive import text_columns
from checks.fidelity import details, read_rewrites
from checks.gx import RawResult, validate
from checks.results import CheckResult, LabelCounts, to_outcome, verdict_of
from checks.spark_derive import Derivation, validate_run_on_spark
from checks.suites import Spec, build_suite, suite_fingerprint
from curation.core.config import ChecksConfig, PipelineConfig, read_run_config
from curation.core.engines import Engine, engine_for
from curation.core.errors import ConfigError, GateFailed, RunError
from curation.core.integrity import KEY_ENV
from curation.core.ledger import run_ledger
from curation.core.rundir import (
    DATASET,
    atomic_dir,
    file_fingerprint,
    file_sha256,
    frame_fingerprint,
    load_dataset,
    manifest_status,
    read_manifest,
    update_manifest,
    write_json,
)
from curation.core.runfiles import read_stats

CHECKS_DIR = "checks"
RESULTS = "results.json"  # GX's suite validation result
VERDICT = "verdict.json"  # our outcomes and verdict
DOCS = "data_docs"


@dataclass(frozen=True)
class GateInfo:
    """Proof that a run may be trained on: its verdict and the fingerprints it was given for."""

    run_id: str
    verdict: str  # always "pass": anything else raises GateFailed
    dataset_fingerprint: str
    suite_fingerprint: str


def _pipeline_config(run_dir: Path) -> PipelineConfig:
    return read_run_config(run_dir)


def _residual_pii(run_dir: Path, manifest: dict[str, Any]) -> tuple[int | None, bool]:
    """The PII stage's residual count (``metrics.residual_total``) and whether a PII stage ran."""
    entry = next((s for s in manifest.get("stages", []) if s.get("name") == "pii"), None)
    if entry is None:
        return None, False
    stats_path = run_dir / entry["dir"] / "stats.json"
    if not stats_path.is_file():
        raise RunError(f"the pii stage of '{run_dir}' has no stats.json at '{stats_path}'; rerun `tuneprep run`")
    metrics = read_stats(stats_path).get("metrics")
    residual = metrics.get("residual_total") if isinstance(metrics, dict) else None
    if not isinstance(residual, int):
        raise RunError(
            f"'{stats_path}' has no integer `metrics.residual_total`; the residual PII check needs the pii stage's residual scan"
        )
    return residual, True


def _tokenizer(cfg: ChecksConfig) -> Any:
    if cfg.tokenizer is None:
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(cfg.tokenizer, local_files_only=True)
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"`checks.tokenizer`: cannot load a tokenizer from '{cfg.tokenizer}' offline ({type(e).__name__}); give a local tokenizer directory"
        ) from None


def run_checks(run_dir: Path, *, config: ChecksConfig | None = None, engine: Engine | None = None) -> CheckResult:
    """Validate a run's curated dataset and record the verdict.

    Args:
        run_dir: a run directory made by ``tuneprep run``.
        config: thresholds and severities; default: the ``checks`` section of ``RUN/config.yaml``.
        engine: where GX evaluates the suite: on Spark for a Spark engine (``checks.spark_gx``,
            same results), else pandas; default: the run's ``run.engine`` (made and closed here).

    Returns:
        The verdict, every expectation's outcome and the failure lines. A failing verdict
        is returned, not raised: the caller decides (the CLI exits 1).

    Raises:
        RunError: the run directory is incomplete. ConfigError: a custom expectation is invalid.
    """
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    _verify_signature(run_dir, manifest)
    pipeline = _pipeline_config(run_dir)
    cfg = config or pipeline.checks
    runner = engine or engine_for(pipeline.run.engine)
    # on Spark the workers read and derive the dataset (checks.spark_derive); `spark_io: driver` ships it from here
    df = None if runner.name == "spark" and pipeline.run.spark_io == "files" else load_dataset(run_dir)
    fingerprint = _verify_made_by_run(run_dir, manifest, df)
    columns = pl.scan_parquet(run_dir / DATASET).collect_schema().names() if df is None else df.columns
    kind = manifest["kind"]
    residual, pii_ran = _residual_pii(run_dir, manifest)
    rewrites = read_rewrites(run_dir, manifest)
    specs = build_suite(kind, columns, cfg, pii_ran=pii_ran, rewrites=rewrites)
    how = Derivation(kind, residual, _tokenizer(cfg), rewrites)
    checks_dir = run_dir / CHECKS_DIR
    with atomic_dir(checks_dir) as tmp:
        try:
            raw, gx_json, labels = _validate(runner, run_dir, df, how, specs, docs_dir=tmp / DOCS, text_columns=text_columns(kind, columns))
        finally:
            if engine is None:
                runner.close()
        extra = details(rewrites)
        outcomes = tuple(to_outcome(s, raw.get(s.name), labels, extra.get(s.name, "")) for s in specs)
        result = CheckResult(
            run_id=manifest["run_id"],
            verdict=verdict_of(list(outcomes)),
            outcomes=outcomes,
            suite_fingerprint=suite_fingerprint(specs),
            dataset_fingerprint=fingerprint,
            results_path=checks_dir / RESULTS,
            docs_path=checks_dir / DOCS / "index.html",
        )
        write_json(tmp / RESULTS, gx_json)
        write_json(tmp / VERDICT, result.to_json())
    _record(run_dir, manifest, pipeline, result, cfg, runner.name)
    return result


def _validate(
    runner: Engine, run_dir: Path, df: pl.DataFrame | None, how: Derivation, specs: list[Spec], *, docs_dir: Path, text_columns: list[str]
) -> tuple[dict[str, RawResult], dict[str, Any], pl.DataFrame | LabelCounts | None]:
    """GX's results and JSON, and what label checks' lines need: of ``df``, or (None) of the dataset the Spark workers read."""
    suite_name = f"tuneprep_{how.kind}"
    if df is None:
        return validate_run_on_spark(
            runner, run_dir / DATASET, how, specs, docs_dir=docs_dir, text_columns=text_columns, suite_name=suite_name
        )
    frame = how.of(df, per_row=False)
    spark = getattr(runner, "spark", None) if runner.name == "spark" else None
    raw, gx_json = validate(frame, specs, docs_dir=docs_dir, text_columns=text_columns, suite_name=suite_name, spark=spark)
    return raw, gx_json, frame


def _record(run_dir: Path, manifest: dict[str, Any], pipeline: PipelineConfig, result: CheckResult, cfg: ChecksConfig, engine: str) -> None:
    failed = [o.line() for o in result.errors + result.failures]
    section = {
        "verdict": result.verdict,
        "engine": engine,  # where GX evaluated the suite (local: pandas; spark: GX's Spark datasource)
        "suite_fingerprint": result.suite_fingerprint,
        "dataset_fingerprint": result.dataset_fingerprint,
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "expectations": len(result.outcomes),
        "failed": failed,
        "warnings": [o.line() for o in result.warnings],
        "results_path": f"{CHECKS_DIR}/{RESULTS}",
        "verdict_path": f"{CHECKS_DIR}/{VERDICT}",
        "data_docs": f"{CHECKS_DIR}/{DOCS}/index.html",
        "sha256": {f"{CHECKS_DIR}/{n}": file_sha256(run_dir / CHECKS_DIR / n) for n in (RESULTS, VERDICT)},  # signed with the manifest
        "config": cfg.model_dump(mode="json"),
        "outcomes": [asdict(o) for o in result.outcomes],  # for the report; small (one per expectation)
    }
    update_manifest(run_dir, checks=section)
    ledger = run_ledger(run_dir, manifest)
    ledger.record_check(
        result.run_id,
        verdict=result.verdict,
        suite_fp=result.suite_fingerprint,
        dataset_fp=result.dataset_fingerprint,
        failed=failed,
    )


def require_pass(run_dir: Path) -> GateInfo:
    """Return the gate's proof if training may start on ``run_dir``, else raise GateFailed.

    Passes only if the recorded verdict is ``pass`` and ``RUN/dataset/data.parquet``
    still has the fingerprint that was validated.

    Raises:
        GateFailed: one line saying what failed or what changed, and what to do.
        RunError: ``run_dir`` is not a readable run directory.
    """
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)  # not a run directory: a usage error (exit 2), not a failed gate
    _verify_signature(run_dir, manifest)
    checks = manifest.get("checks")
    if not checks:
        raise GateFailed(f"run '{run_dir}' has not been validated; run `tuneprep check {run_dir}` first")
    if checks.get("verdict") != "pass":
        failed = checks.get("failed") or ["see " + str(run_dir / checks.get("verdict_path", CHECKS_DIR))]
        more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
        raise GateFailed(
            f"checks {checks.get('verdict')} for run '{run_dir}': {failed[0]}{more}; fix the data and rerun `tuneprep check {run_dir}`"
        )
    path = run_dir / DATASET
    if not path.is_file():
        raise GateFailed(f"'{path}' is missing; the validated dataset is gone, rerun `tuneprep run` and `tuneprep check`")
    try:
        on_disk = file_fingerprint(path)
    except RunError as e:  # cut short or overwritten: the validated dataset is gone, as when it is missing (exit 1)
        raise GateFailed(f"{e}; the validated dataset is damaged, rerun `tuneprep run` and `tuneprep check`") from None
    validated = str(checks.get("dataset_fingerprint"))
    if on_disk != validated:
        raise GateFailed(
            f"dataset fingerprint mismatch: '{path}' changed since it was validated "
            f"(validated {validated[:12]}, now {on_disk[:12]}); rerun `tuneprep check {run_dir}`"
        )
    return GateInfo(
        run_id=str(manifest.get("run_id")),
        verdict="pass",
        dataset_fingerprint=validated,
        suite_fingerprint=str(checks.get("suite_fingerprint")),
    )


def _verify_signature(run_dir: Path, manifest: dict[str, Any]) -> None:
    """With a signing key set, refuse a manifest (and checks files) changed since tuneprep signed them.

    Raises:
        GateFailed: one line naming what does not verify and what to rerun.
    """
    status = manifest_status(manifest)
    where = f"'{run_dir / 'manifest.json'}'"
    if status == "invalid":
        raise GateFailed(
            f"{where} does not match its signature: it was edited after tuneprep wrote it; rerun `tuneprep run` and `tuneprep check`"
        )
    if status == "other_key":
        raise GateFailed(
            f"{where} was signed with another key than the one set; set that key, or rerun `tuneprep run` and `tuneprep check`"
        )
    if status == "unsigned":
        raise GateFailed(f"{where} is not signed and a signing key is set; rerun `tuneprep run` and `tuneprep check` with `{KEY_ENV}` set")
    if status == "no_key":
        return
    recorded = manifest.get("checks", {}).get("sha256", {}) if isinstance(manifest.get("checks"), dict) else {}
    for rel, digest in recorded.items():
        path = run_dir / rel
        if not path.is_file() or file_sha256(path) != digest:
            raise GateFailed(f"'{path}' changed since `tuneprep check` wrote it; rerun `tuneprep check {run_dir}`")


def _verify_made_by_run(run_dir: Path, manifest: dict[str, Any], df: pl.DataFrame | None) -> str:
    """The dataset's fingerprint (of ``df``, else of the file), if it is the one the run recorded; else GateFailed (it was replaced)."""
    if df is None and not (run_dir / DATASET).is_file():
        raise RunError(f"'{run_dir}' has no curated dataset ({DATASET}); rerun `tuneprep run` on its config")
    fingerprint = file_fingerprint(run_dir / DATASET) if df is None else frame_fingerprint(df)
    recorded = manifest.get("dataset", {}).get("fingerprint") if isinstance(manifest.get("dataset"), dict) else None
    if recorded is not None and recorded != fingerprint:
        raise GateFailed(
            f"'{run_dir / DATASET}' is not the dataset `tuneprep run` made (recorded {str(recorded)[:12]}, now {fingerprint[:12]}); "
            f"rerun `tuneprep run` on the run's config"
        )
    return fingerprint
