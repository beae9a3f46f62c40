"""Exports: every format re-read matches the dataset row for row; limits name ids; the gate is enforced."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal

from checks.exports import _GB, FORMATS, LIMITS, _check_files, assign_splits, export, read_export
from checks.gate import run_checks
from curation.cli import main
from curation.core.config import parse_config
from curation.core.errors import ConfigError, GateFailed
from curation.core.rundir import DATASET, load_dataset, read_manifest
from tests.checks.checks_fixtures import TOPICS, classification_rows, copy_run, make_run, messages_rows, preference_rows


def _instruction_rows(n: int = 12) -> list[dict[str, str]]:
    rows = [
        {"id": f"i{i}", "prompt": f"how do I fix the {TOPICS[i % len(TOPICS)]} issue {i}?", "completion": f"try step {i} first"}
        for i in range(n)
    ]
    return [{**r, "system": "be brief"} if i % 3 == 0 else r for i, r in enumerate(rows)]


def _text_rows(n: int = 12) -> list[dict[str, str]]:
    return [{"id": f"t{i}", "text": f"knowledge base article {i} about the {TOPICS[i % len(TOPICS)]}"} for i in range(n)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Checked, passing runs of every kind and form (the gate lets exports through)."""
    root = tmp_path_factory.mktemp("exports")
    made = {
        "classification": make_run(root, classification_rows(20), name="cls"),
        "instruction": make_run(root, _instruction_rows(), kind="instruction", name="ins"),
        "messages": make_run(root, messages_rows(), kind="instruction", name="msgs"),
        "text": make_run(root, _text_rows(), kind="text", name="txt"),
        "preference": make_run(root, preference_rows(), kind="preference", name="pref"),
    }
    for run in made.values():
        assert run_checks(run).verdict == "pass"
    return made


PAIRS = [
    *[("classification", f) for f in ("bedrock-ft", "bedrock-conversation", "openai-chat", "hf", "parquet")],
    *[("instruction", f) for f in ("bedrock-ft", "bedrock-conversation", "openai-chat", "hf", "parquet")],
    *[("messages", f) for f in ("bedrock-ft", "bedrock-conversation", "openai-chat", "hf", "parquet")],
    *[("text", f) for f in ("bedrock-cpt", "hf", "parquet")],
    *[("preference", f) for f in ("openai-preference", "hf", "parquet")],
]


def _expected(dataset: pl.DataFrame, name: str, fmt: str) -> pl.DataFrame:
    if name == "instruction" and fmt == "bedrock-ft":  # no system slot in prompt/completion: it leads the prompt
        folded = pl.when(pl.col("system").is_not_null()).then(pl.col("system") + "\n\n" + pl.col("prompt")).otherwise(pl.col("prompt"))
        return dataset.with_columns(folded.alias("prompt"), pl.lit(None, pl.String).alias("system"))
    return dataset


@pytest.mark.parametrize(("name", "fmt"), PAIRS, ids=[f"{n}-{f}" for n, f in PAIRS])
def test_export_round_trips_row_for_row(runs: dict[str, Path], tmp_path: Path, name: str, fmt: str) -> None:
    run = copy_run(runs[name], tmp_path / "run")
    result = export(run, fmt)
    dataset = pl.read_parquet(run / DATASET)
    back = read_export(result.path)
    assert back.height == dataset.height and back["id"].is_unique().all()
    assert dict(back.group_by("split").len().iter_rows()) == result.rows
    assert sum(result.rows.values()) == dataset.height and result.verdict == "pass"
    expected = _expected(dataset, name, fmt).sort("id")
    assert_frame_equal(back.select(dataset.columns).sort("id"), expected, check_dtypes=False)
    assert read_manifest(run)["exports"][fmt]["dataset_fingerprint"] == read_manifest(run)["dataset"]["fingerprint"]


def test_bedrock_conversation_record_shape(runs: dict[str, Path], tmp_path: Path) -> None:
    path = export(copy_run(runs["instruction"], tmp_path / "run"), "bedrock-conversation", validation=0).path
    records = [json.loads(line) for line in (path / "train.jsonl").read_text().splitlines()]
    assert set(records[0]) == {"schemaVersion", "system", "messages"} and records[0]["schemaVersion"] == "bedrock-conversation-2024"
    assert records[0]["system"] == [{"text": "be brief"}] and "system" not in records[1]
    assert [m["role"] for m in records[1]["messages"]] == ["user", "assistant"]
    assert records[1]["messages"][1]["content"] == [{"text": "try step 1 first"}]


