"""Writing JSONL inputs for tests, malformed lines included."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def write_jsonl(path: Path, rows: Sequence[Any]) -> Path:
    """Write rows as JSON lines; bytes/str items are written verbatim (malformed lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        for row in rows:
            line = row if isinstance(row, bytes) else row.encode("utf-8") if isinstance(row, str) else json.dumps(row).encode("utf-8")
            f.write(line + b"\n")
    return path
