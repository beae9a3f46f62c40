from __future__ import annotations

from pathlib import Path

import pytest

from curation.core.config import load_config, parse_config
from curation.core.errors import ConfigError
from curation.demo import DEMO_KINDS, demo_config_text

BASE = {"input": {"path": "x.jsonl", "kind": "classification"}}


def test_minimal_config_gets_defaults() -> None:
    cfg = parse_config({**BASE, "stages": ["normalize"]})
    assert cfg.stage_names() == ["normalize"]
    assert cfg.run.seed == 0 and cfg.checks.min_rows == 1 and cfg.train.method == "lora"


def test_every_problem_reported_at_once_with_key_paths() -> None:
    data = {
        "input": {"path": "x.jsonl", "kind": "poems", "colour": 1},
        "stages": ["normalize", "shuffle", {"normalize": {"unicode_formm": "NFC"}}],
        "extra": 1,
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    lines = info.value.lines()
    assert any("`input.kind`" in line for line in lines)
    assert any("`input.colour`: unknown key" in line for line in lines)
    assert any("`stages[1]`: unknown stage `shuffle`" in line for line in lines)
    assert any("`stages[2].normalize.unicode_formm`: unknown key" in line for line in lines)
    assert any("`extra`: unknown key" in line for line in lines)
    assert len(lines) == 5


def test_missing_input_section() -> None:
    with pytest.raises(ConfigError, match="`input`: required key is missing"):
        parse_config({"stages": []})


def test_stage_entry_shapes() -> None:
    with pytest.raises(ConfigError, match="one-key mapping"):
        parse_config({**BASE, "stages": [{"normalize": {}, "dedup": {}}]})
    cfg = parse_config({**BASE, "stages": [{"normalize": None}]})
    assert cfg.stage_names() == ["normalize"]


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(bad)


def test_relative_paths_resolve_from_config_folder(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "p.yaml"
    path.parent.mkdir()
    path.write_text("input: {path: data/*.jsonl, kind: text}\nstages: [normalize]\n")
    cfg = load_config(path)
    assert cfg.resolve(cfg.input.path) == path.parent.resolve() / "data/*.jsonl"


@pytest.mark.parametrize("kind", DEMO_KINDS)
def test_shipped_demo_configs_load(kind: str, tmp_path: Path) -> None:
    path = tmp_path / f"{kind}.yaml"
    path.write_text(demo_config_text(kind))
    cfg = load_config(path)
    assert cfg.input.kind in ("text", "instruction", "classification", "ratings")


def test_every_yaml_in_repo_loads() -> None:
    root = Path(__file__).resolve().parents[3]
    found = [
        p
        for p in root.rglob("*.y*ml")
        if ".venv" not in p.parts and ".git" not in p.parts and p.suffix in (".yaml", ".yml") and p.name != ".pre-commit-config.yaml"
    ]
    pipeline_yamls = [p for p in found if "input:" in p.read_text()]
    assert pipeline_yamls, "expected the shipped demo configs"
    for p in pipeline_yamls:
        load_config(p)


def test_check_severity_takes_a_bare_yaml_off_and_names_unknown_checks(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("input: {path: x.jsonl, kind: text}\nchecks: {severity: {residual_pii: off, min_rows: warning}}\n")
    assert load_config(path).checks.severity == {"residual_pii": "off", "min_rows": "warning"}  # YAML reads `off` as false
    path.write_text("input: {path: x.jsonl, kind: text}\nchecks: {severity: {nope: off}}\n")
    with pytest.raises(ConfigError) as bad:
        load_config(path)
    [line] = bad.value.lines()
    assert line.startswith("config error: `checks.severity.nope`: unknown key; expected 'required_columns', ")
