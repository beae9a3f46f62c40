"""Progress where stderr is not a terminal: start and end lines per stage, heartbeats, timings."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from curation.core.progress import Heartbeat, NullBar, Reporter, null_progress, seconds_text
from tests.data.jsonl_files import write_jsonl

ROWS = [{"text": f"ticket {i % 40} about the billing page", "label": "ab"[i % 2]} for i in range(120)]


def test_run_with_stderr_in_a_file_logs_start_and_end_of_every_stage(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", [*ROWS, b"{broken"])
    config = tmp_path / "p.yaml"
    config.write_text(f"input: {{path: {data}, kind: classification}}\nstages: [normalize, dedup]\n")
    log = tmp_path / "stderr.log"
    with log.open("w") as err:
        subprocess.run(
            [sys.executable, "-m", "curation.cli", "run", str(config), "--out", str(tmp_path / "run")],
            stderr=err,
            stdout=subprocess.PIPE,
            check=True,
        )
    lines = log.read_text().splitlines()
    for name in ("ingest", "normalize", "dedup"):
        starts = [line for line in lines if line.startswith(f"{name}: start, ")]
        ends = [line for line in lines if line.startswith(f"{name}: ") and re.search(r" in \d+(\.\d)? s \(cpu \d+(\.\d)? s\)$", line)]
        assert len(starts) == (name != "ingest") and len(ends) == 1, lines  # ingest: no start line before a one-line input error
        assert not starts or lines.index(starts[0]) < lines.index(ends[0])
    assert "dedup: start, 120 rows in" in lines
    assert any(re.match(r"dedup: 120 in, 40 kept, 80 dropped \(exact_duplicate 80\), 0 quarantined in ", line) for line in lines)
    for stats_path in sorted((tmp_path / "run/stages").glob("*/stats.json")):
        stats = json.loads(stats_path.read_text())
        assert stats["seconds"] >= 0 and stats["cpu_seconds"] >= 0, stats_path


def test_quiet_run_logs_nothing_but_still_records_timings(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", ROWS)
    config = tmp_path / "p.yaml"
    config.write_text(f"input: {{path: {data}, kind: classification}}\nstages: [normalize]\n")
    done = subprocess.run(
        [sys.executable, "-m", "curation.cli", "run", str(config), "--quiet", "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "start" not in done.stderr and "still running" not in done.stderr
    assert "seconds" in json.loads((tmp_path / "run/stages/01-normalize/stats.json").read_text())


def test_rerun_marks_reused_stages_and_keeps_the_computed_time(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", ROWS)
    config = tmp_path / "p.yaml"
    config.write_text(f"input: {{path: {data}, kind: classification}}\nstages: [normalize]\n")
    cmd = [sys.executable, "-m", "curation.cli", "run", str(config), "--out", str(tmp_path / "run")]
    subprocess.run(cmd, capture_output=True, check=True)
    first = json.loads((tmp_path / "run/stages/01-normalize/stats.json").read_text())
    again = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert re.search(r"^normalize: 120 in, 120 kept, .* \[reused, \d+(\.\d)? s\]$", again.stderr, re.M), again.stderr
    assert json.loads((tmp_path / "run/stages/01-normalize/stats.json").read_text())["seconds"] == first["seconds"]


def test_heartbeat_at_most_once_per_interval_naming_the_bar() -> None:
    said: list[str] = []
    reporter = Reporter(quiet=False, log=said.append, tty=False)
    beat = Heartbeat("pii", said.append, interval=30.0, started=100.0)
    reporter._beat = beat
    with reporter.factory("pii: scanning", 200) as bar:
        bar.advance(50)
        assert not beat.tick(110.0)  # too early
        assert beat.tick(131.0)
        assert not beat.tick(150.0)  # 19 s after the last beat
        bar.advance(50)
        assert beat.tick(161.0)
        with reporter.factory("embedding", 10) as inner:
            inner.advance(3)
            assert beat.tick(200.0)
        assert beat.tick(300.0)
    assert said == [
        "pii: still running after 31 s, pii: scanning 50/200 (25%)",
        "pii: still running after 1 min 01 s, pii: scanning 100/200 (50%)",
        "pii: still running after 1 min 40 s, embedding 3/10 (30%)",
        "pii: still running after 3 min 20 s, pii: scanning 100/200 (50%)",
    ]


def test_stage_start_line_and_timing_in_log_mode_only() -> None:
    said: list[str] = []
    with Reporter(quiet=False, log=said.append, tty=False).stage("dedup", "12 rows in") as timing:
        sum(range(1000))
    assert said == ["dedup: start, 12 rows in"] and timing.seconds >= 0 and timing.cpu_seconds >= 0
    said.clear()
    for reporter in (Reporter(quiet=True, log=said.append, tty=False), Reporter(quiet=False, log=said.append, tty=True)):
        with reporter.stage("dedup", "12 rows in"):
            pass
    assert said == []
    with Reporter(quiet=True, log=said.append).factory("x", 3) as bar:
        assert isinstance(bar, NullBar)


def test_one_null_bar() -> None:
    with null_progress("anything", None) as bar:
        assert isinstance(bar, NullBar) and bar.advance(5) is None
    assert [seconds_text(s) for s in (0.42, 43.2, 125.0)] == ["0.4 s", "43 s", "2 min 05 s"]
