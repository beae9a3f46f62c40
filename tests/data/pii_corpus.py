"""A labelled synthetic PII corpus for ``eval_pii.py``: Faker values in realistic templates.

Every sample is a text with its gold PII spans (entity, value, offsets) and its decoys:
strings that look like PII (model and product names, version strings, order and
ticket ids, error codes, room numbers, event dates) but are not. The same seed gives
the same corpus.
"""

from __future__ import annotations

import ipaddress
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from faker import Faker

# Real, assigned US area codes, so that phone numbers are valid numbers like real ones.
AREA_CODES = (
    201,
    202,
    206,
    212,
    213,
    214,
    215,
    303,
    305,
    310,
    312,
    313,
    404,
    408,
    410,
    415,
    503,
    512,
    602,
    617,
    646,
    702,
    713,
    718,
    720,
    773,
    804,
    808,
    917,
    919,
)
PHONE_FORMATS = (
    "({a}) {e}-{l}",
    "{a}-{e}-{l}",
    "{a}.{e}.{l}",
    "{a} {e} {l}",
    "{a}{e}{l}",
    "+1 {a} {e} {l}",
    "+1-{a}-{e}-{l}",
    "+1 ({a}) {e}-{l}",
    "1-{a}-{e}-{l}",
    "+1{a}{e}{l}",
)
DOB_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%B %d, %Y", "%d %B %Y", "%b %d, %Y", "%m-%d-%Y")
IBAN_LOCALES = ("de_DE", "fr_FR", "nl_NL", "es_ES", "it_IT", "en_GB")
CARD_TYPES = ("visa16", "mastercard", "amex", "discover")

MODEL_NAMES = (
    "Claude 3 Haiku", "Claude 3.5 Sonnet", "Claude 3 Opus", "GPT-4o", "GPT-4 Turbo", "Llama 3.1 8B", "Llama 2 70B",
    "Mistral 7B", "Mixtral 8x7B", "Gemini 1.5 Pro", "Gemma 2 9B", "Phi-3 Mini", "Qwen2.5 14B", "Falcon 40B", "Command R+",
)  # fmt: skip
PRODUCTS = (
    "iPhone 15 Pro", "Pixel 8", "Galaxy S24 Ultra", "ThinkPad X1 Carbon", "Surface Pro 9", "Kindle Paperwhite",
    "PlayStation 5", "MacBook Air M2", "Echo Dot", "Apple Watch Series 9", "Jetson Nano", "Raspberry Pi 4",
)  # fmt: skip
ERRORS = ("E1234", "0x80070005", "ERR_CONNECTION_RESET", "HTTP 503", "exit code 137", "ORA-00942", "SIGSEGV", "errno 111")
EVENT_DATES = ("March 3, 2024", "2024-03-12", "last Tuesday", "Q3 2023", "11/14/2023")


@dataclass
class Sample:
    """One labelled text: gold spans ``(entity, value, start, end)`` and decoys ``(kind, value)``."""

    template: str
    text: str = ""
    gold: list[tuple[str, str, int, int]] = field(default_factory=list)
    decoys: list[tuple[str, str]] = field(default_factory=list)

    def lit(self, s: str) -> Sample:
        self.text += s
        return self

    def pii(self, entity: str, value: str) -> Sample:
        self.gold.append((entity, value, len(self.text), len(self.text) + len(value)))
        self.text += value
        return self

    def decoy(self, kind: str, value: str) -> Sample:
        self.decoys.append((kind, value))
        self.text += value
        return self


