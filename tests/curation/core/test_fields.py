"""`input.fields`: renames, joins of several columns, and one-line errors for wrong mappings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from curation.cli import main
from curation.core.config import parse_config
from curation.core.errors import ConfigError, InputError
from curation.core.ingest import ingest
from curation.core.runner import run_pipeline
from tests.data.alpaca_rows import alpaca_rows
from tests.data.jsonl_files import write_jsonl

ROWS = [
    {"instruction": "Find the largest value in the array.", "input": "[3, 5, 20, 1]", "output": "20"},
    {"instruction": "Give three tips for staying healthy.", "input": "", "output": "Eat well, move, sleep."},
    {"instruction": "Summarize the text.", "input": None, "output": "A short summary."},
    {"instruction": "Translate to French.", "input": "   ", "output": "Bonjour."},
]
JOIN = {"prompt": ["instruction", "input"], "completion": "output"}


def _config(tmp_path: Path, fields: Any, **input_options: Any) -> Any:
    data = write_jsonl(tmp_path / "alpaca.jsonl", ROWS)
    return parse_config({"input": {"path": str(data), "kind": "instruction", "fields": fields, **input_options}, "stages": []})


def test_a_list_joins_the_non_empty_values_in_order(tmp_path: Path) -> None:
    data = ingest([write_jsonl(tmp_path / "a.jsonl", ROWS)], "instruction", JOIN)  # type: ignore[arg-type]
    assert data.quarantine.is_empty() and data.warnings == []
    assert data.rows["prompt"].to_list() == [
        "Find the largest value in the array.\n\n[3, 5, 20, 1]",
        "Give three tips for staying healthy.",
        "Summarize the text.",
        "Translate to French.",
    ]
    assert data.rows.columns == ["id", "prompt", "completion"]  # the joined columns are used up, not carried


def test_the_separator_is_an_option(tmp_path: Path) -> None:
    cfg = _config(tmp_path, JOIN, join_separator="\n\nInput: ")
    rows = run_pipeline(cfg, out_dir=tmp_path / "run", quiet=True).run_dir / "dataset/data.parquet"
    assert pl.read_parquet(rows)["prompt"][0] == "Find the largest value in the array.\n\nInput: [3, 5, 20, 1]"


def test_a_row_whose_joined_columns_are_all_empty_is_quarantined(tmp_path: Path) -> None:
    rows = [*ROWS, {"instruction": " ", "input": None, "output": "x"}, {"instruction": 3, "input": "y", "output": "z"}]
    data = ingest([write_jsonl(tmp_path / "a.jsonl", rows)], "instruction", JOIN)  # type: ignore[arg-type]
    assert data.quarantine["error"].to_list() == [
        "field `prompt` (joined from `instruction`, `input`) is empty in this row; give every row a `prompt`",
        "field `instruction` (joined into `prompt`) must be a string, got number",
    ]


def test_a_mapping_to_a_missing_column_names_it_and_the_columns_there_are(tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        run_pipeline(_config(tmp_path, {"prompt": ["instruction", "context"], "completion": "output"}), out_dir=tmp_path / "r")
    assert str(e.value) == (
        "`input.fields.prompt` names column `context`, which no input record has; the input's columns are `instruction`, `input`, `output`"
    )
    with pytest.raises(InputError, match="`input.fields.completion` names column `answer`"):
        ingest([write_jsonl(tmp_path / "a.jsonl", ROWS)], "instruction", {"prompt": "instruction", "completion": "answer"})


def test_a_column_present_in_some_rows_only_quarantines_the_others(tmp_path: Path) -> None:
    rows = [{"text": "x", "category": "a"}, {"text": "y"}]
    data = ingest([write_jsonl(tmp_path / "a.jsonl", rows)], "classification", {"label": "category"})
    assert data.rows.height == 1 and data.quarantine["error"].to_list() == ["missing required field `label` (mapped from `category`)"]


@pytest.mark.parametrize(
    ("kind", "fields", "problem"),
    [
        (
            "instruction",
            {"promt": "instruction"},
            "`promt` is not a column of the `instruction` kind; map source columns onto one of id, messages, prompt, completion, system",
        ),
        ("classification", {"label": ["a", "b"]}, "`label`: only text columns can join several source columns; map one column onto it"),
        ("instruction", {"prompt": []}, "`prompt`: list the source columns to join, each once"),
        ("instruction", {"prompt": ["a", "a"]}, "`prompt`: list the source columns to join, each once"),
    ],
)
def test_unknown_canonical_names_and_bad_joins_are_config_errors(kind: str, fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"input": {"path": "x.jsonl", "kind": kind, "fields": fields}, "stages": []})
    assert e.value.lines() == [f"config error: `input.fields`: value error, {problem}"]


def test_a_text_column_left_out_is_a_warning_in_the_log_without_values(tmp_path: Path) -> None:
    lines: list[str] = []
    cfg = _config(tmp_path, {"prompt": "instruction", "completion": "output"})
    result = run_pipeline(cfg, out_dir=tmp_path / "run", log=lines.append)
    warnings = [line for line in lines if line.startswith("ingest: warning:")]
    assert warnings == [
        "ingest: warning: column `input` holds text in 1 of 4 rows but is not part of the `prompt_completion` form: it is carried "
        "as metadata, not trained on or exported; to train on it, join it: `fields: {prompt: [instruction, input]}`"
    ]
    assert "[3, 5, 20, 1]" not in "\n".join(lines)
    stats = json.loads((result.run_dir / "stages/00-ingest/stats.json").read_text())
    assert stats["metrics"]["warnings"] == [w.removeprefix("ingest: warning: ") for w in warnings]
    rerun: list[str] = []
    run_pipeline(cfg, out_dir=tmp_path / "run", log=rerun.append)  # reused ingest: the warning is said again
    assert [line for line in rerun if "warning" in line] == warnings


def test_metadata_columns_are_not_warned_about(tmp_path: Path) -> None:
    rows = [{"prompt": f"q{i}", "completion": "a", "source": "web", "language": "en", "meta": {"k": i}} for i in range(5)]
    assert ingest([write_jsonl(tmp_path / "a.jsonl", rows)], "instruction", {}).warnings == []


def test_cli_run_with_a_missing_column_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl(tmp_path / "alpaca.jsonl", ROWS)
    config = tmp_path / "p.yaml"
    config.write_text(
        "input:\n  path: alpaca.jsonl\n  kind: instruction\n  fields: {prompt: [instruction, inputs], completion: output}\nstages: []\n"
    )
    code = main(["run", str(config), "--out", str(tmp_path / "r"), "-q"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert (
        "`input.fields.prompt` names column `inputs`, which no input record has; the input's columns are `instruction`, `input`, `output`"
        in lines[0]
    )
    config.write_text("input:\n  path: alpaca.jsonl\n  kind: instruction\n  fields: {question: instruction}\nstages: []\n")
    code = main(["run", str(config), "--out", str(tmp_path / "r"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == (
        "error: config error: `input.fields`: value error, `question` is not a column of the `instruction` kind; "
        "map source columns onto one of id, messages, prompt, completion, system"
    )


def test_export_round_trip_carries_the_joined_prompt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = alpaca_rows(40, seed=3)
    write_jsonl(tmp_path / "alpaca.jsonl", rows)
    config = tmp_path / "p.yaml"
    config.write_text(
        "input:\n  path: alpaca.jsonl\n  kind: instruction\n  fields: {prompt: [instruction, input], completion: output}\n"
        "stages: [normalize]\n"
    )
    assert main(["run", str(config), "--out", str(tmp_path / "r"), "-q"]) == 0
    assert main(["check", str(tmp_path / "r")]) == 0
    assert main(["export", str(tmp_path / "r"), "--format", "openai-chat", "--validation", "0"]) == 0
    capsys.readouterr()
    exported = [
        json.loads(line)
        for f in sorted((tmp_path / "r/dataset/exports/openai-chat").glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    users = {m["content"] for r in exported for m in r["messages"] if m["role"] == "user"}
    with_input = [r for r in rows if r["input"]]
    assert with_input and all(f"{r['instruction']}\n\n{r['input']}" in users for r in with_input)
    assert "Find the largest value in the array. (1)\n\n[3, 5, 20, 1]" in users
