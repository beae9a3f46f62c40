"""The Spark engine equals the local engine: same kept, dropped and quarantined rows, same findings, same fingerprints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from checks.gate import run_checks
from curation.core.config import parse_config
from curation.core.rundir import read_manifest
from curation.core.runner import run_pipeline
from curation.core.stage import StageContext
from curation.spark.dedup import spark_dedup
from curation.spark.engine import SparkEngine
from curation.stages.dedup.stage import DedupConfig, dedup
from tests.data.dedup_data import generate, generate_boilerplate
from tests.data.jsonl_files import write_jsonl

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),  # PySpark 3.5's collect leaves py4j sockets to the GC
]

PEOPLE = [("Maria Lopez", "maria.lopez@example.com"), ("Ken Adams", "ken.adams@example.org"), ("Ana Silva", "ana@silva.net")]
BASE = "the invoice for order {i} was charged twice and the refund has not arrived after two weeks of waiting"


def _rows() -> list[Any]:
    rows: list[Any] = []
    for i in range(24):
        name, mail = PEOPLE[i % 3]
        text = BASE.format(i=i % 8) if i % 2 else f"please reset the router in room {i}, it drops the line every hour"
        if i % 5 == 0:
            text += f" Contact {name} at {mail} or 415-555-01{i:02d}."
        rows.append({"text": "\u200b" + text + "  \t ", "label": "billing" if i % 2 else "technical", "source": "mail"})
    rows.append({"text": BASE.format(i=3).replace("twice", "two times"), "label": "billing", "source": "mail"})  # a near copy
    rows.append({"text": "\u200b\u200b", "label": "billing"})  # empty after normalize
    rows.append(b"{oops")  # quarantined at ingest
    return rows


STAGES: list[Any] = [
    "normalize",
    {"pii": {"workers": 1}},
    "dedup",  # boilerplate discounting on (the default), distributed
    {"balance": {"embeddings": False}},
]


def _run(tmp: Path, engine: Any, name: str, stages: list[Any] = STAGES) -> Any:
    data = write_jsonl(tmp / "data.jsonl", _rows())
    cfg = parse_config({"input": {"path": str(data), "kind": "classification"}, "stages": stages, "checks": {"min_rows": 5}}, base_dir=tmp)
    return run_pipeline(cfg, out_dir=tmp / name, quiet=True, engine=engine)


def _frames(run_dir: Path) -> dict[str, pl.DataFrame]:
    return {str(p.relative_to(run_dir)): pl.read_parquet(p) for p in sorted(run_dir.glob("**/*.parquet")) if "checks" not in p.parts}


def _assert_same_run(a: Path, b: Path) -> None:
    fa, fb = _frames(a), _frames(b)
    assert fa.keys() == fb.keys()
    for name in fa:
        assert_frame_equal(fa[name], fb[name], check_exact=True), name
    ma, mb = read_manifest(a), read_manifest(b)
    assert ma["dataset"]["fingerprint"] == mb["dataset"]["fingerprint"]
    assert [s["output_fingerprint"] for s in ma["stages"]] == [s["output_fingerprint"] for s in mb["stages"]]
    assert [s["books"] for s in ma["stages"]] == [s["books"] for s in mb["stages"]]


def _engine_of(run_dir: Path, stage: str) -> str:
    path = next(run_dir.glob(f"stages/*-{stage}/stats.json"))
    return str(json.loads(path.read_text())["metrics"]["engine"])


def test_pipeline_gate_and_resume_match_the_local_engine(spark: Any, tmp_path: Path) -> None:
    local = _run(tmp_path, None, "local")
    engine = SparkEngine(spark, batch_rows=8)  # several blobs from tiny data: results must not depend on them
    remote = _run(tmp_path, engine, "spark")
    _assert_same_run(local.run_dir, remote.run_dir)
    assert local.summary() == remote.summary()
    assert remote.quarantined == 1 and "empty_after_normalize" in read_manifest(remote.run_dir)["stages"][1]["dropped_by_reason"]
    assert set(read_manifest(remote.run_dir)["stages"][3]["dropped_by_reason"]) == {"exact_duplicate", "near_duplicate"}
    assert pl.read_parquet(remote.run_dir / "stages/02-pii/findings.parquet").height > 0
    assert [_engine_of(remote.run_dir, s) for s in ("normalize", "pii", "dedup", "balance")] == ["spark", "spark", "spark", "spark"]
    io = [
        json.loads(next(remote.run_dir.glob(f"stages/*-{s}/stats.json")).read_text())["metrics"].get("spark_io")
        for s in ("normalize", "pii", "dedup", "balance")
    ]
    assert io == ["files", "files", "files", "files"]  # file to file on the workers

    checked = {name: run_checks(r.run_dir) for name, r in (("local", local), ("spark", remote))}
    assert checked["local"].verdict == checked["spark"].verdict == "pass"
    assert [o.success for o in checked["local"].outcomes] == [o.success for o in checked["spark"].outcomes]

    # a rerun reuses every stage (a killed run's resume: tests/spark/test_resume.py)
    rerun = _run(tmp_path, engine, "spark")
    assert all(s["skipped"] for s in read_manifest(rerun.run_dir)["stages"])


def test_pii_with_a_person_column_runs_on_the_driver(spark: Any, tmp_path: Path) -> None:
    rows = [{"text": f"Ticket {i} from Maria Lopez", "label": "a", "author": "Maria Lopez" if i % 2 else "Ken Adams"} for i in range(6)]
    data = write_jsonl(tmp_path / "people.jsonl", rows)
    cfg = parse_config({"input": {"path": str(data), "kind": "classification"}, "stages": [{"pii": {"workers": 1}}]}, base_dir=tmp_path)
    local = run_pipeline(cfg, out_dir=tmp_path / "local", quiet=True)
    remote = run_pipeline(cfg, out_dir=tmp_path / "spark", quiet=True, engine=SparkEngine(spark))
    _assert_same_run(local.run_dir, remote.run_dir)
    assert _engine_of(remote.run_dir, "pii") == "spark-driver"  # <PERSON_1>, <PERSON_2> are numbered over all rows


def _messages(n: int) -> pl.DataFrame:
    docs, _ = generate(n, seed=3)
    texts = docs["text"].to_list()
    msgs = [[{"role": "user", "content": "summarise this"}, {"role": "assistant", "content": t}] for t in texts]
    return pl.DataFrame({"id": docs["id"], "messages": msgs})


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        # keep: longest with MinHash verification, and exact-only: tests/spark/test_dedup_files.py (same cluster code)
        ("text", {"minhash": {"shingle": "char", "ngram": 5, "bands": 8, "rows": 4, "num_perm": 32}, "strip_punctuation": True}),
        ("instruction", {}),  # two parts (prompt turns, answer), each verified on its own
    ],
)
def test_dedup_matches_the_local_stage(spark: Any, kind: str, options: dict[str, Any]) -> None:
    df = generate(160, seed=1)[0] if kind == "text" else _messages(120)
    cfg = DedupConfig(**options, boilerplate={"enabled": False})  # the distributed path: without boilerplate discounting
    local = dedup(df, cfg, StageContext(kind=kind))  # type: ignore[arg-type]
    remote = spark_dedup(spark, df, cfg, StageContext(kind=kind), batch_rows=50)  # type: ignore[arg-type]
    assert local.findings.height > 10
    for part in ("kept", "dropped", "findings"):
        assert_frame_equal(getattr(local, part), getattr(remote, part), check_exact=True)
    assert local.stats.get("minhash") == remote.stats.get("minhash")
    assert remote.stats["spark"]["capped_buckets"] == 0 if cfg.near else remote.stats["spark"] == {}


def _same_dedup(local: Any, remote: Any) -> None:
    for part in ("kept", "dropped", "findings"):
        assert_frame_equal(getattr(local, part), getattr(remote, part), check_exact=True)
    assert local.stats == {k: v for k, v in remote.stats.items() if k != "spark"}


def _boiler_messages(n: int) -> pl.DataFrame:
    docs, _ = generate_boilerplate(n, seed=5)
    texts = docs["text"].to_list()
    msgs = [[{"role": "user", "content": t.split("\n\n")[0]}, {"role": "assistant", "content": t}] for t in texts]
    return pl.DataFrame({"id": docs["id"], "messages": msgs})


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        # the defaults (boilerplate discounting on) run in file mode: test_dedup_files.py and the pipeline test above
        # strip_boilerplate (the kept texts rewritten): test_dedup_files.py's driver case, against the local stage
        ("instruction", {"boilerplate": {"min_docs": 3}}),  # two parts, each part's blocks found anew
    ],
)
def test_boilerplate_dedup_matches_the_local_stage(spark: Any, kind: str, options: dict[str, Any]) -> None:
    df = generate_boilerplate(300, seed=4)[0] if kind == "text" else _boiler_messages(200)
    cfg = DedupConfig(**options)
    local = dedup(df, cfg, StageContext(kind=kind))  # type: ignore[arg-type]
    remote = spark_dedup(spark, df, cfg, StageContext(kind=kind), batch_rows=70)  # type: ignore[arg-type]
    _same_dedup(local, remote)
    boiler = local.stats["boilerplate"]
    assert local.findings.height > 10 and boiler["pairs_discounted"] > 0 and boiler["removed_with_discount"] > 0
    assert boiler["pairs_kept_apart"] > 0 if kind == "text" else True  # different messages under one footer stay
    assert boiler["blocks"] and boiler.get("stripped_rows", 1) > 0


def test_boilerplate_dedup_against_an_earlier_run(spark: Any, tmp_path: Path) -> None:
    docs, _ = generate_boilerplate(240, seed=6)
    first = write_jsonl(tmp_path / "first.jsonl", docs.head(120).drop("id").to_dicts())
    cfg = parse_config({"input": {"path": str(first), "kind": "text"}, "stages": ["dedup"]}, base_dir=tmp_path)
    earlier = run_pipeline(cfg, out_dir=tmp_path / "first", quiet=True)
    cfg = DedupConfig(against=str(earlier.run_dir))  # type: ignore[arg-type]
    batch = docs.tail(120)
    local = dedup(batch, cfg, StageContext(kind="text", config_dir=tmp_path))
    remote = spark_dedup(spark, batch, cfg, StageContext(kind="text", config_dir=tmp_path), batch_rows=50)
    assert (local.findings["kept_from"] != "input").sum() > 0 and local.stats["boilerplate"]["pairs_discounted"] > 0
    _same_dedup(local, remote)


def test_normalize_chat_rows_matches_the_local_stage(spark: Any) -> None:
    from curation.spark.rows import run_per_row
    from curation.stages.normalize.stage import NormalizeConfig, normalize

    df = _messages(40).with_columns(
        pl.col("messages").list.eval(
            pl.struct(pl.element().struct.field("role"), ("\u200b  " + pl.element().struct.field("content")).alias("content"))
        )
    )
    local = normalize(df, NormalizeConfig(), StageContext(kind="instruction"))
    remote = run_per_row(spark, "normalize", df, NormalizeConfig(), StageContext(kind="instruction"), batch_rows=16)
    assert_frame_equal(local.kept, remote.kept, check_exact=True)
    assert_frame_equal(local.dropped, remote.dropped, check_exact=True)
    assert local.stats == remote.stats