class Values:
    """Faker-backed PII and decoy values, all drawn from one seeded RNG."""

    def __init__(self, seed: int) -> None:
        Faker.seed(seed)
        self.rng = random.Random(seed)
        self.fake = Faker("en_US")
        self.ibans = {loc: Faker(loc) for loc in IBAN_LOCALES}
        for i, f in enumerate(self.ibans.values()):
            f.seed_instance(seed + i + 1)

    def phone(self) -> str:
        e = self.rng.choice([n for n in range(200, 1000) if n % 100 != 11])
        return self.rng.choice(PHONE_FORMATS).format(a=self.rng.choice(AREA_CODES), e=e, l=f"{self.rng.randrange(10000):04d}")

    def ssn(self) -> str:
        ssn = self.fake.ssn()
        return ssn if self.rng.random() < 0.8 else ssn.replace("-", " ")

    def card(self) -> str:
        kind = self.rng.choice(CARD_TYPES)
        n = self.fake.credit_card_number(card_type=kind)
        style = self.rng.random()
        if style < 0.5:
            return n
        groups = [n[:4], n[4:10], n[10:]] if kind == "amex" else [n[i : i + 4] for i in range(0, len(n), 4)]
        return (" " if style < 0.75 else "-").join(groups)

    def iban(self) -> str:
        iban = self.ibans[self.rng.choice(IBAN_LOCALES)].iban()
        return iban if self.rng.random() < 0.6 else " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))

    def ip(self) -> str:
        if self.rng.random() < 0.6:
            return self.fake.ipv4_public()
        v6 = self.fake.ipv6()
        return v6 if self.rng.random() < 0.5 else ipaddress.IPv6Address(v6).compressed

    def email(self) -> str:
        return self.rng.choice((self.fake.email, self.fake.company_email, self.fake.free_email))()

    def name(self) -> str:
        return self.fake.name() if self.rng.random() < 0.7 else f"{self.fake.first_name()} {self.fake.last_name()}"

    def address(self, sep: str = ", ") -> str:
        return self.fake.address().replace("\n", sep)

    def dob(self) -> str:
        return self.fake.date_of_birth(minimum_age=18, maximum_age=90).strftime(self.rng.choice(DOB_FORMATS))

    def model(self) -> str:
        return self.rng.choice(MODEL_NAMES)

    def product(self) -> str:
        return self.rng.choice(PRODUCTS)

    def version(self) -> str:
        r = self.rng
        return r.choice(
            (
                f"v{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 9)}",
                f"{r.randint(1, 5)}.{r.randint(0, 12)}.{r.randint(0, 9)}-rc.{r.randint(1, 4)}",
                f"build {r.randint(19000, 26000)}.{r.randint(100, 4000)}",
            )
        )

    def order(self) -> str:
        r = self.rng
        return r.choice(
            (
                f"ORD-{r.randint(2019, 2025)}-{r.randint(100000, 999999)}",
                f"#{r.randint(10000, 99999)}-{r.randint(10, 99)}",
                f"PO {r.randint(4500000000, 4599999999)}",
            )
        )

    def ticket(self) -> str:
        r = self.rng
        return r.choice(
            (
                f"TCK-{r.randint(10000, 99999)}",
                f"INC{r.randint(1000000, 9999999)}",
                f"JIRA-{r.randint(100, 9999)}",
                f"SR-{r.randint(2019, 2025)}-{r.randint(1, 9999):04d}",
            )
        )

    def error(self) -> str:
        return self.rng.choice(ERRORS)

    def room(self) -> str:
        r = self.rng
        return r.choice(
            (
                f"room {r.randint(100, 1999)}",
                f"Room {r.randint(1, 9)}{r.choice('ABCD')}",
                f"conference room {r.choice('ABCDEFG')}{r.randint(1, 9)}",
                f"Lab {r.randint(1, 12)}",
            )
        )

    def event_date(self) -> str:
        return self.rng.choice(EVENT_DATES)


def _ticket(v: Values) -> Sample:
    s = Sample("support_ticket").lit("Ticket ").decoy("ticket_id", v.ticket()).lit(": customer ").pii("PERSON", v.name()).lit(" (")
    s.pii("EMAIL_ADDRESS", v.email()).lit(") reports that the ").decoy("product", v.product()).lit(" app crashes with ").decoy(
        "error_code", v.error()
    )
    s.lit(" since the update to ").decoy("version", v.version()).lit(" on ").decoy("event_date", v.event_date()).lit(
        ". Callback number: "
    ).pii("PHONE_NUMBER", v.phone())
    return s.lit(". Ship the replacement to ").pii("STREET_ADDRESS", v.address()).lit(".")


