"""A seeded generator of realistic, messy demo corpora, one per record kind.

Support-desk data: tickets to classify, agent answers for instruction tuning, rated
responses for preference pairs, knowledge-base articles for continued pre-training.
Each corpus carries what real data carries: exact and near duplicates (formatting
variants, light edits), personal data of many types inside free text, label noise and
label spelling variants, class imbalance, a skewed source/language mix and malformed
lines. ``write_demo`` writes the files and the pipeline configs that curate them.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from curation.core.rundir import write_bytes

DEMO_KINDS = ("classification", "instruction", "ratings", "text")
CLASS_SHARES = {"billing": 0.36, "technical": 0.26, "account": 0.18, "shipping": 0.12, "feedback": 0.08}
SOURCES = {"email": 0.6, "chat": 0.3, "web_form": 0.1}
LANGUAGES = {"en": 0.9, "es": 0.06, "de": 0.04}
PRODUCTS = [
    "Nimbus Router X2",
    "AquaPure 300",
    "Claude 3 Haiku",
    "Orbit Desk Pro",
    "Zephyr Buds 2",
    "Atlas Cloud Backup",
    "Pixel Forge v4.2",
]

_TICKETS = {
    "billing": [
        "I was charged twice for my {product} subscription this month. My card {card} shows two payments of ${amount}. Please refund the duplicate charge.",
        "Hi, my invoice {order} lists a fee I never agreed to. Can you explain the extra ${amount} and correct my bill? You can reach me at {email}.",
        "The refund for order {order} has not arrived yet. It has been {days} days. My IBAN is {iban} if you need to send it again.",
        "Why did my monthly payment go up to ${amount}? Nobody told me about a price change for {product}.",
        "Please cancel the automatic renewal and stop charging card {card}. I want a refund of the last payment.",
    ],
    "technical": [
        "My {product} keeps disconnecting every few minutes since the {version} update. Error code {error}. I already restarted it twice.",
        "The app crashes when I open settings on {product}. Log attached, device IP {ip}. Please help, this is urgent.",
        "{product} will not turn on after the firmware update. The light blinks red {days} times and then nothing happens.",
        "Sync fails with error {error} on {product}. My server is at {ip} and the port is open. What should I check next?",
        "After installing version {version} the {product} runs very slowly and the screen freezes. Can you roll it back?",
    ],
    "account": [
        "I cannot log in to my account. The password reset email never arrives at {email}. My name is {name}.",
        "Please change the phone number on my account to {phone}. The old one is no longer mine.",
        "I want to delete my account and all my data. My username is linked to {email}.",
        "Someone logged in to my account from {ip}, that was not me. Please lock it. Call me at {phone}.",
        "How do I add a second user to my family account? My date of birth is {dob} if you need to verify me. SSN {ssn}.",
    ],
    "shipping": [
        "My package for order {order} has not arrived. The tracking has not moved in {days} days. I live at {address}.",
        "The {product} arrived damaged, the box was crushed. Please send a replacement to {address}.",
        "Can I change the delivery address for order {order} to {address}? It has not shipped yet.",
        "The courier left my parcel at the wrong house. Order {order}, my name is {name}, phone {phone}.",
    ],
    "feedback": [
        "Just wanted to say the support agent who helped me with {product} was fantastic. Thank you!",
        "I love the new design of the {product} app, it is so much easier to use now.",
        "Suggestion: please add a dark mode to {product}. Otherwise great product, five stars.",
        "Your team fixed my issue in minutes. Best customer service I have had, {name} was very kind.",
    ],
}
# Extra sentences per class and in general: a ticket combines several, as real ones do,
# so that two genuine tickets share a template's words but are not near-duplicates.
_DETAILS = {
    "billing": [
        "The charge appeared on {days} March.",
        "I checked my bank statement twice.",
        "My plan should be the basic one, not premium.",
        "The receipt number is {ticket}.",
        "I was promised a discount when I signed up.",
        "This is the second time this happened this year.",
        "The amount does not match the price on your website.",
        "I paid with PayPal the first time, not with a card.",
        "Please send me a corrected invoice as a PDF.",
        "My company needs a VAT receipt for this payment.",
    ],
    "technical": [
        "I tried a factory reset but it did not help.",
        "The problem started after a power cut.",
        "Other devices on the same network work fine.",
        "The status light is solid orange.",
        "It works for a while when I unplug it and plug it back in.",
        "The log shows a timeout after {days} seconds.",
        "I am on the latest version of the mobile app.",
        "My colleague has the same model and no problem.",
        "The fan is very loud when this happens.",
        "I already contacted you last week about this.",
    ],
    "account": [
        "I changed my phone recently and lost my authenticator.",
        "The verification code never arrives.",
        "My old email address was deactivated by my employer.",
        "I would like to keep my purchase history if possible.",
        "The account is shared with my partner.",
        "I get a message that my account is locked.",
        "I opened this account about {days} years ago.",
        "Please confirm by email once it is done.",
    ],
    "shipping": [
        "The tracking page says delivered but nothing is here.",
        "I paid for express delivery.",
        "Nobody rang the bell, I was home all day.",
        "The label on the box had the wrong postcode.",
        "I need it before the weekend for a gift.",
        "Two items were missing from the box.",
        "The courier's phone line is always busy.",
    ],
    "feedback": [
        "The setup took less than five minutes.",
        "I will recommend you to my friends.",
        "The instructions in the box were very clear.",
        "Keep up the great work.",
        "The new update fixed every problem I had.",
        "Your chat support answers much faster than before.",
    ],
}
_CONTEXT = [
    "I have been a customer for years.",
    "This is quite urgent for me.",
    "I use it mostly for work.",
    "I am writing from my partner's email.",
    "Sorry for the long message.",
    "I already read the help center article.",
    "Please answer by email rather than phone.",
    "I am travelling until next week.",
    "",
    "",
]
_OPENERS = ["", "Hello, ", "Hi team, ", "Good morning. ", "Dear support, "]
_CLOSERS = ["", " Thanks.", " Thank you!", " Regards, {name}", " Best, {name}. Ticket {ticket}"]
_DISCLAIMER = "\n\nCONFIDENTIALITY NOTICE: This message and any attachments are intended only for the addressee and may contain confidential information. If you received it in error, please delete it and notify the sender."


class _Fill:
    """Random values for the template slots, PII in several real-world formats."""

    def __init__(self, rng: random.Random) -> None:
        from faker import Faker

        self.rng = rng
        self.fake = Faker("en_US")
        self.fake.seed_instance(rng.randrange(2**31))

    def phone(self) -> str:
        r = self.rng
        a, b, c = r.randint(201, 989), r.randint(200, 999), r.randint(1000, 9999)
        return r.choice([f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"+1 {a} {b} {c}", f"{a}.{b}.{c}", f"+1-{a}-{b}-{c}"])

    def values(self) -> dict[str, Any]:
        r, f = self.rng, self.fake
        return {
            "name": f.name(),
            "email": f.email(),
            "phone": self.phone(),
            "ssn": f.ssn(),
            "card": f.credit_card_number(card_type=r.choice(["visa16", "mastercard", "amex"])),
            "iban": f.iban(),
            "ip": f.ipv4_public() if r.random() < 0.8 else f.ipv6(),
            "address": f.street_address() + ", " + f.city(),
            "dob": f.date_of_birth(minimum_age=18, maximum_age=80).strftime("%m/%d/%Y"),
            "product": r.choice(PRODUCTS),
            "order": f"ORD-{r.randint(100000, 999999)}",
            "ticket": f"TCK-{r.randint(1000, 9999)}",
            "error": f"E{r.randint(100, 999)}",
            "version": f"{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 9)}",
            "amount": f"{r.randint(5, 400)}.{r.randint(0, 99):02d}",
            "days": r.randint(2, 30),
        }


def _pick(rng: random.Random, shares: dict[str, float]) -> str:
    return rng.choices(list(shares), weights=list(shares.values()))[0]


def _light_edit(rng: random.Random, text: str) -> str:
    """A near duplicate: case, whitespace or line-break changes, or a few words edited."""
    words = text.split(" ")
    choice = rng.random()
    if choice < 0.3:
        return text.upper() if rng.random() < 0.3 else text.lower()
    if choice < 0.5:
        return "  ".join(words).replace(". ", ".\n")
    for _ in range(max(1, len(words) // 20)):
        i = rng.randrange(len(words))
        words[i] = rng.choice(["really", "please", "now", "again", "still", words[i] + ","])
    return " ".join(words)


def _label_variant(rng: random.Random, label: str) -> str:
    return rng.choice([label.capitalize(), f" {label}", label.upper(), f"{label} "])


def _ticket(rng: random.Random, fill: _Fill, label: str) -> str:
    v = fill.values()
    parts = [rng.choice(_TICKETS[label]), *rng.sample(_DETAILS[label], rng.randint(1, 2)), rng.choice(_CONTEXT)]
    body = " ".join(p for p in parts if p).format(**v)
    text = rng.choice(_OPENERS) + body + rng.choice(_CLOSERS).format(**v)
    return text + _DISCLAIMER if rng.random() < 0.15 else text


def _malformed(rng: random.Random, good: dict[str, Any]) -> bytes:
    line = json.dumps(good)
    kind = rng.randrange(5)
    if kind == 0:
        return line[: len(line) // 2].encode()  # truncated JSON
    if kind == 1:
        return line.encode()[:20] + b"\xff\xfe" + line.encode()[20:]  # invalid UTF-8
    if kind == 2:
        return json.dumps({k: v for k, v in good.items() if k not in ("label", "completion", "score", "response")}).encode()
    if kind == 3:
        return json.dumps({**good, next(iter(good)): 12345}).encode()  # wrong type
    return json.dumps({**good, next(iter(good)): "   "}).encode()  # empty text


def _with_mess(
    rng: random.Random, rows: list[dict[str, Any]], text_key: str, *, dup: float = 0.06, near: float = 0.06, bad: float = 0.015
) -> list[bytes]:
    out: list[bytes] = []
    for row in rows:
        out.append(json.dumps(row, ensure_ascii=False).encode("utf-8"))
        if rng.random() < dup:
            out.append(out[-1])
        if rng.random() < near:
            out.append(json.dumps({**row, text_key: _light_edit(rng, row[text_key])}, ensure_ascii=False).encode("utf-8"))
        if rng.random() < bad:
            out.append(_malformed(rng, row))
    return out


def classification_rows(n: int, seed: int) -> list[bytes]:
    rng, fill = random.Random(seed), None
    fill = _Fill(rng)
    rows = []
    for _ in range(n):
        label = _pick(rng, CLASS_SHARES)
        given = label if rng.random() > 0.06 else rng.choice([c for c in CLASS_SHARES if c != label])  # label noise
        if rng.random() < 0.08:
            given = _label_variant(rng, given)
        rows.append({"text": _ticket(rng, fill, label), "label": given, "source": _pick(rng, SOURCES), "language": _pick(rng, LANGUAGES)})
    return _with_mess(rng, rows, "text")


_APOLOGY = [
    "I am sorry for the trouble.",
    "Thanks for reaching out.",
    "Thank you for your patience.",
    "I understand how frustrating this is.",
    "",
]
_SIGNOFF = [
    "Is there anything else I can help with?",
    "Have a great day.",
    "Let me know if this solves it.",
    "Reply to this message if you need more help.",
    "",
]
_ANSWERS = {
    "billing": "I am sorry about the billing problem. I have checked your account and issued a refund for the duplicate charge; it will appear within 5 business days.",
    "technical": "Thanks for the details. Please update {product} to the latest firmware, then hold the reset button for ten seconds. If the error persists, reply with the new error code.",
    "account": "For your security, I have sent a verification link to the email on file. Once you confirm it, the change will take effect immediately.",
    "shipping": "I am sorry your order is late. I have opened an investigation with the courier and will send a replacement if the parcel is not found within 48 hours.",
    "feedback": "Thank you so much for the kind words! I have shared your message with the team.",
}


def instruction_rows(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    fill = _Fill(rng)
    rows = []
    for _ in range(n):
        label = _pick(rng, CLASS_SHARES)
        prompt = _ticket(rng, fill, label)
        completion = " ".join(p for p in (rng.choice(_APOLOGY), _ANSWERS[label], rng.choice(_SIGNOFF)) if p).format(**fill.values())
        r = rng.random()
        if r < 0.03:
            completion = "I'm sorry, but as an AI language model I cannot help with that request."
        elif r < 0.05:
            completion = completion[: len(completion) // 2]  # truncated mid-sentence
        row = {"prompt": prompt, "completion": completion, "source": _pick(rng, SOURCES)}
        if rng.random() < 0.3:
            row["system"] = "You are a helpful, concise customer support agent."
        rows.append(row)
    return _with_mess(rng, rows, "prompt")


def ratings_rows(n_prompts: int, seed: int) -> list[bytes]:
    """Several responses per prompt rated 1-5 by three annotators; one is harsher."""
    rng = random.Random(seed)
    fill = _Fill(rng)
    rows: list[dict[str, Any]] = []
    for p in range(n_prompts):
        label = _pick(rng, CLASS_SHARES)
        prompt = _ticket(rng, fill, label)
        good = _ANSWERS[label].format(**fill.values())
        candidates = [
            (good, 4.5),
            (good.split(".")[0] + ".", 3.0),
            ("Please contact support.", 1.5),
            (good + " Is there anything else I can help with?", 4.0),
        ]
        for r_i, (response, quality) in enumerate(candidates[: rng.randint(2, 4)]):
            for annotator in ("ann_a", "ann_b", "ann_c"):
                bias = -1.0 if annotator == "ann_c" else 0.0
                score = max(1.0, min(5.0, round(quality + bias + rng.gauss(0, 0.6))))
                rows.append(
                    {"id": f"p{p}-r{r_i}-{annotator}", "prompt": prompt, "response": response, "score": score, "annotator": annotator}
                )
    out = [json.dumps(r, ensure_ascii=False).encode("utf-8") for r in rows]
    for _ in range(max(1, len(rows) // 100)):
        out.insert(rng.randrange(len(out)), _malformed(rng, {k: v for k, v in rows[0].items() if k != "id"}))
    return out


def text_rows(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    fill = _Fill(rng)
    rows = []
    for _ in range(n):
        v = fill.values()
        label = _pick(rng, CLASS_SHARES)
        pool = [*_DETAILS[label], *_CONTEXT[:8], *_ANSWERS.values(), *(s for t in _TICKETS.values() for s in t)]
        steps = " ".join(rng.sample(pool, rng.randint(5, 8))).format(**v)
        rows.append(
            {"text": f"Knowledge base: {v['product']} ({label}).\n\n{steps}\n\nLast edited by {v['name']} ({v['email']}).", "source": "kb"}
        )
    return _with_mess(rng, rows, "text")


_PRIVACY = [
    "Under GDPR I want a copy of all personal data you hold about me. My account email is {email}.",
    "Please erase every record of my data, including call recordings. I am {name}, phone {phone}.",
    "Which third parties have you shared my personal information with? I never consented to marketing.",
]


def reference_rows(n: int, seed: int) -> list[bytes]:
    """A sample of "production" tickets: chat-heavy, more Spanish, and a privacy topic the training set lacks."""
    rng = random.Random(seed + 1)
    fill = _Fill(rng)
    rows = []
    for _ in range(n):
        if rng.random() < 0.15:
            text = rng.choice(_PRIVACY).format(**fill.values())
        else:
            text = _ticket(rng, fill, _pick(rng, CLASS_SHARES))
        rows.append(
            {
                "text": text,
                "source": _pick(rng, {"chat": 0.6, "email": 0.3, "web_form": 0.1}),
                "language": _pick(rng, {"en": 0.8, "es": 0.15, "de": 0.05}),
            }
        )
    return [json.dumps(r, ensure_ascii=False).encode("utf-8") for r in rows]


GENERATORS = {"classification": classification_rows, "instruction": instruction_rows, "ratings": ratings_rows, "text": text_rows}
DEFAULT_ROWS = {"classification": 2000, "instruction": 800, "ratings": 150, "text": 400}


def demo_config_text(kind: str) -> str:
    """The shipped YAML config that curates the demo corpus of ``kind``."""
    return (Path(__file__).parent / "demo_configs" / f"{kind}.yaml").read_text(encoding="utf-8")


def write_demo(out: Path, *, kinds: tuple[str, ...] = DEMO_KINDS, seed: int = 7, scale: float = 1.0) -> dict[str, Path]:
    """Write ``out/data/<kind>.jsonl`` and ``out/configs/<kind>.yaml``; return config paths by kind."""
    configs = {}
    for kind in kinds:
        n = max(10, int(DEFAULT_ROWS[kind] * scale))
        lines = GENERATORS[kind](n, seed)
        write_bytes(out / "data" / f"{kind}.jsonl", b"\n".join(lines) + b"\n")
        if kind == "classification":
            write_bytes(out / "data" / "reference.jsonl", b"\n".join(reference_rows(max(10, n // 4), seed)) + b"\n")
        configs[kind] = out / "configs" / f"{kind}.yaml"
        write_bytes(configs[kind], demo_config_text(kind).encode("utf-8"))
    return configs
