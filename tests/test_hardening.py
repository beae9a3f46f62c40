"""Bad inputs and damaged run directories end as a quarantined row or a one-line error (exit 2), never a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from curation.cli import main
from tests.cli_helpers import one_line_error as _one_line_error
from tests.cli_helpers import run_cli as _run
from tests.data.jsonl_files import write_jsonl

ROOT = Path(__file__).resolve().parents[1]


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
        "config.yaml",
        "a: &a [x,x,x,x,x,x,x,x,x]\n"
        + "".join(f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)),
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


# ---------------------------------------------------------------------------- bad inputs
def _classification(tmp_path: Path, data: str, extra: str = "") -> Path:
    return _config(tmp_path, f"input: {{path: {data}, kind: classification}}\nstages: [normalize]\n{extra}")


def _quarantine(run_dir: Path) -> pl.DataFrame:
    return pl.read_parquet(run_dir / "quarantine.parquet")


def test_deeply_nested_json_line_is_quarantined_and_the_run_goes_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deep = '{"text": "hi", "label": "a", "meta": ' + "[" * 5000 + "]" * 5000 + "}"
    (tmp_path / "d.jsonl").write_text('{"text": "fine", "label": "a"}\n' + deep + '\n{"text": "also fine", "label": "b"}\n')
    code, _, err = _run(["run", str(_classification(tmp_path, "d.jsonl")), "--out", str(tmp_path / "r"), "-q"], capsys)
    assert code == 0 and "Traceback" not in err
    q = _quarantine(tmp_path / "r")
    assert q.height == 1 and "nested too deeply" in q["error"][0]


@pytest.mark.parametrize("where", ["value", "key", "id"])
def test_lone_surrogate_in_metadata_is_quarantined(where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = {"value": '"meta": "x\\udc80y"', "key": '"me\\udc80ta": "x"', "id": '"id": "r\\udc801"'}[where]
    (tmp_path / "s.jsonl").write_text('{"text": "fine", "label": "a"}\n{"text": "hi", "label": "a", ' + bad + "}\n")
    code, _, err = _run(["run", str(_classification(tmp_path, "s.jsonl")), "--out", str(tmp_path / "r"), "-q"], capsys)
    assert code == 0 and "Traceback" not in err
    q = _quarantine(tmp_path / "r")
    assert q.height == 1 and "not valid UTF-8" in q["error"][0]


def _as_nobody(argv: list[str]) -> tuple[int, str]:
    """``main(argv)`` in a forked child that runs as `nobody` (root reads any file, whatever its mode)."""
    import contextlib
    import io
    import warnings

    r, w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # polars warns that a fork may deadlock its thread pool; the child reads no data
        pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        code, err = 99, io.StringIO()
        try:
            os.close(r)
            os.setgid(65534)
            os.setuid(65534)
            with contextlib.redirect_stderr(err):
                code = main(argv)
        finally:
            os.write(w, json.dumps([code, err.getvalue()]).encode())
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    code, err = json.loads(data)
    return code, err


def test_unreadable_input_file_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Mode 000: as root (which reads anything) the command runs in a child demoted to `nobody`."""
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="tuneprep-unreadable-"))  # not under pytest's root-only folder
    try:
        base.chmod(0o777)
        write_jsonl(base / "secret_jane@example.com.jsonl", [{"text": "hello", "label": "a"}])
        (base / "secret_jane@example.com.jsonl").chmod(0)
        config = _classification(base, "'secret_jane@example.com.jsonl'")
        config.chmod(0o644)
        argv = ["run", str(config), "--out", str(base / "r"), "-q"]
        code, err = _as_nobody(argv) if os.geteuid() == 0 else _run(argv, capsys)[::2]
    finally:
        shutil.rmtree(base, ignore_errors=True)
    line = _one_line_error(err)
    assert code == 2 and "cannot be read" in line and "jane" not in line, line  # the file by its masked name


