"""Bad inputs and damaged run directories end as a quarantined row or a one-line error (exit 2), never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from curation.cli import main
from tests.data.jsonl_files import write_jsonl

ROOT = Path(__file__).resolve().parents[1]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _config(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------- damaged run directories
@pytest.fixture(scope="module")
def checked_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose checks passed: every command would work on it before it is damaged."""
    base = tmp_path_factory.mktemp("made")
    write_jsonl(base / "data.jsonl", [{"text": f"hello world number {i}"} for i in range(6)])
    # a model that is not there: `train` stops with one line right after the gate instead of training
    config = _config(base, "input: {path: data.jsonl, kind: text}\nstages: [normalize]\ntrain: {model: /nonexistent/model}\n")
    assert main(["run", str(config), "--out", str(base / "r"), "-q"]) == 0
    assert main(["check", str(base / "r")]) == 0
    return base / "r"


def _manifest_edit(change: Any) -> Any:
    def damage(run_dir: Path) -> None:
        path = run_dir / "manifest.json"
        manifest = json.loads(path.read_text())
        change(manifest)
        path.write_text(json.dumps(manifest))

    return damage


def _write(rel: str, text: str) -> Any:
    return lambda run_dir: (run_dir / rel).write_text(text)


DAMAGE = {
    "manifest_without_kind": _manifest_edit(lambda m: m.pop("kind")),
    "manifest_stages_a_string": _manifest_edit(lambda m: m.update(stages="normalize")),
    "manifest_stages_of_strings": _manifest_edit(lambda m: m.update(stages=["normalize"])),
    "manifest_dataset_a_list": _manifest_edit(lambda m: m.update(dataset=[1])),
    "manifest_checks_a_string": _manifest_edit(lambda m: m.update(checks="pass")),
    "manifest_sensitive_paths_a_number": _manifest_edit(lambda m: m.update(sensitive_paths=3)),
    "config_yaml_not_yaml": _write("config.yaml", "input: [unclosed\n"),
    "config_yaml_a_list": _write("config.yaml", "- 1\n- 2\n"),
    "config_yaml_wrong_kind": _write("config.yaml", "input: {path: x.jsonl, kind: poems}\n"),
    "config_yaml_alias_bomb": _write(
        "config.yaml", "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    ),
    "stats_json_broken": _write("stages/01-normalize/stats.json", "{broken"),
    "stats_json_a_list": _write("stages/01-normalize/stats.json", "[1, 2]"),
    "stats_json_books_a_number": _write("stages/01-normalize/stats.json", '{"books": 3, "metrics": [1], "config": "x"}'),
    "manifest_dataset_fingerprint_a_number": _manifest_edit(lambda m: m["dataset"].update(fingerprint=5)),
    "verdict_json_a_list": _write("checks/verdict.json", "[]"),
    "ingest_stats_json_broken": _write("stages/00-ingest/stats.json", "{broken"),
    "checks_results_broken": _write("checks/results.json", "{broken"),
}
COMMANDS = {
    "check": [],
    "report": [],
    "export": ["--format", "parquet"],
    "train": ["--max-steps", "1"],
    "clean": [],
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_run_directory_is_a_one_line_error_for_every_command(
    damage: str, checked_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    for command, extra in COMMANDS.items():
        run_dir = tmp_path / command
        shutil.copytree(checked_run, run_dir)
        DAMAGE[damage](run_dir)
        code, _, err = _run([command, str(run_dir), *extra], capsys)
        if code != 0:  # a command that does not read the damaged part may still work
            line = _one_line_error(err)
            assert code in (1, 2) and line.startswith("error: "), (command, line)
