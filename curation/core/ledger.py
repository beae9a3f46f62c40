"""The run ledger: an embedded SQLite database recording every run, stage, check and training job.

It lives at the runs root (``runs/ledger.db``) unless ``run.ledger`` names another path,
and is the audit trail ``tuneprep runs`` lists.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from curation.core.errors import RunError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT NOT NULL, run_dir TEXT NOT NULL, started REAL NOT NULL, finished REAL,
  status TEXT NOT NULL, kind TEXT, config_fp TEXT, dataset_fp TEXT, rows_in INTEGER, rows_out INTEGER,
  PRIMARY KEY (run_id, started));
CREATE TABLE IF NOT EXISTS stages (
  run_id TEXT NOT NULL, started REAL NOT NULL, idx INTEGER NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
  rows_in INTEGER, kept INTEGER, dropped INTEGER, quarantined INTEGER, seconds REAL, output_fp TEXT);
CREATE TABLE IF NOT EXISTS checks (
  run_id TEXT NOT NULL, at REAL NOT NULL, verdict TEXT NOT NULL, suite_fp TEXT, dataset_fp TEXT, failed TEXT);
CREATE TABLE IF NOT EXISTS training (
  run_id TEXT NOT NULL, at REAL NOT NULL, out_dir TEXT, status TEXT NOT NULL, task TEXT, model TEXT,
  dataset_fp TEXT, metrics TEXT);
"""


class Ledger:
    """A thin wrapper over one SQLite file; every method commits before returning."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._connect() as db:
                db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:  # e.g. "file is not a database"
            raise RunError(
                f"the run ledger '{self.path}' is not a usable SQLite database ({e}); move it aside or set `run.ledger`"
            ) from None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        return db

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        db = self._connect()
        try:
            with db:
                db.execute(sql, params)
        finally:
            db.close()

    def start_run(self, run_id: str, run_dir: Path, *, kind: str, config_fp: str) -> float:
        started = time.time()
        self._write(
            "INSERT INTO runs (run_id, run_dir, started, status, kind, config_fp) VALUES (?, ?, ?, 'running', ?, ?)",
            (run_id, str(run_dir), started, kind, config_fp),
        )
        return started

    def finish_run(
        self, run_id: str, started: float, *, status: str, dataset_fp: str | None, rows_in: int | None, rows_out: int | None
    ) -> None:
        self._write(
            "UPDATE runs SET finished = ?, status = ?, dataset_fp = ?, rows_in = ?, rows_out = ? WHERE run_id = ? AND started = ?",
            (time.time(), status, dataset_fp, rows_in, rows_out, run_id, started),
        )

    def record_stage(
        self, run_id: str, started: float, idx: int, name: str, *, status: str, books: dict[str, int], seconds: float, output_fp: str
    ) -> None:
        self._write(
            "INSERT INTO stages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                started,
                idx,
                name,
                status,
                books["rows_in"],
                books["kept"],
                books["dropped"],
                books["quarantined"],
                seconds,
                output_fp,
            ),
        )

    def record_check(self, run_id: str, *, verdict: str, suite_fp: str, dataset_fp: str, failed: list[str]) -> None:
        self._write(
            "INSERT INTO checks VALUES (?, ?, ?, ?, ?, ?)", (run_id, time.time(), verdict, suite_fp, dataset_fp, json.dumps(failed))
        )

    def record_training(
        self, run_id: str, *, out_dir: Path, status: str, task: str, model: str, dataset_fp: str, metrics: dict[str, Any]
    ) -> None:
        self._write(
            "INSERT INTO training VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, time.time(), str(out_dir), status, task, model, dataset_fp, json.dumps(metrics, default=str)),
        )

    def rows(self, table: str, *, run_id: str | None = None) -> list[dict[str, Any]]:
        """All rows of ``table`` (runs, stages, checks, training), oldest first."""
        assert table in ("runs", "stages", "checks", "training")
        order = "started" if table in ("runs", "stages") else "at"
        where, params = ("WHERE run_id = ?", (run_id,)) if run_id else ("", ())
        db = self._connect()
        try:
            return [dict(r) for r in db.execute(f"SELECT * FROM {table} {where} ORDER BY {order}", params)]
        finally:
            db.close()


def ledger_path_for(run_dir: Path, configured: str | None = None) -> Path:
    """The ledger a run records to: ``configured`` if given, else ``<runs root>/ledger.db``."""
    return Path(configured) if configured else Path(run_dir).resolve().parent / "ledger.db"


def run_ledger(run_dir: Path, manifest: dict[str, Any]) -> Ledger:
    """The ledger of an existing run: the one its manifest records (`run.ledger`), else the runs root's."""
    return Ledger(ledger_path_for(run_dir, manifest.get("ledger")))
