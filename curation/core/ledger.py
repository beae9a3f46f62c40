"""The run ledger: an embedded SQLite database recording every run, stage, check and training job.

It lives at the runs root (``runs/ledger.db``) unless ``run.ledger`` names another path,
and is the audit trail ``tuneprep runs`` lists. A run records the pid and host of its
process, so a run whose process died without finishing (killed) can be told from one still
going: ``mark_interrupted`` turns it from ``running`` into ``interrupted``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from curation.core.errors import RunError
from curation.core.integrity import process_alive

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT NOT NULL, run_dir TEXT NOT NULL, started REAL NOT NULL, finished REAL,
  status TEXT NOT NULL, kind TEXT, config_fp TEXT, dataset_fp TEXT, rows_in INTEGER, rows_out INTEGER,
  pid INTEGER, host TEXT, proc_start TEXT,
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
_ADDED = {"runs": ("pid INTEGER", "host TEXT", "proc_start TEXT")}  # columns newer than a ledger made by an older tuneprep


class Ledger:
    """A thin wrapper over one SQLite file; every method commits before returning."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = self._connect()
            try:
                with db:
                    db.executescript(_SCHEMA)
                    for table, columns in _ADDED.items():
                        have = {r["name"] for r in db.execute(f"PRAGMA table_info({table})")}
                        for column in columns:
                            if column.split()[0] not in have:
                                db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
            finally:
                db.close()
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

    def start_run(self, run_id: str, run_dir: Path, *, kind: str, config_fp: str, process: dict[str, Any] | None = None) -> float:
        """Record a run as ``running``; ``process`` (pid, host, proc_start) lets a later start tell if it died."""
        started = time.time()
        proc = process or {}
        self._write(
            "INSERT INTO runs (run_id, run_dir, started, status, kind, config_fp, pid, host, proc_start)"
            " VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?)",
            (run_id, str(run_dir), started, kind, config_fp, proc.get("pid"), proc.get("host"), proc.get("proc_start")),
        )
        return started

    def mark_interrupted(self) -> int:
        """Mark ``interrupted`` every ``running`` run whose process is gone (on this host); returns how many.

        A run on another host, or recorded without a pid (an older tuneprep), is left as it is.
        """
        db = self._connect()
        try:
            running = db.execute("SELECT run_id, started, pid, host, proc_start FROM runs WHERE status = 'running'").fetchall()
        finally:
            db.close()
        dead = [
            (r["run_id"], r["started"])
            for r in running
            if r["pid"] is not None and process_alive(r["pid"], r["host"] or "", r["proc_start"]) is False
        ]
        for run_id, started in dead:
            self._write("UPDATE runs SET status = 'interrupted' WHERE run_id = ? AND started = ? AND status = 'running'", (run_id, started))
        return len(dead)

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
