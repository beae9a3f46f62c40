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
    scrubs_pii: bool = False  # True for the PII stage: outputs of later stages no longer hold raw PII
    resume_inputs: str | None = None  # function (options, ctx) -> dict: what besides the options decides the output (a secret's digest)


STAGES: dict[str, StageSpec] = {
    "normalize": StageSpec("curation.stages.normalize.stage", "normalize", "NormalizeConfig"),
    "dedup": StageSpec("curation.stages.dedup.stage", "dedup", "DedupConfig"),
    "pii": StageSpec("curation.stages.pii.stage", "pii", "PiiConfig", scrubs_pii=True, resume_inputs="salt_identity"),
    "label_audit": StageSpec("curation.stages.label_audit.stage", "label_audit", "LabelAuditConfig"),
    "balance": StageSpec("curation.stages.balance.stage", "balance", "BalanceConfig"),
    "preferences": StageSpec("curation.stages.preferences.stage", "preferences", "PreferencesConfig"),
}


def stage_config_class(name: str) -> type[BaseModel]:
    spec = STAGES[name]
    return getattr(importlib.import_module(spec.module), spec.config)  # type: ignore[no-any-return]


def stage_function(name: str) -> Any:
    spec = STAGES[name]
    return getattr(importlib.import_module(spec.module), spec.function)


def resume_inputs(name: str, options: BaseModel, ctx: Any) -> dict[str, Any]:
    """What, besides its options, decides a stage's output (e.g. the hash salt's digest); {} for most stages."""
    spec = STAGES[name]
    if spec.resume_inputs is None:
        return {}
    return getattr(importlib.import_module(spec.module), spec.resume_inputs)(options, ctx)  # type: ignore[no-any-return]
