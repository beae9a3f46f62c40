"""How a DPO prompt meets the model: chat turns through the template, or raw text.

An Anthropic HH prompt is a whole conversation (``Human: ... Assistant: ... Human: ...
Assistant:``). Wrapped into one user message, the model would see the markers as text
inside a single turn; ``auto`` gives the template the conversation's real turns instead
(parsed by ``curation.core.transcripts``). ``raw`` skips the template: prompt and answer
are tokenised as written (TRL's recipe for base models trained on HH text).
"""

from __future__ import annotations

from typing import Any, Literal

from curation.core.transcripts import is_transcript, prompt_messages

PromptFormat = Literal["auto", "single_turn", "raw"]


def prompt_turns(prompt: str, prompt_format: PromptFormat = "auto") -> list[dict[str, str]]:
    """The chat messages of a prompt: an HH transcript's turns under ``auto``, else one user turn."""
    if prompt_format == "auto" and is_transcript(prompt):
        turns = prompt_messages(prompt)
        if turns:
            return turns
    return [{"role": "user", "content": prompt}]


def render_pair(tokenizer: Any, prompt: str, answers: tuple[str, ...], prompt_format: PromptFormat = "auto") -> tuple[str, list[str]]:
    """The prompt text and each answer's completion text, as the model reads them.

    Through the chat template, a completion is what the template adds after the prompt's
    generation prompt (its end-of-turn marker included); with ``raw``, prompt and answers
    are the texts themselves.
    """
    if prompt_format == "raw":
        return prompt, list(answers)
    turns = prompt_turns(prompt, prompt_format)
    head = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    completions = []
    for answer in answers:
        full = tokenizer.apply_chat_template([*turns, {"role": "assistant", "content": answer}], tokenize=False)
        completions.append(full[len(head) :] if full.startswith(head) else answer)
    return head, completions
