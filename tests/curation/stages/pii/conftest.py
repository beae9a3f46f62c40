"""The real Presidio analyzer and spaCy model, built once for every PII test module."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from curation.core.stage import StageContext
from curation.stages.pii.stage import PiiConfig, pii


@pytest.fixture(scope="session")
def engines() -> dict[str, Any]:
    """Shared by every context: spaCy and the default analyzer load once, here."""
    cache: dict[str, Any] = {}
    pii(pl.DataFrame({"id": ["w"], "text": ["warm up"]}), PiiConfig(), StageContext(kind="text", engines=cache))
    return cache
