"""The registry of curation stages: YAML name -> (module, function, config class).

Stage modules are imported only when a config names them, and import their heavy
libraries (Presidio, sentence-transformers, scikit-learn) inside functions.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class StageSpec:
    module: str
    function: str
    config: str
    sensitive_output: bool = False  # True where the output may still hold raw PII


STAGES: dict[str, StageSpec] = {
    "normalize": StageSpec("curation.normalize", "normalize", "NormalizeConfig", sensitive_output=True),
    "dedup": StageSpec("curation.dedup", "dedup", "DedupConfig", sensitive_output=True),
    "pii": StageSpec("curation.pii", "pii", "PiiConfig"),
    "label_audit": StageSpec("curation.label_audit", "label_audit", "LabelAuditConfig"),
    "balance": StageSpec("curation.balance", "balance", "BalanceConfig"),
    "preferences": StageSpec("curation.preferences", "preferences", "PreferencesConfig"),
}


def stage_config_class(name: str) -> type[BaseModel]:
    spec = STAGES[name]
    return getattr(importlib.import_module(spec.module), spec.config)  # type: ignore[no-any-return]


def stage_function(name: str) -> Any:
    spec = STAGES[name]
    return getattr(importlib.import_module(spec.module), spec.function)