def _email(v: Values) -> Sample:
    first = v.fake.first_name()
    s = Sample("email").lit("Hi ").pii("PERSON", first).lit(",\n\nThanks for reaching out about order ").decoy("order_id", v.order())
    s.lit(". I've updated the card on file to ").pii("CREDIT_CARD", v.card()).lit(" and the refund will go to IBAN ").pii(
        "IBAN_CODE", v.iban()
    )
    s.lit(". Our assistant runs on ").decoy("model_name", v.model()).lit(
        ", so replies may be short. If anything looks off, call me at "
    ).pii("PHONE_NUMBER", v.phone())
    return s.lit(".\n\nBest regards,\n").pii("PERSON", v.name()).lit("\n").pii("EMAIL_ADDRESS", v.email())


def _chat(v: Values) -> Sample:
    s = Sample("chat").lit("user: my ssn is ").pii("US_SSN", v.ssn()).lit(" and my date of birth is ").pii("DATE_OF_BIRTH", v.dob())
    s.lit(", can you check why my account is locked? I'm logging in from ").pii("IP_ADDRESS", v.ip()).lit(" on my ").decoy(
        "product", v.product()
    )
    s.lit("\nassistant: Thanks. I see failed logins from ").pii("IP_ADDRESS", v.ip()).lit(" with ").decoy("error_code", v.error())
    return (
        s.lit(". I opened ")
        .decoy("ticket_id", v.ticket())
        .lit(" and ")
        .pii("PERSON", v.name())
        .lit(" from ")
        .decoy("room", v.room())
        .lit(" will follow up.")
    )


def _form(v: Values) -> Sample:
    s = (
        Sample("form")
        .lit("Name: ")
        .pii("PERSON", v.name())
        .lit("\nDOB: ")
        .pii("DATE_OF_BIRTH", v.dob())
        .lit("\nSSN: ")
        .pii("US_SSN", v.ssn())
    )
    s.lit("\nPhone: ").pii("PHONE_NUMBER", v.phone()).lit("\nEmail: ").pii("EMAIL_ADDRESS", v.email()).lit("\nAddress: ").pii(
        "STREET_ADDRESS", v.address()
    )
    s.lit("\nCard: ").pii("CREDIT_CARD", v.card()).lit("\nNotes: asked about the ").decoy("model_name", v.model()).lit(
        " integration, see "
    ).decoy("ticket_id", v.ticket())
    return s.lit(", order ").decoy("order_id", v.order()).lit(".")


def _note(v: Values) -> Sample:
    s = (
        Sample("note")
        .lit("Spoke with ")
        .pii("PERSON", v.name())
        .lit(" today. They moved to ")
        .pii("STREET_ADDRESS", v.address())
        .lit(" and were born on ")
    )
    s.pii("DATE_OF_BIRTH", v.dob()).lit(". They compared ").decoy("model_name", v.model()).lit(" with ").decoy("model_name", v.model())
    s.lit(" for their team and asked us to bill ").pii("IBAN_CODE", v.iban()).lit(". Meeting moved to ").decoy("room", v.room())
    return s.lit("; their manager ").pii("PERSON", v.name()).lit(" can be reached at ").pii("PHONE_NUMBER", v.phone()).lit(".")


def _log(v: Values) -> Sample:
    s = (
        Sample("log")
        .lit("2024-05-02T10:22:01Z WARN login failed user=")
        .pii("EMAIL_ADDRESS", v.email())
        .lit(" src=")
        .pii("IP_ADDRESS", v.ip())
    )
    s.lit(" client=").decoy("product", v.product()).lit(" agent=").decoy("version", v.version()).lit(" err=").decoy("error_code", v.error())
    return s.lit(" ref=").decoy("ticket_id", v.ticket()).lit(" card_last_used=").pii("CREDIT_CARD", v.card())


# -- the hard cases of issue 19: numbers people write that are not valid, names in role and quote positions --

