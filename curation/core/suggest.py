"""Did-you-mean for unknown config keys: a misspelt key, or one that belongs one level down.

``dedup: {threshold: 0.8}`` is rejected (the threshold is ``minhash.threshold``); the error
should say where the key lives. Used by ``curation.core.config.format_error``.
"""

from __future__ import annotations

import difflib
import typing
from typing import Any

from pydantic import BaseModel


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (``Model``, ``Model | None``, ``list[Model]``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for arg in typing.get_args(annotation) if (m := _model_of(arg)) is not None), None)


def _parent(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model that holds the key at ``loc[-1]``, following field names (list indices skipped)."""
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        nested = _model_of(field.annotation) if field is not None else None
        if nested is None:
            return None
        model = nested
    return model


def _homes(model: type[BaseModel], key: str, prefix: str = "", depth: int = 2) -> list[str]:
    """Dotted paths below ``model`` (nested option models only) that end in a field named ``key``."""
    found = []
    for name, field in model.model_fields.items():
        nested = _model_of(field.annotation)
        if nested is None or depth == 0:
            continue
        if key in nested.model_fields:
            found.append(f"{prefix}{name}.{key}")
        found += _homes(nested, key, f"{prefix}{name}.", depth - 1)
    return found


def did_you_mean(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> str | None:
    """``did you mean `minhash.threshold`?`` for an unknown key at ``loc`` of ``model``, else None."""
    if model is None or not loc or not isinstance(loc[-1], str):
        return None
    parent = _parent(model, loc)
    if parent is None:
        return None
    key = loc[-1]
    candidates = difflib.get_close_matches(key, list(parent.model_fields), n=1, cutoff=0.7) + _homes(parent, key)
    if not candidates:
        return None
    return "did you mean " + " or ".join(f"`{c}`" for c in candidates[:2]) + "?"
