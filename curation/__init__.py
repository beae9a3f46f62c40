"""tuneprep's curation library: the face users import from.

    from curation import load_config, run_pipeline, read_manifest, load_dataset, build_report
    from curation import TuneprepError, ConfigError, GateFailed

Names resolve lazily (module ``__getattr__``), so ``import curation`` and ``tuneprep --help``
stay fast and internal moves do not break users. The house behind the face:
``curation.core`` (config, schema, runner, ingest, run directory, ledger, errors),
``curation.stages.<name>`` (one folder per stage), ``curation.report``, ``curation.cli``.
"""

from __future__ import annotations

import importlib
from typing import Any

_FACE = {
    "load_config": "curation.core.config",
    "parse_config": "curation.core.config",
    "PipelineConfig": "curation.core.config",
    "run_pipeline": "curation.core.runner",
    "RunResult": "curation.core.runner",
    "read_manifest": "curation.core.rundir",
    "load_dataset": "curation.core.rundir",
    "clean_sensitive": "curation.core.rundir",
    "StageResult": "curation.core.stage",
    "StageContext": "curation.core.stage",
    "STAGES": "curation.core.registry",
    "TuneprepError": "curation.core.errors",
    "ConfigError": "curation.core.errors",
    "SchemaError": "curation.core.errors",
    "InputError": "curation.core.errors",
    "RunError": "curation.core.errors",
    "GateFailed": "curation.core.errors",
    "build_report": "curation.report",
    "write_demo": "curation.demo",
    "show_rows": "curation.show",
}

__all__ = sorted(_FACE)


def __getattr__(name: str) -> Any:
    module = _FACE.get(name)
    if module is None:
        raise AttributeError(f"module 'curation' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # resolve once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_FACE])
