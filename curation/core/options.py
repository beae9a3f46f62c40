"""The strict options base every config section and stage option model derives from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Base for every config section and stage option: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)
