"""The CLI contract: one-line errors with exit code 2, help text, README coverage."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from curation.cli import cli
from tests.cli_helpers import one_line_error as _one_line_error
from tests.cli_helpers import run_cli as _run
from tests.data.jsonl_files import write_jsonl

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return str(path)


def test_unknown_config_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["run", _config(tmp_path, "input: {path: x.jsonl, kind: text}\nstages: []\ncheckz: {}\n")], capsys)
    assert code == 2 and "`checkz`: unknown key" in _one_line_error(err)


def test_missing_input_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["run", _config(tmp_path, "input: {path: nope.jsonl, kind: text}\nstages: []\n")], capsys)
    assert code == 2 and "not found; fix `input.path`" in _one_line_error(err)


def test_unsupported_extension(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data.xml").write_text("<a/>")
    code, _, err = _run(["run", _config(tmp_path, "input: {path: data.xml, kind: text}\nstages: []\n")], capsys)
    assert code == 2 and "unsupported extension '.xml'; use one of" in _one_line_error(err)


def test_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data.jsonl").write_text("")
    code, _, err = _run(["run", _config(tmp_path, "input: {path: data.jsonl, kind: text}\nstages: []\n")], capsys)
    assert code == 2 and "is empty; remove it" in _one_line_error(err)


def test_header_only_csv_and_plain_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data.csv").write_text("text\n")
    code, _, err = _run(
        ["run", _config(tmp_path, "input: {path: data.csv, kind: text}\nstages: []\n"), "--out", str(tmp_path / "r")], capsys
    )
    line = _one_line_error(err)  # the file by its masked name (`report.show_paths` shows it)
    assert code == 2 and re.search(r"input has no rows: 'file-[0-9a-f]{8}\.csv' holds only a header row", line), line
    (tmp_path / "raw").mkdir()
    code, _, err = _run(["run", _config(tmp_path, "input: {path: raw, kind: text}\nstages: []\n")], capsys)
    assert code == 2 and "' is a folder but not a saved Hugging Face dataset" in _one_line_error(err)


def test_every_line_broken(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl(tmp_path / "data.jsonl", [b"{nope", b"[1]", {"label": "x"}])
    code, _, err = _run(
        ["run", _config(tmp_path, "input: {path: data.jsonl, kind: text}\nstages: []\n"), "--out", str(tmp_path / "r")], capsys
    )
    line = _one_line_error(err)
    assert code == 2 and "every one of the 3 input rows was quarantined" in line and "quarantine" in line
    assert (tmp_path / "r/stages/00-ingest/quarantine_full.parquet").is_file()


def test_missing_config_and_bad_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["run", str(tmp_path / "none.yaml")], capsys)
    assert code == 2 and "config file" in _one_line_error(err)
    code, _, err = _run(["demo", "--kind", "poetry"], capsys)
    assert code == 2 and "'poetry' is not one of" in _one_line_error(err)


def test_run_prints_run_dir_last(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl(tmp_path / "data.jsonl", [{"text": "hello"}])
    code, out, _ = _run(
        ["run", _config(tmp_path, "input: {path: data.jsonl, kind: text}\nstages: [normalize]\n"), "--out", str(tmp_path / "r"), "-q"],
        capsys,
    )
    assert code == 0 and out.strip().splitlines()[-1] == str(tmp_path / "r")
    code, out, _ = _run(["runs", "--root", str(tmp_path)], capsys)
    header, row = out.strip().splitlines()
    assert code == 0 and header.split()[:3] == ["started", "(UTC)", "run_id"]
    cells = row.split()  # date, time, run_id, status, kind, rows_in, rows_out, checks, dataset, run_dir
    assert cells[3] == "succeeded" and cells[7] == "-" and cells[9] == str(tmp_path / "r")  # not checked yet
    assert _run(["check", str(tmp_path / "r")], capsys)[0] == 0
    code, out, _ = _run(["runs", "--root", str(tmp_path)], capsys)
    assert out.strip().splitlines()[-1].split()[7] == "pass"


def _commands() -> list[str]:
    return sorted(cli.commands)


@pytest.mark.parametrize("name", _commands())
def test_every_command_has_help_with_example(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run([name, "--help"], capsys)
    assert code == 0
    assert "Example:" in out and f"tuneprep {name}" in out


def test_top_level_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["--help"], capsys)
    assert code == 0 and "Example:" in out


def test_every_command_is_documented_in_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"tuneprep ([a-z]+)", readme))
    missing = [c for c in _commands() if c not in documented]
    assert not missing, f"commands missing from README.md: {missing}"


def _made_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    write_jsonl(tmp_path / "data.jsonl", [{"text": "hello"}, {"text": "world"}])
    config = _config(tmp_path, "input: {path: data.jsonl, kind: text}\nstages: [normalize]\n")
    assert _run(["run", config, "--out", str(tmp_path / "r"), "-q"], capsys)[0] == 0
    return tmp_path / "r"


@pytest.mark.parametrize("command", ["check", "train", "report", "clean", "export"])
def test_not_a_run_directory_is_a_usage_error_everywhere(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra = ["--format", "parquet"] if command == "export" else []
    code, _, err = _run([command, str(tmp_path / "nonexist"), *extra], capsys)
    assert code == 2 and "is not a tuneprep run directory" in _one_line_error(err)


def test_damaged_dataset_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _made_run(tmp_path, capsys)
    (run_dir / "dataset/data.parquet").write_text("garbage\n")
    code, _, err = _run(["check", str(run_dir)], capsys)
    line = _one_line_error(err)
    assert code == 2 and "data.parquet' is not a readable parquet file" in line and "rerun `tuneprep run`" in line


@pytest.mark.parametrize("command", ["check", "report", "clean", "train"])
def test_damaged_manifest_is_a_one_line_error(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _made_run(tmp_path, capsys)
    (run_dir / "manifest.json").write_text("{bad\n")
    code, _, err = _run([command, str(run_dir)], capsys)
    line = _one_line_error(err)
    assert code == 2 and "manifest.json' is not valid JSON" in line and "rerun `tuneprep run`" in line


def test_rerun_repairs_a_damaged_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _made_run(tmp_path, capsys)
    (run_dir / "manifest.json").write_text("{bad\n")
    assert _run(["run", str(tmp_path / "p.yaml"), "--out", str(run_dir), "-q"], capsys)[0] == 0
    assert _run(["check", str(run_dir)], capsys)[0] == 0


def test_config_path_that_is_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["run", str(tmp_path)], capsys)
    assert code == 2 and "is a directory" in _one_line_error(err)


def test_inline_salt_is_refused_without_echoing_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, 'input: {path: x.jsonl, kind: text}\nstages: [{pii: {salt: "inlinesalt0123456789"}}]\n')
    code, _, err = _run(["run", config], capsys)
    line = _one_line_error(err)
    assert code == 2 and "the salt never goes in the config" in line and "`salt: {file: PATH}`" in line
    assert "inlinesalt" not in err


def test_bad_regex_is_one_complete_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, "input: {path: x.jsonl, kind: text}\nstages: [{label_audit: {response: {refusal_patterns: ['(']}}}]\n")
    code, _, err = _run(["run", config], capsys)
    assert code == 2 and _one_line_error(err).endswith("is not a valid regex: unclosed group")
