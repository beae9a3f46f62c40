"""No raw personal value leaves the data: every command, every file it writes, everything it prints.

PII is planted in the free text, a label, an id, a metadata column, an annotator column
and the input file's name. Every command runs through the CLI (run, check failing and
passing, report, export, train, clean) and then every file under the output folder
and every line a command printed is searched for the raw values. Files the manifest
lists in ``sensitive_paths`` are allowed to hold them (that is what the list is for),
and so is the curated data itself: the dataset, its exports and the weights trained on
it are the data, not something shown about it; there only the free text must be
scrubbed (the PII stage's job), while labels, ids and columns stay the data's own.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import torch

from curation.cli import main
from tests.data.jsonl_files import write_jsonl

FREE_TEXT = "maria.gonzalez@freetext-leak.org"
LABEL = "escalate to kim.lee@label-leak.com"
ROW_ID = "cust-x@id-leak.example"
METADATA = "forwarded by ops.lead@sourceleak.net"
ANNOTATOR = "Priya Raman"
FILE_NAME = "jane.doe@example.com"
RAW = [FREE_TEXT, LABEL, ROW_ID, METADATA, ANNOTATOR, FILE_NAME, "kim.lee@label-leak.com", "ops.lead@sourceleak.net"]
TOPICS = {"billing": "my card was charged twice", "shipping": "the parcel has not arrived", "account": "i cannot log in to my account"}


def _rows() -> list[dict[str, str]]:
    rows = []
    for i in range(36):
        label, text = list(TOPICS.items())[i % 3]
        rows.append(
            {"id": f"r{i}", "text": f"hello, {text} since monday ({i})", "label": label, "source": "web", "annotator": f"ann_{i % 4}"}
        )
    rows[0] |= {"text": f"please write to {FREE_TEXT} about my order", "source": METADATA}
    rows[1] |= {"id": ROW_ID, "label": LABEL, "annotator": ANNOTATOR}
    rows[2] |= {"annotator": ANNOTATOR}
    return rows


def _tiny_encoder(out: Path) -> Path:
    from tests.training.tiny import build_tokenizer, save_tiny_bert

    return save_tiny_bert(out, build_tokenizer(), hidden=32, layers=1, heads=2)  # type: ignore[no-any-return]


def _config(src: Path, model: Path, *, label_set: bool) -> Path:
    checks = (
        "checks: {label_set: [billing, shipping, account]}\n"
        if label_set
        else "checks: {max_class_share: 0.99, severity: {label_singletons: warning}}\n"
    )
    text = (
        f"input: {{path: 'tickets_{FILE_NAME}.jsonl', kind: classification}}\n"
        "stages:\n  - normalize\n  - pii\n  - label_audit\n  - balance: {facets: [source]}\n"
        f"{checks}train: {{model: '{model}', batch_size: 4, max_length: 32}}\n"
    )
    path = src / ("failing.yaml" if label_set else "passing.yaml")
    path.write_text(text)
    return path


def _strings_in_parquet(path: Path) -> str:
    frame = pl.read_parquet(path)
    return "\n".join(str(v) for col in frame.columns for v in frame[col].to_list())


def _leaks(root: Path, allowed: set[Path]) -> list[str]:
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path in allowed or any(a in path.parents for a in allowed):
            continue
        text = _strings_in_parquet(path) if path.suffix == ".parquet" else path.read_bytes().decode("utf-8", "replace")
        found += [f"{path.relative_to(root)}: {raw!r}" for raw in RAW if raw in text]
        found += [f"{path.relative_to(root)} (name): {raw!r}" for raw in RAW if raw in str(path.relative_to(root))]
    return found


@pytest.mark.slow
def test_no_planted_value_leaves_the_data_through_any_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    write_jsonl(src / f"tickets_{FILE_NAME}.jsonl", _rows())
    model = _tiny_encoder(tmp_path / "encoder")
    run_dir = out / "run"
    printed: list[str] = []

    def cli(*argv: str) -> int:
        code = main([*argv])
        printed.extend(capsys.readouterr())
        return code

    torch.set_num_threads(1)
    assert cli("run", str(_config(src, model, label_set=True)), "--out", str(run_dir), "-q") == 0
    assert cli("check", str(run_dir)) == 1  # the planted label is not in the label set, on the planted id's row
    assert cli("report", str(run_dir)) == 0
    assert cli("run", str(_config(src, model, label_set=False)), "--out", str(run_dir), "-q") == 0
    assert cli("check", str(run_dir)) == 0
    assert cli("report", str(run_dir)) == 0
    assert cli("export", str(run_dir), "--format", "parquet") == 0, printed[-1]
    assert cli("train", str(run_dir), "--max-steps", "1", "-q") == 0, printed[-1]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    sensitive = {run_dir / p for p in manifest["sensitive_paths"]}
    assert cli("clean", str(run_dir)) == 0

    leaked = [f"output: {raw!r}" for raw in RAW if any(raw in text for text in printed)]
    # the data at each step (rows of the curated set: its labels and ids are the data's own) and what learned from it
    data = {run_dir / "dataset", *run_dir.glob("stages/*/*.parquet"), *run_dir.glob("training/*/model")}
    leaked += _leaks(out, sensitive | data)
    assert not leaked, "\n".join(leaked)
    for path in [run_dir / "dataset" / "data.parquet", *(p for p in data if p.suffix == ".parquet" and p not in sensitive)]:
        assert FREE_TEXT not in _strings_in_parquet(path), path  # the PII stage scrubbed the free text
