"""Tests of HH-style transcript splitting and the conversational view of a prompt."""

from __future__ import annotations

import pytest

from curation.stages.preferences.transcripts import Split, prompt_messages, split_transcripts

H, A = "\n\nHuman: ", "\n\nAssistant: "


def test_split_keeps_the_shared_prefix_and_the_leading_space() -> None:
    chosen, rejected = f"{H}Hi{A}Sure, here it is.", f"{H}Hi{A}Sure. No."
    split = split_transcripts(chosen, rejected)
    assert split == Split(f"{H}Hi\n\nAssistant:", " Sure, here it is.", " Sure. No.")
    assert isinstance(split, Split) and split.prompt + split.chosen == chosen and split.prompt + split.rejected == rejected


@pytest.mark.parametrize(
    ("chosen", "rejected"),
    [
        (f"{H}a{A}b{H}c{A}d", f"{H}a{A}B{H}c{A}e"),  # an earlier assistant turn differs
        (f"{H}a{A}b", f"{H}z{A}b"),  # the first human turn differs
        (f"{H}a{A}b", f"{H}a{A}b{H}more?{A}yes"),  # one has extra turns
        (f"{H}a{A}b{H}thanks", f"{H}a{A}c{H}thanks"),  # the last turn is the human's
    ],
)
def test_transcripts_that_differ_before_the_last_reply_diverge(chosen: str, rejected: str) -> None:
    assert split_transcripts(chosen, rejected) == "transcripts_diverge"


def test_a_transcript_without_an_assistant_turn_is_an_error() -> None:
    with pytest.raises(ValueError, match="`rejected` has no 'Assistant:' turn"):
        split_transcripts(f"{H}a{A}b", "just text")


def test_custom_markers() -> None:
    split = split_transcripts("\nUSER: hi\nBOT: hello", "\nUSER: hi\nBOT: go away", human="\nUSER:", assistant="\nBOT:")
    assert split == Split("\nUSER: hi\nBOT:", " hello", " go away")


def test_prompt_messages_maps_turns_and_tolerates_stripped_transcripts() -> None:
    prompt = f"Human: Hi{A}Hello!{H}Reset my password?\n\nAssistant:"  # normalize stripped the leading newlines
    assert prompt_messages(prompt) == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Reset my password?"},
    ]
    assert prompt_messages(f"Be brief.{H}Hi{A}") == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
