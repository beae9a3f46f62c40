"""Shared test helpers: write small inputs and run the real pipeline on them."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

# tests/benchmarks holds data generators that the tests reuse at small sizes.
sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))


def write_jsonl(path: Path, rows: Sequence[Any]) -> Path:
    """Write rows as JSON lines; bytes/str items are written verbatim (malformed lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        for row in rows:
            line = row if isinstance(row, bytes) else row.encode("utf-8") if isinstance(row, str) else json.dumps(row).encode("utf-8")
            f.write(line + b"\n")
    return path


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Any]:
    """``make_run(rows, kind=..., stages=[...], **sections) -> RunResult`` on the real runner."""
    from curation.config import parse_config
    from curation.runner import run_pipeline

    def run(rows: list[Any], *, kind: str = "classification", stages: list[Any] | None = None, name: str = "run", **sections: Any) -> Any:
        data = write_jsonl(tmp_path / "data" / f"{name}.jsonl", rows)
        cfg = parse_config({"input": {"path": str(data), "kind": kind}, "stages": stages or [], **sections}, base_dir=tmp_path)
        return run_pipeline(cfg, out_dir=tmp_path / "runs" / name, quiet=True)

    return run
