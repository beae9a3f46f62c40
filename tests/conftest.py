"""Shared test helpers: write small inputs and run the real pipeline on them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Any]:
    """``make_run(rows, kind=..., stages=[...], **sections) -> RunResult`` on the real runner."""
    from curation.core.config import parse_config
    from curation.core.runner import run_pipeline
    from tests.data.jsonl_files import write_jsonl

    def run(rows: list[Any], *, kind: str = "classification", stages: list[Any] | None = None, name: str = "run", **sections: Any) -> Any:
        data = write_jsonl(tmp_path / "data" / f"{name}.jsonl", rows)
        cfg = parse_config({"input": {"path": str(data), "kind": kind}, "stages": stages or [], **sections}, base_dir=tmp_path)
        return run_pipeline(cfg, out_dir=tmp_path / "runs" / name, quiet=True)

    return run