def test_split_is_seeded_stratified_and_deterministic(runs: dict[str, Path], tmp_path: Path) -> None:
    run = copy_run(runs["classification"], tmp_path / "run")
    first = export(run, "openai-chat", validation=0.2)
    assert first.rows == {"train": 16, "validation": 4}
    validation = read_export(first.path).filter(pl.col("split") == "validation")
    assert validation.group_by("label").len().sort("label")["len"].to_list() == [2, 2]  # 10 rows per label -> 2 each
    blob = (first.path / "validation.jsonl").read_bytes()
    assert (export(run, "openai-chat", validation=0.2).path / "validation.jsonl").read_bytes() == blob
    other = export(run, "openai-chat", validation=0.2, seed=99)
    assert (other.path / "validation.jsonl").read_bytes() != blob


def test_assign_splits_ignores_row_order() -> None:
    df = pl.DataFrame({"id": [f"x{i}" for i in range(50)], "label": ["a", "b"] * 25})
    one = df.with_columns(assign_splits(df, validation=0.3, seed=1, kind="classification"))
    shuffled = df.sample(fraction=1.0, shuffle=True, seed=5)
    two = shuffled.with_columns(assign_splits(shuffled, validation=0.3, seed=1, kind="classification"))
    assert_frame_equal(one.sort("id"), two.sort("id"))
    assert one.filter(pl.col("split") == "validation").group_by("label").len()["len"].to_list() == [8, 8]


def test_over_long_record_is_reported_by_id(tmp_path: Path) -> None:
    rows = [*_text_rows(), {"id": "huge-article", "text": "lorem ipsum " * 2500}]  # 30,000 chars > 4,096 tokens x 6
    run = make_run(tmp_path, rows, kind="text", name="long")
    assert run_checks(run).verdict == "pass"
    with pytest.raises(
        GateFailed,
        match=r"export `bedrock-cpt`: 1 records exceed the 4096-token budget \(~24576 characters at 6 per token\): ids huge-article;",
    ):
        export(run, "bedrock-cpt")
    assert not (run / "dataset/exports/bedrock-cpt").exists()
    assert export(run, "bedrock-cpt", max_tokens=6000).rows["train"] == 12


def test_multi_turn_messages_do_not_fit_prompt_completion(runs: dict[str, Path], tmp_path: Path) -> None:
    clean = pl.read_parquet(runs["messages"] / DATASET)
    rows = clean.to_dicts()
    rows[3]["messages"] = [*rows[3]["messages"], {"role": "user", "content": "and then?"}, {"role": "assistant", "content": "then stop"}]
    run = copy_run(runs["messages"], tmp_path / "run", pl.DataFrame(rows, schema=clean.schema))
    assert run_checks(run).verdict == "pass"
    with pytest.raises(GateFailed, match=r"1 records have several turns, prompt/completion holds one: ids m3; use `bedrock-conversation`"):
        export(run, "bedrock-ft")
    assert export(run, "bedrock-conversation").verdict == "pass"


def test_target_minimum_and_file_caps() -> None:
    with pytest.raises(GateFailed, match="8 training records, the target needs at least 10"):
        _check_files("openai-chat", {"train": 100}, {"train": 8})
    with pytest.raises(GateFailed, match=r"train.jsonl would be 2048.0 MB, over the 1024 MB cap"):
        _check_files("bedrock-ft", {"train": 2 * _GB}, {"train": 100})


def test_format_that_cannot_carry_the_kind_is_a_usage_error(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="`--format bedrock-cpt` cannot carry classification records"):
        export(runs["classification"], "bedrock-cpt")
    assert main(["export", str(runs["preference"]), "--format", "openai-chat"]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "error: `--format openai-chat` cannot carry preference records; for a preference run use one of openai-preference, hf, parquet\n"
    )


def test_cli_offers_the_exporter_formats(capsys: pytest.CaptureFixture[str]) -> None:
    from curation.cli import EXPORT_FORMATS

    assert tuple(EXPORT_FORMATS) == FORMATS == tuple(LIMITS)
    assert main(["export", "anywhere", "--format", "jsonl"]) == 2
    assert "'jsonl' is not one of" in capsys.readouterr().err


