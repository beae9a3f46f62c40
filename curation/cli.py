"""The `tuneprep` command line: every command is a thin call into the library.

This is the one module that imports `checks` and `training` (lazily, inside commands),
and the one place where library errors become a one-line message and an exit code:
0 success, 1 the data failed a check or a gate, 2 a usage or config error.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from checks.formats import FORMATS as EXPORT_FORMATS  # light: names only, no polars
from curation.core.errors import TuneprepError

QUIET = click.option("--quiet", "-q", is_flag=True, help="No progress bars or stage summaries.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tuneprep")
def cli() -> None:
    """Prepare data for fine-tuning, prove it is fit to use, then fine-tune on it.

    \b
    Example:
      tuneprep demo                      # messy demo corpus -> curated, checked, reported
      tuneprep run pipeline.yaml         # curate your data; prints the run directory
      tuneprep check runs/<run-id>       # the validation gate (exit 1 on failure)
      tuneprep train runs/<run-id>       # fine-tune once the checks pass
    """


@cli.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("runs/demo"),
    show_default=True,
    help="Folder for the demo data, configs and runs.",
)
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(["classification", "instruction", "ratings", "text"]),
    help="Only these corpora (repeatable); default all.",
)
@click.option("--scale", type=click.FloatRange(0.01, 100), default=1.0, show_default=True, help="Multiply the demo corpus sizes.")
@QUIET
def demo(out: Path, kinds: tuple[str, ...], scale: float, quiet: bool) -> None:
    """Generate the messy demo corpora, then curate, check and report each one.

    Ends with the path of each run's report; exits 1 if a run fails its checks.

    \b
    Example:
      tuneprep demo --out /tmp/demo --kind classification
    """
    from checks.gate import run_checks
    from curation.core.config import load_config
    from curation.core.errors import GateFailed
    from curation.core.runner import run_pipeline
    from curation.demo import DEMO_KINDS, write_demo
    from curation.report import build_report

    configs = write_demo(out, kinds=kinds or DEMO_KINDS, scale=scale)
    failed = []
    for kind, path in configs.items():
        click.echo(f"== {kind} ==", err=True)
        result = run_pipeline(load_config(path), out_dir=out / "runs" / kind, quiet=quiet)
        checked = run_checks(result.run_dir)
        for line in checked.lines:
            click.echo(line, err=True)
        failed += [kind] if checked.verdict != "pass" else []
        click.echo(f"{kind}: {result.summary()}; checks {checked.verdict}")
        click.echo(f"{kind}: report {build_report(result.run_dir)}")
    if failed:
        raise GateFailed(f"demo runs failed their checks: {', '.join(failed)}; see the lines above")


@cli.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run directory (default runs/<config name>-<fingerprint>).")
@click.option("--engine", type=click.Choice(["local", "spark"]), default=None, help="Where stages run (default: `run.engine`, local).")
@click.option("--spark-master", default=None, help="Spark master for --engine spark, e.g. local[2] or yarn (docs/spark.md).")
@click.option("--spark-remote", default=None, help="Spark Connect server for --engine spark, e.g. sc://host:15002.")
@QUIET
def run(config: Path, out: Path | None, engine: str | None, spark_master: str | None, spark_remote: str | None, quiet: bool) -> None:
    """Run the curation pipeline described by CONFIG (YAML); the last line printed is the run directory.

    A rerun of the same config on the same inputs resumes: finished stages are reused.

    \b
    Example:
      tuneprep run pipeline.yaml --out runs/tickets-2026-11
      tuneprep run pipeline.yaml --engine spark --spark-master 'local[2]'
    """
    from curation.core.config import load_config
    from curation.core.engines import engine_for
    from curation.core.ingest import is_uri, uri_needs_spark
    from curation.core.runner import run_pipeline
    from curation.report import build_report

    cfg = load_config(config)
    if engine is not None:
        cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"engine": engine})})
    if is_uri(cfg.input.path) and cfg.run.engine != "spark":
        raise uri_needs_spark(cfg.input.path, show_paths=cfg.report.show_paths)
    runner = engine_for(cfg.run.engine, spark_master=spark_master, spark_remote=spark_remote)
    try:
        if is_uri(cfg.input.path):
            runner.spark  # type: ignore[attr-defined]  # noqa: B018  (started now: Spark reads the input)
        result = run_pipeline(cfg, out_dir=out, config_name=config.stem, quiet=quiet, engine=runner)
    finally:
        runner.close()
    click.echo(f"{result.summary()}; dataset {result.dataset_fingerprint[:12]}", err=True)
    click.echo(f"report: {build_report(result.run_dir)}", err=True)
    click.echo(str(result.run_dir))


@cli.command()
@click.option("--root", type=click.Path(path_type=Path), default=Path("runs"), show_default=True, help="The runs root holding ledger.db.")
@click.option("--ledger", type=click.Path(path_type=Path), default=None, help="A ledger file other than ROOT/ledger.db.")
def runs(root: Path, ledger: Path | None) -> None:
    """List the runs recorded in the ledger, newest last.

    A run's checks column is the verdict of the last check of its dataset (matched by
    fingerprint, so a rerun that made the same dataset shows it too); a run whose process
    died before finishing is marked `interrupted`.

    \b
    Example:
      tuneprep runs --root runs
    """
    from curation.core.ledger import Ledger

    path = ledger or root / "ledger.db"
    if not path.is_file():
        raise click.UsageError(f"no ledger at '{path}'; run `tuneprep run` first or pass `--ledger`")
    ledger_db = Ledger(path)
    ledger_db.mark_interrupted()
    checks = ledger_db.rows("checks")
    click.echo(
        f"{'started (UTC)':16}  {'run_id':32} {'status':10} {'kind':15} {'rows_in':>8} {'rows_out':>8}  {'checks':7} dataset       run_dir"
    )
    for r in ledger_db.rows("runs"):
        # the last check of this run's dataset, whenever it ran: a rerun that made the same dataset shares it
        verdicts = [c["verdict"] for c in checks if r["dataset_fp"] and c["run_id"] == r["run_id"] and c["dataset_fp"] == r["dataset_fp"]]
        started = time.strftime("%Y-%m-%d %H:%M", time.gmtime(r["started"]))
        click.echo(
            f"{started:16}  {r['run_id']:32} {r['status']:10} {r['kind'] or '':15} {r['rows_in'] or 0:>8} {r['rows_out'] or 0:>8}  "
            f"{verdicts[-1] if verdicts else '-':7} {(r['dataset_fp'] or '')[:12]:13} {r['run_dir']}"
        )


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--engine", type=click.Choice(["local", "spark"]), default=None, help="Where GX validates (default: the run's engine).")
@click.option("--spark-master", default=None, help="Spark master for --engine spark, e.g. local[2] or yarn (docs/spark.md).")
@click.option("--spark-remote", default=None, help="Spark Connect server for --engine spark, e.g. sc://host:15002.")
def check(run_dir: Path, engine: str | None, spark_master: str | None, spark_remote: str | None) -> None:
    """Validate a run's curated dataset: the gate to training (exit 0 pass, 1 fail).

    Prints one line per expectation that did not pass (FAIL blocks, WARN is reported),
    writes GX results and Data Docs under RUN/checks/ and records the verdict with the
    suite and dataset fingerprints in the manifest and the ledger. A run made with
    `engine: spark` is validated on Spark (GX's Spark datasource), with the same results.

    \b
    Example:
      tuneprep check runs/tickets-2026-11
      tuneprep check runs/tickets-2026-11 --engine spark --spark-master 'local[2]'
    """
    from checks.gate import run_checks
    from curation.core.config import read_run_config
    from curation.core.engines import engine_for
    from curation.core.errors import GateFailed
    from curation.core.integrity import unsigned_note

    name = engine or (read_run_config(run_dir).run.engine if spark_master or spark_remote else None)
    runner = engine_for(name, spark_master=spark_master, spark_remote=spark_remote) if name else None  # type: ignore[arg-type]
    try:
        result = run_checks(run_dir, engine=runner)
    finally:
        if runner is not None:
            runner.close()
    for line in result.lines:
        click.echo(line, err=True)
    if note := unsigned_note():
        click.echo(note, err=True)
    if result.verdict != "pass":
        counts = f"{len(result.failures)} critical failed, {len(result.errors)} errored"
        raise GateFailed(f"checks {result.verdict}: {counts}; details in {result.docs_path}")
    click.echo(result.summary)


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--format", "fmt", required=True, type=click.Choice(EXPORT_FORMATS), help="Target format (docs/exports.md).")
@click.option("--validation", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True, help="Validation share.")
@click.option("--seed", type=int, default=None, help="Split seed (default: the run's `run.seed`).")
@click.option("--max-tokens", type=click.IntRange(1), default=None, help="Override the target's per-record token budget.")
@click.option("--unvalidated", is_flag=True, help="Export even though the gate refuses (marked unvalidated).")
def export(run_dir: Path, fmt: str, validation: float, seed: int | None, max_tokens: int | None, unvalidated: bool) -> None:
    """Export a validated run to RUN/dataset/exports/FORMAT/ with a seeded train/validation split.

    Refuses a run whose checks did not pass or whose dataset changed since, and records
    over the target's limits (ids named). docs/exports.md lists each format's limits.

    \b
    Example:
      tuneprep export runs/tickets-2026-11 --format bedrock-conversation
    """
    from checks.exports import export as run_export

    result = run_export(run_dir, fmt, validation=validation, seed=seed, max_tokens=max_tokens, unvalidated=unvalidated)
    if result.warning:
        click.echo(f"WARNING: exported UNVALIDATED data; the gate refused it: {result.warning}", err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    rows = ", ".join(f"{n} {split}" for split, n in result.rows.items())
    click.echo(f"{fmt}: {rows} rows ({result.verdict}) -> {result.path}", err=True)
    click.echo(str(result.path))


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--stage", default=None, help="Only this stage (name, e.g. dedup, or folder, e.g. 02-dedup).")
@click.option("--id", "row_id", default=None, help="Follow one row id through every stage.")
@click.option("--reason", default=None, help="Rows dropped with this reason (e.g. near_duplicate).")
@click.option("--finding", default=None, help="Rows flagged with this finding (e.g. EMAIL_ADDRESS, mislabeled).")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True, help="At most this many rows.")
@click.option("--json", "as_json", is_flag=True, help="JSON on stdout instead of a table.")
def show(run_dir: Path, stage: str | None, row_id: str | None, reason: str | None, finding: str | None, limit: int, as_json: bool) -> None:
    """Show why rows were dropped, flagged or quarantined: reason, finding, what a duplicate duplicated.

    Text comes from each stage's own files: raw before the PII stage, scrubbed from it on.

    \b
    Example:
      tuneprep show runs/tickets-2026-11 --reason near_duplicate
      tuneprep show runs/tickets-2026-11 --id t-0042 --json
    """
    from curation.show import Query, known_values, print_table, show_rows, to_json

    if sum(v is not None for v in (row_id, reason, finding)) > 1:
        raise click.UsageError("pass at most one of `--id`, `--reason`, `--finding`")
    entries = show_rows(run_dir, Query(stage=stage, id=row_id, reason=reason, finding=finding, limit=limit))
    if as_json:
        click.echo(to_json(run_dir, entries))
    elif entries:
        print_table(entries)
    if not entries:
        known = known_values(run_dir)
        click.echo(
            f"no rows match; drop reasons in this run: {', '.join(known['reasons']) or 'none'}; findings: {', '.join(known['findings']) or 'none'}",
            err=True,
        )


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
def report(run_dir: Path) -> None:
    """Write the compliance report and dataset card of a run into RUN/report/.

    report.html (one self-contained page to review and sign), report.md, report.json
    (every number the page shows) and dataset_card.md (Hugging Face card, pre-filled).
    Reads only the run's manifest, stage stats and check results; run it again after
    `tuneprep check` to include the validation verdict. Prints the report's path.

    \b
    Example:
      tuneprep report runs/tickets-2026-11
    """
    from curation.report import build_report

    click.echo(str(build_report(run_dir)))


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--config", "config", type=click.Path(path_type=Path), default=None, help="YAML of `train:` options (default: the run's own)."
)
@click.option("--max-steps", type=click.IntRange(1), default=None, help="Optimizer steps (default: `train.max_steps`, else one pass).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output folder (default RUN/training/<task>-<method>).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in the output folder.")
@click.option("--no-eval", is_flag=True, help="Skip the held-out evaluation before and after training.")
@QUIET
def train(run_dir: Path, config: Path | None, max_steps: int | None, out: Path | None, resume: bool, no_eval: bool, quiet: bool) -> None:
    """Fine-tune on RUN's curated dataset; refuses (exit 1) unless its checks passed and the data is unchanged.

    Writes the adapter or full weights, metrics.json, the resolved config and a model
    card naming the run id and dataset fingerprint (docs/training.md). Prints the output folder.

    \b
    Example:
      tuneprep train runs/tickets-2026-11 --max-steps 40
      tuneprep train runs/tickets-2026-11 --config train.yaml --resume
    """
    from training.api import train as train_run
    from training.outputs import describe_balance

    def notice(line: str) -> None:
        click.echo(line, err=True)

    say = None if quiet else notice
    result = train_run(
        run_dir, config=config, max_steps=max_steps, out_dir=out, resume=resume, run_eval=not no_eval, quiet=quiet, log=say, notice=notice
    )
    after = ", ".join(f"{k} {v:.4g}" for k, v in result.metrics["eval_after"].items() if isinstance(v, float))
    balance = describe_balance(result.metrics["data"]["balance"])
    click.echo(
        f"trained {result.task} ({result.method}) on dataset {result.dataset_fingerprint[:12]}: {after or 'no eval split'}"
        + (f"; balance: {balance}" if balance else ""),
        err=True,
    )
    click.echo(str(result.out_dir))


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
def clean(run_dir: Path) -> None:
    """Remove a run's sensitive intermediates (raw-text stage outputs, quarantine); keep the audit trail.

    Also removes temporary files and folders a killed command left (they can hold raw
    text), and works on a run killed before it wrote its manifest.

    \b
    Example:
      tuneprep clean runs/tickets-2026-11
    """
    from curation.core.rundir import clean_sensitive

    removed = clean_sensitive(run_dir)
    click.echo(f"removed {len(removed)} sensitive files from {run_dir}")


def os_error_line(e: OSError) -> str:
    """One line for an OSError: what failed on which path (an input file by its masked name), and what to check."""
    from curation.core.masking import mask_path

    name = e.filename if e.filename is not None else ""
    shown = mask_path(name) if Path(str(name)).suffix.lower() in (".jsonl", ".ndjson", ".json", ".csv", ".parquet") else name
    where = f" '{shown}'" if name != "" else ""
    return f"cannot access{where}: {(e.strerror or str(e)).lower()}; check that the path exists, is writable and has space"


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the CLI and turns errors into one line on stderr."""
    try:
        cli.main(args=argv, prog_name="tuneprep", standalone_mode=False)
    except TuneprepError as e:
        for line in e.lines():
            click.echo(f"error: {line}", err=True)
        return e.exit_code
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        return 2
    except OSError as e:  # the machine's, not the data's: a folder that cannot be written, a file that cannot be read
        click.echo(f"error: {os_error_line(e)}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
