"""Anthropic HH-style transcripts: split a chosen/rejected pair into prompt and responses.

An HH-RLHF row holds two whole conversations, ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``,
that share every turn but the last assistant reply. The prompt is the shared text up to
and including the last ``\\n\\nAssistant:`` marker, and each response is the rest, so
``prompt + chosen`` and ``prompt + rejected`` give back the two transcripts exactly
(the anchor is TRL's ``extract_anthropic_prompt``). Transcripts that differ before the
last assistant turn are not a clean pair and are reported as diverging.

Pure text functions, in the core so that both the preferences stage and training (which
renders a transcript prompt as chat turns) read transcripts the same way.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

HUMAN = "\n\nHuman:"
ASSISTANT = "\n\nAssistant:"
DIVERGE = "transcripts_diverge"


@dataclass(frozen=True)
class Split:
    prompt: str
    chosen: str
    rejected: str


def split_transcripts(chosen: str, rejected: str, *, human: str = HUMAN, assistant: str = ASSISTANT) -> Split | str:
    """Split two transcripts into their shared prompt and final replies.

    Returns:
        the ``Split``, or the drop reason ``"transcripts_diverge"`` when the transcripts
        differ before the last assistant turn (or one has turns the other lacks).

    Raises:
        ValueError: a transcript has no assistant turn at all (not HH-style).
    """
    for name, text in (("chosen", chosen), ("rejected", rejected)):
        if assistant not in text:
            raise ValueError(
                f"`{name}` has no {assistant.strip()!r} turn; transcripts must look like '\\n\\nHuman: ...\\n\\nAssistant: ...'"
            )
    common = os.path.commonprefix([chosen, rejected])  # noqa: RUF071 (character-wise is what we want here)
    cut = common.rfind(assistant)
    if cut < 0:
        return DIVERGE  # they differ before the first assistant turn
    end = cut + len(assistant)
    prompt, tail_c, tail_r = chosen[:end], chosen[end:], rejected[end:]
    # A marker left in a tail means a turn after the shared prefix: not a last-turn pair.
    if any(marker in tail for tail in (tail_c, tail_r) for marker in (human, assistant)):
        return DIVERGE
    return Split(prompt, tail_c, tail_r)


def is_transcript(prompt: str, *, human: str = HUMAN, assistant: str = ASSISTANT) -> bool:
    """Whether ``prompt`` is an HH transcript prefix: a human turn first and an assistant marker after it.

    The markers may have lost their leading newlines at the very start (a normalised
    transcript begins ``Human: ...``).
    """
    text = prompt.lstrip()
    starts = text.startswith(human.strip()) or prompt.startswith(human)
    return starts and (assistant in prompt or text.rstrip().endswith(assistant.strip()))


def prompt_messages(prompt: str, *, human: str = HUMAN, assistant: str = ASSISTANT) -> list[dict[str, str]]:
    """An HH prompt as chat messages: Human -> user, Assistant -> assistant.

    The trailing empty ``Assistant:`` turn (where the reply goes) is left out; text
    before the first marker becomes a system message.
    """
    roles = {human: "user", assistant: "assistant"}
    for marker in roles:  # a normalised transcript may have lost the marker's leading newlines
        bare = marker.lstrip()
        if prompt.startswith(bare) and not prompt.startswith(marker):
            prompt = marker[: len(marker) - len(bare)] + prompt
    pattern = "(" + "|".join(re.escape(m) for m in sorted(roles, key=len, reverse=True)) + ")"
    parts = re.split(pattern, prompt)
    messages = [{"role": "system", "content": parts[0].strip()}] if parts[0].strip() else []
    for marker, content in zip(parts[1::2], parts[2::2], strict=True):
        messages.append({"role": roles[marker], "content": content.strip()})
    if messages and messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
        messages.pop()
    return messages