# Phone layouts with digits that phonenumbers does not validate (exchange codes starting 0/1,
# unassigned area codes, drama ranges) as well as valid ones; {a} area, {e} exchange, {l} line.
WRITTEN_PHONES = (
    "{a}-{e}-{l}", "+1 {a} {e} {l}", "{a}.{e}.{l}", "({a}) {e}-{l}", "+1-{a}-{e}-{l}", "1-{a}-{e}-{l}", "+1 ({a}) {e}-{l}",
    "+1{a}{e}{l}", "+44 7700 9{d5}", "07700 9{d5}", "020 7946 {l}", "+44 20 7946 {l}", "+49 30 {d8}", "030 {d8}",
    "0171 {d7}", "+33 6 {d2} {d2} {d2} {d2}", "01 {d2} {d2} {d2} {d2}", "+91 98{d3} {d5}", "98{d3}-{d5}",
)  # fmt: skip
PHONE_CONTEXTS = (
    "call me on {}", "Callback: {}", "my cell is {}", "you can reach me at {}", "Tel: {}", "mobile {}", "WhatsApp {}",
    "fax it to {}", "phone {}", "{} (mobile)", "ring me on {}", "text or call {}", "my phone number is {}", "call back on {}",
)  # fmt: skip
ROLE_PHRASES = (
    "Beneficiary: {}", "the beneficiary is {}", "account holder {}", "Account holder: {}", "Customer: {}",
    "customer {}", "the client, {}, ", "patient {}", "payee {}", "the cardholder {}", "recipient {}", "tenant {}",
)  # fmt: skip
QUOTE_OPENERS = ('{} wrote: "', "> {} wrote:\n> ", "{} said ", '"{} asked ', "On Tue, Mar 4, 2025 at 9:12 AM, {} wrote:\n")
# number-shaped strings that are not phone numbers, several laid out like one
DECOY_NUMBERS = (
    "order {d3}-{d3}-{d4}", "SKU {d4}-{d4}-{d2}", "build {d5}.{d4}", "port {d4}", "version 10.0.{d5}", "error code 0x{d4}{d4}",
    "ticket #{d8}", "${d1},{d3}.{d2}", "{d2}/{d2}/2024", "invoice {d3}.{d3}.{d4}", "case {d3} {d3} {d4}", "{d1} {d3} {d3} EUR",
)  # fmt: skip


# Support text capitalises ordinary words (UI labels, sentence openers, stressed words) and misspells brands;
# spaCy tags them PERSON. The people in it have names that are English words too (given names and surnames).
UI_LABELS = ("Cancel Transaction", "Freeze Card", "Card Delivery", "Pending Payment", "Exchange Rate", "Top Up Limits", "Verify Identity")
OPENER_WORDS = ("Withdrawal", "Transfer", "Cashback", "Contactless", "Refund", "Statement")
STRESSED_WORDS = ("Seller", "Merchant", "Landlord", "Recipient", "Shop", "Broker")
BRAND_TYPOS = ("Mastecard", "Paypall", "Revolutt", "Amazom", "Mastercad", "Googel")
# Given names that are English words and that spaCy's small model tags in these sentences; those it misses in
# them (Ivy, Ruby, Heather, Holly, Crystal, Summer, Amber, Chase) measure NER, not the guards, and are left out
# (docs/pii.md lists them as a known miss).
WORD_GIVEN = ("Grant", "Mark", "Bill", "Jack", "Frank", "Victor", "Ray", "Iris", "Hazel", "Jasmine", "Miles", "Rusty")
WORD_SURNAMES = ("Baker", "Cook", "Price", "Stone", "Hill", "Young", "King", "Wood", "Long", "Fields", "Marsh", "Black")
WORD_PEOPLE = (
    "{} from your fraud team phoned me about it.", "My husband {} wants a card on this account too.",
    "I asked {} at the branch and nobody could help.", "Please send the new card to my son {}.",
)  # fmt: skip


def _fill(v: Values, shape: str, **fixed: int | str) -> str:
    """``shape`` with each ``{dN}`` a fresh run of N random digits (first one non-zero for ``d1``) and ``fixed`` values."""

    def one(m: re.Match[str]) -> str:
        key = m.group(1)
        if key in fixed:
            return str(fixed[key])
        n = int(key[1:])
        return str(v.rng.randint(1, 9)) if n == 1 else "".join(str(v.rng.randrange(10)) for _ in range(n))

    return re.sub(r"\{(\w+)\}", one, shape)