def test_unwritable_out_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl(tmp_path / "data.jsonl", [{"text": "hello", "label": "a"}])
    (tmp_path / "a_file").write_text("not a folder")
    code, _, err = _run(["run", str(_classification(tmp_path, "data.jsonl")), "--out", str(tmp_path / "a_file" / "r"), "-q"], capsys)
    assert code == 2 and "cannot access" in _one_line_error(err)


def test_ledger_that_is_not_sqlite_is_one_line_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl(tmp_path / "data.jsonl", [{"text": "hello", "label": "a"}])
    (tmp_path / "ledger.db").write_text("this is not a database, just text " * 100)
    config = _classification(tmp_path, "data.jsonl", "run: {ledger: ledger.db}\n")
    code, _, err = _run(["run", str(config), "--out", str(tmp_path / "r"), "-q"], capsys)
    line = _one_line_error(err)
    assert code == 2 and "ledger.db' is not a usable SQLite database" in line
    code, _, err = _run(["runs", "--ledger", str(tmp_path / "ledger.db")], capsys)
    assert code == 2 and "ledger.db' is not a usable SQLite database" in _one_line_error(err)


ALIAS_BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize("where", ["top", "custom_kwargs"])
def test_yaml_alias_bomb_is_refused_at_load(where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if where == "top":
        text = ALIAS_BOMB
    else:
        lines = ALIAS_BOMB.replace("\n", "\n    ").rstrip()
        text = (
            "input: {path: data.jsonl, kind: text}\nstages: [normalize]\nchecks:\n  custom:\n"
            f"  - type: ExpectColumnValuesToNotBeNull\n    kwargs:\n      column: text\n      bomb:\n        {lines.replace(chr(10) + '    ', chr(10) + '        ')}\n"
        )
    code, _, err = _run(["run", str(_config(tmp_path, text))], capsys)
    line = _one_line_error(err)
    assert code == 2 and "alias" in line


def test_broken_run_config_is_the_same_one_line_error_for_check_export_and_train(
    checked_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    lines = {}
    for command, extra in (("check", []), ("export", ["--format", "parquet"]), ("train", [])):
        run_dir = tmp_path / "r"
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.copytree(checked_run, run_dir)
        (run_dir / "config.yaml").write_text("run: {seed: [not, a, number]}\ninput: {path: x.jsonl, kind: text}\n")
        code, _, err = _run([command, str(run_dir), *extra], capsys)
        assert code == 2, (command, err)
        lines[command] = _one_line_error(err)
    assert len(set(lines.values())) == 1, lines
    assert "config.yaml' is not a valid run config" in lines["check"] and "run.seed" in lines["check"]


def test_recursive_glob_through_a_symlink_loop_reads_each_file_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    write_jsonl(tmp_path / "d" / "sub" / "a.jsonl", [{"text": "hello", "label": "a"}, {"text": "world", "label": "b"}])
    (tmp_path / "d" / "sub" / "loop").symlink_to(tmp_path / "d")
    code, _, _ = _run(["run", str(_classification(tmp_path, "'d/**/*.jsonl'")), "--out", str(tmp_path / "r"), "-q"], capsys)
    assert code == 0
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert len(manifest["inputs"]) == 1 and manifest["stages"][0]["books"]["rows_in"] == 2


def test_duplicated_csv_header_is_one_line_naming_the_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d.csv").write_text("text,label,text\nhello,a,world\n")
    code, _, err = _run(["run", str(_classification(tmp_path, "d.csv")), "--out", str(tmp_path / "r"), "-q"], capsys)
    assert code == 2 and "names the column `text` twice" in _one_line_error(err)


def test_cr_only_line_endings_are_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d.jsonl").write_bytes(
        b'{"text": "hello", "label": "a"}\r{"text": "world", "label": "b"}\r{"text": "again", "label": "a"}\r'
    )
    code, _, _ = _run(["run", str(_classification(tmp_path, "d.jsonl")), "--out", str(tmp_path / "r"), "-q"], capsys)
    assert code == 0
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["dataset"]["rows"] == 3


def test_utf16_input_is_one_line_and_all_quarantined_input_gives_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d.jsonl").write_bytes('{"text": "hello", "label": "a"}\n{"text": "world", "label": "b"}\n'.encode("utf-16"))
    code, _, err = _run(["run", str(_classification(tmp_path, "d.jsonl")), "--out", str(tmp_path / "r"), "-q"], capsys)
    assert code == 2 and "is encoded as UTF-16" in _one_line_error(err)
    write_jsonl(tmp_path / "e.jsonl", [{"text": "hello"}, {"text": "world"}])
    code, _, err = _run(["run", str(_classification(tmp_path, "e.jsonl")), "--out", str(tmp_path / "r2"), "-q"], capsys)
    line = _one_line_error(err)
    assert code == 2 and "was quarantined (2 of them: missing required field `label`" in line


def test_truncated_dataset_fails_the_gate_like_a_missing_one(checked_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    codes = {}
    for damage in ("missing", "truncated"):
        run_dir = tmp_path / damage
        shutil.copytree(checked_run, run_dir)
        data = run_dir / "dataset" / "data.parquet"
        if damage == "missing":
            data.unlink()
        else:
            data.write_bytes(data.read_bytes()[:100])
        code, _, err = _run(["export", str(run_dir), "--format", "parquet"], capsys)
        _one_line_error(err)
        codes[damage] = code
    assert codes == {"missing": 1, "truncated": 1}


def test_one_huge_row_gives_dedup_a_bounded_number_of_shingles() -> None:
    """A 50 MB row would need gigabytes of window arrays: its shingles are capped at `MAX_WINDOWS`."""
    import numpy as np

    from curation.stages.dedup.minhash import MAX_WINDOWS, reference_shingles, windows

    starts, ends, counts = windows(np.array([0, 3, 50_000_000]), 5)
    assert counts.tolist() == [1, MAX_WINDOWS] and len(starts) == len(ends) == 1 + MAX_WINDOWS
    assert len(reference_shingles("x" * (MAX_WINDOWS + 50), "char", 5)) == MAX_WINDOWS


def test_fields_mapping_to_a_missing_optional_column_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl(tmp_path / "d.jsonl", [{"text": "hello", "label": "a", "rater": "ann_1"}])
    config = _config(tmp_path, "input: {path: d.jsonl, kind: classification, fields: {annotator: reviewer}}\nstages: [normalize]\n")
    code, _, err = _run(["run", str(config), "--out", str(tmp_path / "r"), "-q"], capsys)
    assert code == 2 and "`input.fields.annotator` names column `reviewer`, which no input record has" in _one_line_error(err)


def test_config_errors_never_echo_values_from_the_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret, phone = "forwarded by ops.lead@sourceleak.net", "+1 415 555 0199"
    rows = [{"text": f"ticket {i}", "label": "a", "source": [secret, phone, "web"][i % 3]} for i in range(9)]
    write_jsonl(tmp_path / "d.jsonl", rows)
    balance = "{balance: {facets: [source], target: {facet: source, shares: {web: 1}}}}"
    config = _config(tmp_path, f"input: {{path: d.jsonl, kind: classification}}\nstages: [{balance}]\n")
    code, _, err = _run(["run", str(config), "--out", str(tmp_path / "r"), "-q"], capsys)
    line = _one_line_error(err)
    assert code == 2 and "`balance.target.shares` does not name 2 value(s)" in line
    assert "sourceleak" not in line and "555" not in line and "masked:" in line
    config = _config(tmp_path, "input: {path: d.jsonl, kind: classification}\nchecks: {severity: {'ops.lead@sourceleak.net': off}}\n")
    code, _, err = _run(["run", str(config), "--out", str(tmp_path / "r2"), "-q"], capsys)
    assert code == 2 and "sourceleak" not in err and "checks.severity.masked:" in _one_line_error(err)