def test_openai_preference_record_shape_and_budget(runs: dict[str, Path], tmp_path: Path) -> None:
    run = copy_run(runs["preference"], tmp_path / "run")
    path = export(run, "openai-preference", validation=0).path
    first = json.loads((path / "train.jsonl").read_text().splitlines()[0])
    assert first == {
        "input": {"messages": [{"role": "user", "content": "question 0 about refund"}]},
        "preferred_output": [{"role": "assistant", "content": "a helpful answer 0"}],
        "non_preferred_output": [{"role": "assistant", "content": "a poor answer 0"}],
    }
    # the prompt plus the longer answer must fit: 40 to 43 characters here
    with pytest.raises(GateFailed, match=r"export `openai-preference`: 12 records exceed the 5-token budget \(~20 characters"):
        export(run, "openai-preference", max_tokens=5)
    assert export(run, "openai-preference", max_tokens=12).rows == {"train": 11, "validation": 1}
    with pytest.raises(GateFailed, match="the target needs at least 10"):
        export(run, "openai-preference", validation=0.5)


def test_export_refuses_what_the_gate_refuses_unless_unvalidated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path, classification_rows(20), name="unchecked")
    assert main(["export", str(run), "--format", "parquet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has not been validated" in err[0] and "--unvalidated" in err[0]
    assert not (run / "dataset/exports").exists()
    assert main(["export", str(run), "--format", "parquet", "--unvalidated"]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("WARNING: exported UNVALIDATED data") and out.strip().endswith("dataset/exports/parquet")
    info = json.loads((run / "dataset/exports/parquet/export.json").read_text())
    assert info["verdict"] == "unvalidated" and "has not been validated" in info["gate"]
    assert read_manifest(run)["exports"]["parquet"]["verdict"] == "unvalidated"


def test_exports_of_a_run_without_pii_are_sensitive_and_cleaned(tmp_path: Path) -> None:
    from curation.core.rundir import clean_sensitive
    from curation.core.runner import run_pipeline

    run = make_run(tmp_path, classification_rows(12), name="raw")
    result = export(run, "openai-chat", unvalidated=True)
    written = [str(p.relative_to(run)) for p in result.path.rglob("*") if p.is_file()]
    assert written and set(written) <= set(read_manifest(run)["sensitive_paths"])
    cfg = parse_config(yaml.safe_load((run / "config.yaml").read_text()), base_dir=tmp_path)
    cfg = cfg.model_copy(
        update={"input": cfg.input.model_copy(update={"path": str(tmp_path / "data" / "raw.jsonl")})}
    )  # config.yaml masks it
    run_pipeline(cfg, out_dir=run, quiet=True)  # a rerun rewrites the manifest: the exports stay listed
    assert set(written) <= set(read_manifest(run)["sensitive_paths"])
    clean_sensitive(run)
    assert not any((run / f).exists() for f in written) and not (run / DATASET).exists()


def test_jsonl_exports_write_repeat_as_copies_and_say_weights_cannot_travel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{**r, "label": "billing" if i < 15 else "refund"} for i, r in enumerate(classification_rows(20))]  # 15 vs 5
    balance = {"facets": ["label"], "target": {"facet": "label", "shares": "uniform", "rebalance": "up"}}
    run = make_run(tmp_path, rows, name="up", stages=[{"balance": balance}], checks={"max_class_share": 0.8})
    assert run_checks(run).verdict == "pass"
    dataset = pl.read_parquet(run / DATASET)
    assert main(["export", str(run), "--format", "openai-chat", "--validation", "0"]) == 0
    err = capsys.readouterr().err
    info = json.loads((run / "dataset/exports/openai-chat/export.json").read_text())
    copies = int((dataset["repeat"] - 1).sum())
    assert copies > 0 and info["balance"]["repeat_added_rows"] == copies and info["splits"]["train"]["rows"] == dataset.height + copies
    assert f"note: `repeat`: {copies} copies" in err
    back = read_export(run / "dataset/exports/openai-chat")
    assert back.group_by("label").len().sort("label")["len"].to_list() == [15, 15]  # the target's uniform shares
    assert ("sample_weight" in info["balance"]) == bool((dataset["sample_weight"] != 1.0).any())
    parquet = export(run, "parquet", validation=0)
    assert parquet.notes == () and pl.read_parquet(parquet.path / "train.parquet").height == dataset.height  # the columns travel


def test_export_validation_rows_are_the_rows_train_holds_out(tmp_path: Path) -> None:
    """One seeded split (curation.core.split): for the same run and seed, exports and `train` hold out the same rows."""
    from training.data import split_indices

    run = make_run(tmp_path, classification_rows(60), name="same-split")
    df = load_dataset(run)
    run_checks(run)
    export(run, "parquet", validation=0.2, seed=3)
    exported = set(pl.read_parquet(run / "dataset" / "exports" / "parquet" / "validation.parquet")["id"].to_list())
    _, held = split_indices(df, 0.2, 3, task="classify")
    assert exported == set(df["id"][held].to_list()) and 0 < len(exported) < df.height
