"""PII precision without losing recall (issues 16 and 19), on the real Presidio engine.

Code and everyday words come out unchanged; written phone numbers next to a phone word,
names after role words and opening quotes are found; number-shaped decoys survive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from curation.core.stage import StageContext
from curation.stages.pii.code import code_regions, is_code_line
from curation.stages.pii.recognizers import Span, is_strong_name
from curation.stages.pii.stage import PiiConfig, pii
from curation.stages.pii.vocab import is_vocabulary


@pytest.fixture
def ctx(engines: dict[str, Any], tmp_path: Path) -> StageContext:
    return StageContext(kind="text", engines=engines, config_dir=tmp_path)


def scrub(ctx: StageContext, texts: list[str], cfg: PiiConfig | None = None) -> tuple[list[str], pl.DataFrame]:
    df = pl.DataFrame({"id": [f"r{i}" for i in range(len(texts))], "text": texts})
    result = pii(df, cfg or PiiConfig(), ctx)
    return result.kept["text"].to_list(), result.findings


# -- issue 16: code, maths and everyday words are not personal data --------------------------------------------------

ISSUE_16 = [
    "public static String reverseString(String s) {\n    return new StringBuilder(s).reverse().toString();\n}",
    "import java.util.Random;\n\npublic class Main {\n    public static void main(String[] args) {\n        Random rand = new Random();\n    }\n}",
    "def reverse(s):\n    stripped_s = s.strip()\n    return stripped_s[::-1]",
    "PI = 3.14159265\n\ndef area(r):\n    return PI * r ** 2",
    "Do you accept Visa?",
    "Do you accept Visa or Mastercard?",
    "False.",
    "Generate a random password in Python.",
    "Write a Java program that prints the elements of an ArrayList of String values.",
]


@pytest.mark.parametrize("text", ISSUE_16)
def test_issue_16_examples_come_out_unchanged(ctx: StageContext, text: str) -> None:
    out, findings = scrub(ctx, [text])
    assert out == [text] and findings.is_empty()


def test_a_dpo_answer_false_stays_false(engines: dict[str, Any]) -> None:
    df = pl.DataFrame({"id": ["p"], "prompt": ["Is the earth flat? Answer True or False."], "chosen": ["False."], "rejected": ["True."]})
    result = pii(df, PiiConfig(), StageContext(kind="preference", engines=engines))
    assert result.kept.select("chosen", "rejected").row(0) == ("False.", "True.")
    assert result.findings.is_empty()


def test_high_precision_entities_are_still_found_inside_code(ctx: StageContext) -> None:
    code = (
        "```python\n# maintainer: zelda.quintanilla@example.org\nCARD = '4111 1111 1111 1111'\nFALLBACK = '(415) 555-0100'\n"
        "value = 3.14159265\nretries = [attempt for attempt in range(10)]\nSUPPORT = '(415) 555-0199'  # call this number\n```"
    )
    [out], findings = scrub(ctx, [code])
    assert "zelda.quintanilla@example.org" not in out and "4111 1111 1111 1111" not in out
    assert "(415) 555-0199" not in out  # a phone word is near
    assert "(415) 555-0100" in out and "3.14159265" in out  # no phone word: an unexplained number in code stays
    assert set(findings["entity_type"]) == {"EMAIL_ADDRESS", "CREDIT_CARD", "PHONE_NUMBER"}


def test_names_in_prose_around_code_are_still_found(ctx: StageContext) -> None:
    text = 'for f in *.txt; do\n  wc -l "$f"\ndone\n\nIf it still fails, call me on (415) 555-0199. Thanks, Troy Cunningham'
    [out], _ = scrub(ctx, [text])
    assert out.startswith('for f in *.txt; do\n  wc -l "$f"\ndone\n')
    assert "Troy Cunningham" not in out and "(415) 555-0199" not in out


def test_slices_decimals_and_versions_are_not_ips_or_phones(ctx: StageContext) -> None:
    texts = ["print(word[::-1])", "x = 1.2.3.4.5", "Upgrade to v10.0.0.1 first", "e = 2.718281828459045", "std::vector<int> v;"]
    out, findings = scrub(ctx, texts)
    assert out == texts and findings.is_empty()


def test_public_ip_in_prose_is_still_found(ctx: StageContext) -> None:
    [out], _ = scrub(ctx, ["Failed logins came from 8.8.4.4 and 2001:4860:4860::8888 last night."])
    assert out == "Failed logins came from <IP_ADDRESS> and <IP_ADDRESS> last night."


# -- issue 19: phone numbers by shape and context ------------------------------------------------------------------

LAYOUTS = [
    "575-147-1049", "+1 549 542 8211", "410.103.8068", "(238) 194-8478", "+1-312-155-0123", "1-415-155-2671",
    "+15495428211", "+44 7700 900123", "07700 900123", "020 7946 0958", "+49 30 12345678", "0171 1234567",
    "+33 6 12 34 56 78", "01 23 45 67 89", "+91 98765 43210", "98765-43210",
]  # fmt: skip
CONTEXTS = ["Call me on {}.", "Callback: {}", "my cell is {} if the line drops", "{} (mobile)", "Fax: {}", "WhatsApp me at {}, thanks"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_written_phone_layouts_next_to_a_phone_word_are_phone_numbers(ctx: StageContext, layout: str) -> None:
    texts = [c.format(layout) for c in CONTEXTS]
    out, findings = scrub(ctx, texts)
    assert [layout in o for o in out] == [False] * len(texts), out
    assert set(findings["entity_type"]) == {"PHONE_NUMBER"}


DECOYS = [
    "Upgrade to version 10.0.19041.1234 before Friday.",
    "Order 575-147-1049 shipped yesterday.",
    "Ticket #238-194-8478 is still open.",
    "Build 22621.1234 failed the smoke tests.",
    "SKU 4829-1120-33 is out of stock.",
    "The app exits with error code 0x80070005.",
    "The server listens on port 8443 and 127.0.0.1:8080.",
    "The meeting moved to 2024-03-12 and then to 12/03/2024.",
    "The invoice total is $1,249,567.99 or 1 234 567 EUR.",
    "Invoice 410.103.8068 was paid by Visa.",
    "Compute 1234567 * 89 and 7654321 / 3.",
    "Case 612 213 8783 was closed; please call the store if you have questions about returns in general.",
]


def test_number_shaped_decoys_survive(ctx: StageContext) -> None:
    out, findings = scrub(ctx, DECOYS)
    assert out == DECOYS, [o for o, d in zip(out, DECOYS, strict=True) if o != d]
    assert findings.is_empty()


def test_phone_context_window_is_an_option(ctx: StageContext) -> None:
    text = "Callback: 575-147-1049"
    assert scrub(ctx, [text])[0] == ["Callback: <PHONE_NUMBER>"]
    assert scrub(ctx, [text], PiiConfig(phone_context_window=0))[0] == [text]  # no window: only valid numbers


# -- issue 19: names after role words and opening quotes -----------------------------------------------------------

ROLE_AND_QUOTE = [
    ("The beneficiary is {} and the transfer is urgent.", "Marguerite Okonkwo"),
    ("Beneficiary: {}", "Desmond Achterberg"),
    ("Please confirm the account holder, {}, signed the form.", "Ingrid Castellanos"),
    ("Account holder {} asked for a new card.", "Tobias Wainwright"),
    ("Customer: {}\nIssue: refund", "Priya Raman"),
    ("The customer {} called twice.", "Oluwaseun Adeyemi"),
    ('{} wrote: "the parcel never arrived."', "Jane Doe"),
    ("> {} wrote:\n> please cancel my order", "Hendrik Vollmer"),
    ('"{} said the screen flickers', "Rosalind Pembrook"),
    ("On Tue, Mar 4, 2025 at 9:12 AM, {} wrote:\nThanks for the update.", "Casimir Lindqvist"),
]


@pytest.mark.parametrize(("template", "name"), ROLE_AND_QUOTE)
def test_names_after_role_words_and_opening_quotes_are_found(ctx: StageContext, template: str, name: str) -> None:
    [out], findings = scrub(ctx, [template.format(name)])
    assert out == template.format("<PERSON>")
    assert set(findings["entity_type"]) == {"PERSON"}


def test_role_words_do_not_turn_products_into_people(ctx: StageContext) -> None:
    texts = ["The customer Support Team will reply soon.", "Customer: Visa Debit", "Client Python Library 3.2 is deprecated."]
    out, findings = scrub(ctx, texts)
    assert out == texts and findings.is_empty()


# -- NameRepeat spreads only strong names ---------------------------------------------------------------------------


def test_a_strong_name_spreads_to_its_mentions_but_a_vocabulary_word_does_not(ctx: StageContext) -> None:
    [named], _ = scrub(ctx, ["Customer: Priya Raman\nNotes: Priya asked for a refund; Raman's card was charged twice."])
    assert named == "Customer: <PERSON>\nNotes: <PERSON> asked for a refund; <PERSON>'s card was charged twice."
    texts = ["Hi Python,\nPython is great and Python scripts are short."]
    out, findings = scrub(ctx, texts)
    assert out == texts and findings.is_empty()


def test_a_lone_word_spacy_tags_is_no_evidence_to_spread() -> None:
    text = "Sure Cornelius, Cornelius Abernathy-Vane and Mr. Smith"
    assert not is_strong_name(text, Span(5, 14, "PERSON", 0.85, "SpacyRecognizer"))
    assert is_strong_name(text, Span(16, 40, "PERSON", 0.85, "SpacyRecognizer"))
    assert is_strong_name(text, Span(45, 54, "PERSON", 0.85, "SpacyRecognizer"))
    assert is_strong_name(text, Span(5, 14, "PERSON", 0.6, "PersonCueRecognizer"))


def test_names_found_across_turns_only_from_strong_evidence(engines: dict[str, Any]) -> None:
    chats = [
        [
            {"role": "user", "content": "Do you accept Visa? My colleague Visa said no."},
            {"role": "assistant", "content": "Yes, we accept Visa and Mastercard."},
        ]
    ]
    from curation.core.schema import MESSAGE

    df = pl.DataFrame({"id": ["c"], "messages": chats}, schema={"id": pl.String, "messages": pl.List(MESSAGE)})
    result = pii(df, PiiConfig(), StageContext(kind="instruction", engines=engines))
    assert result.kept["messages"][0].to_list()[1]["content"] == "Yes, we accept Visa and Mastercard."


# -- the residual scan says what it is ------------------------------------------------------------------------------


def test_stats_say_the_residual_scan_is_the_same_detector(ctx: StageContext) -> None:
    df = pl.DataFrame({"id": ["a"], "text": ["Mail zelda.quintanilla@example.org"]})
    stats = pii(df, PiiConfig(), ctx).stats
    assert stats["residual_scan"]["detector"] == "same" and stats["residual_scan"]["independent"] is False
    assert "recall" in stats["residual_scan"]["note"]


# -- the pieces, without the engine ---------------------------------------------------------------------------------


def test_code_regions_cover_fences_inline_code_and_code_lines_not_prose() -> None:
    text = "Use `os.path.join` here:\n\n```python\nimport os\nprint(os.getcwd())\n```\n\nThen call Jane Doe on Monday."
    spans = [text[a:b] for a, b in code_regions(text)]
    assert spans == ["`os.path.join`", "```python\nimport os\nprint(os.getcwd())\n```"]
    bare = "def f(s):\n    return s[::-1]\n\nThanks, Troy Cunningham"
    assert [bare[a:b] for a, b in code_regions(bare)] == ["def f(s):\n    return s[::-1]\n"]
    assert code_regions("Do you accept Visa?\nCustomer: Jane Doe") == []


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("public static String reverseString(String s)", True),
        ("import java.util.Random;", True),
        ("PI = 3.14159265", True),
        ("SELECT name FROM users WHERE id = 3;", True),
        ("do you accept visa?", False),
        ("return the parcel to the shop please", False),
        ("Customer: Jane Doe", False),
        ("Settings are under the gear icon.", False),
        ("private message from John Smith", False),
        ("Meeting with John Smith -> rescheduled", False),
        ("private final List<String> names = new ArrayList<>();", True),
    ],
)
def test_code_lines(line: str, code: bool) -> None:
    assert is_code_line(line) is code


def test_vocabulary_guard_words() -> None:
    assert all(is_vocabulary(w) for w in ("Java", "String", "Visa", "Mastercard", "False", "True", "None", "Generate", "Python", "Random"))
    assert not any(is_vocabulary(w) for w in ("Maria", "Lopez", "April", "Autumn", "Smith", "Brown"))


def test_an_iban_followed_by_a_word_or_in_lower_case_is_found(ctx: StageContext) -> None:
    texts = ["Refund to IBAN ES65 0967 9290 3081 0033 9075 before the deadline.", "iban de89370400440532013000 please"]
    out, findings = scrub(ctx, texts)
    assert out == ["Refund to IBAN <IBAN_CODE> before the deadline.", "iban <IBAN_CODE> please"]
    assert findings["recognizer"].to_list() == ["IbanRecognizer", "IbanRecognizer"]
