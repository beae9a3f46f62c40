"""Anthropic HH-style transcripts for the preferences stage.

The parsing lives in ``curation.core.transcripts`` (training renders transcript prompts
as chat turns with it too); this module keeps the stage's import path.
"""

from __future__ import annotations

from curation.core.transcripts import ASSISTANT, DIVERGE, HUMAN, Split, is_transcript, prompt_messages, split_transcripts

__all__ = ["ASSISTANT", "DIVERGE", "HUMAN", "Split", "is_transcript", "prompt_messages", "split_transcripts"]