def _written_phone(v: Values) -> str:
    r = v.rng
    a, e = r.randint(200, 999), r.choice([r.randint(100, 199), r.randint(200, 999)])
    return _fill(v, r.choice(WRITTEN_PHONES), a=a, e=e, l=f"{r.randrange(10000):04d}")


def _number_decoy(v: Values) -> str:
    return _fill(v, v.rng.choice(DECOY_NUMBERS))


def _phones(v: Values) -> Sample:
    s = Sample("written_phone").lit("About ").decoy("number", _number_decoy(v)).lit(": it still fails on ").decoy("version", v.version())
    s.lit(" and I need an update today. If you need details, ")
    head, tail = v.rng.choice(PHONE_CONTEXTS).split("{}")
    s.lit(head).pii("PHONE_NUMBER", _written_phone(v)).lit(tail + ". The previous payment, reference ").decoy("number", _number_decoy(v))
    return s.lit(f", went through with {v.rng.choice(('Visa', 'Mastercard', 'PayPal'))}.")


def _roles(v: Values) -> Sample:
    head, tail = v.rng.choice(ROLE_PHRASES).split("{}")
    s = (
        Sample("role_name")
        .lit("Transfer request for ")
        .decoy("product", v.product())
        .lit(" subscription. ")
        .lit(head[:1].upper() + head[1:])
    )
    name = f"{v.fake.first_name()} {v.fake.last_name()}"
    s.pii("PERSON", name).lit(tail or " ").lit("asked us to send the refund to IBAN ").pii("IBAN_CODE", v.iban())
    return s.lit(" before the ").decoy("event_date", v.event_date()).lit(" deadline, quoting ").decoy("ticket_id", v.ticket()).lit(".")


def _quotes(v: Values) -> Sample:
    head, tail = v.rng.choice(QUOTE_OPENERS).split("{}")
    name = f"{v.fake.first_name()} {v.fake.last_name()}"
    s = Sample("quote_name").lit(head).pii("PERSON", name).lit(tail).lit("the ").decoy("product", v.product()).lit(" on ")
    return s.decoy("version", v.version()).lit(" keeps rebooting with ").decoy("error_code", v.error()).lit(", please advise.")


def _capitalised(v: Values) -> Sample:
    r = v.rng
    s = Sample("capitalised_words").decoy("ui_label", r.choice(UI_LABELS)).lit("\nAs ").decoy("capital_word", r.choice(OPENER_WORDS))
    s.lit(" was working fine so far, but today it got declined. I would rather pay with ").decoy("brand_typo", r.choice(BRAND_TYPOS))
    s.lit(" anyway. The ").decoy("capital_word", r.choice(STRESSED_WORDS)).lit(" says the money never arrived. ")
    head, tail = r.choice(WORD_PEOPLE).split("{}")
    name = r.choice(WORD_GIVEN) if "son" in head else f"{r.choice(WORD_GIVEN)} {r.choice(WORD_SURNAMES)}"
    return s.lit(head).pii("PERSON", name).lit(tail)


TEMPLATES: tuple[Callable[[Values], Sample], ...] = (_ticket, _email, _chat, _form, _note, _log)
# issue 19: written phones, role and quote names; then capitalised ordinary words beside word-shaped names
HARD_TEMPLATES: tuple[Callable[[Values], Sample], ...] = (_phones, _roles, _quotes, _capitalised)
HARD_NAMES = frozenset(("written_phone", "role_name", "quote_name", "capitalised_words"))


def make_corpus(n: int, *, seed: int = 7, hard: bool = True) -> list[Sample]:
    """``n`` labelled samples, templates in rotation, values from Faker seeded with ``seed``.

    With ``hard`` (the default) one text in three comes from the hard templates (written
    phone numbers in many layouts and contexts, names after role words and opening
    quotes, capitalised ordinary words and misspelt brands beside names that are English
    words); the others rotate through the original six.
    """
    values = Values(seed)
    out = []
    for i in range(n):
        if hard and i % 3 == 2:
            out.append(HARD_TEMPLATES[(i // 3) % len(HARD_TEMPLATES)](values))
        else:
            out.append(TEMPLATES[(i - i // 3 if hard else i) % len(TEMPLATES)](values))
    return out
