"""Shared test helpers: write small inputs and run the real pipeline on them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# tests/benchmarks holds data generators that the tests reuse at small sizes; tests/ holds
# uniquely named helper modules (never import from `conftest`: each test folder has one).
sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Any]:
    """``make_run(rows, kind=..., stages=[...], **sections) -> RunResult`` on the real runner."""
    from jsonl_files import write_jsonl

    from curation.config import parse_config
    from curation.runner import run_pipeline

    def run(rows: list[Any], *, kind: str = "classification", stages: list[Any] | None = None, name: str = "run", **sections: Any) -> Any:
        data = write_jsonl(tmp_path / "data" / f"{name}.jsonl", rows)
        cfg = parse_config({"input": {"path": str(data), "kind": kind}, "stages": stages or [], **sections}, base_dir=tmp_path)
        return run_pipeline(cfg, out_dir=tmp_path / "runs" / name, quiet=True)

    return run
