"""Unknown config keys point to where the key lives: a close spelling or a nested option."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation.cli import main
from curation.core.config import parse_config
from curation.core.errors import ConfigError

INPUT = {"path": "x.jsonl", "kind": "text"}


def _lines(data: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(data)
    return e.value.lines()


def test_misplaced_dedup_threshold_points_to_minhash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.yaml").write_text("input: {path: x.jsonl, kind: text}\nstages:\n  - dedup: {threshold: 0.8}\n")
    assert main(["run", str(tmp_path / "p.yaml")]) == 2
    assert capsys.readouterr().err == "error: config error: `stages[0].dedup.threshold`: unknown key; did you mean `minhash.threshold`?\n"


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (
            {"input": INPUT, "stages": [{"dedup": {"minhash": {"treshold": 0.8}}}]},
            "`stages[0].dedup.minhash.treshold`: unknown key; did you mean `threshold`?",
        ),
        (
            {"input": INPUT, "stages": [{"balance": {"min_shares": 0.1}}]},
            "`stages[0].balance.min_shares`: unknown key; did you mean `min_share`?",
        ),
        ({"input": {**INPUT, "kindd": "text"}, "stages": []}, "`input.kindd`: unknown key; did you mean `kind`?"),
        ({"input": INPUT, "stages": [], "colour": 1}, "`colour`: unknown key; remove it or check its spelling"),
    ],
)
def test_did_you_mean(data: dict[str, object], line: str) -> None:
    assert _lines(data) == [f"config error: {line}"]
