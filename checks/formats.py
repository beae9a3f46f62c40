"""The export formats by name: one list for the exporter and the CLI's `--format` choices.

Kept apart from ``checks.exports`` (which imports polars and the gate) so that the CLI can
offer the choices without slowing ``tuneprep --help``.
"""

from __future__ import annotations

from typing import Literal, get_args

Format = Literal["bedrock-ft", "bedrock-cpt", "bedrock-conversation", "openai-chat", "openai-preference", "hf", "parquet"]
FORMATS: tuple[str, ...] = get_args(Format)
