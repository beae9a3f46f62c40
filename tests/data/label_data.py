"""A generated classification set with known label errors, for the label audit.

Support tickets in six classes, written from many templates with synonym slots,
greetings, sign-offs and class-neutral filler, plus a small share of genuinely mixed
tickets (two topics, labelled by the first). Then the dataset is damaged on purpose:

- ``flip_rate`` of the rows get a wrong label (uniform over the other classes);
- ``variant_rate`` of the labels are re-spelled (``Billing``, `` billing``, ``BILLING``),
  which is not an error: the audit must normalise them;
- ``conflicts`` texts are copied with a different label (exact-text conflicts; the copy
  is the wrong one).

``generate`` returns the frame (``id, text, label``) and the truth (``id, true_label,
is_error``), so a benchmark can score flagged rows against the damaged ones.
"""

from __future__ import annotations

import random

import polars as pl

CLASSES = ("billing", "technical", "shipping", "account", "returns", "feedback")

_SLOTS: dict[str, list[str]] = {
    "plan": ["premium", "basic", "family", "business", "annual", "monthly", "pro"],
    "charged": ["charged", "billed", "debited", "invoiced"],
    "twice": ["twice", "two times", "double", "three times"],
    "device": ["iPhone", "Android phone", "laptop", "tablet", "desktop app", "smart TV", "browser"],
    "crash": ["crashes", "freezes", "keeps closing", "shows a blank screen", "hangs", "stops responding"],
    "package": ["package", "parcel", "order", "delivery", "shipment", "box"],
    "late": ["late", "delayed", "still not here", "lost in transit", "stuck at the depot", "overdue"],
    "item": ["jacket", "headphones", "blender", "shoes", "lamp", "backpack", "charger", "monitor"],
    "broken": ["broken", "damaged", "the wrong size", "defective", "not as described", "cracked"],
    "n": ["2", "3", "5", "10", "14", "30"],
    "praise": ["great", "fantastic", "excellent", "really helpful", "impressive", "lovely"],
    "login": ["log in", "sign in", "access my profile", "get into my account"],
}

_TEMPLATES: dict[str, list[str]] = {
    "billing": [
        "I was {charged} {twice} for my {plan} subscription this month.",
        "My invoice shows the wrong amount for the {plan} plan.",
        "Why did my credit card payment get declined at checkout?",
        "Please update the payment method on file, my old card expired.",
        "There is an unexpected fee on my last statement.",
        "Can I get a receipt for the {plan} plan I paid for?",
        "The price I was {charged} does not match the quote for the {plan} tier.",
        "How do I switch from monthly to yearly billing?",
        "My bank shows a pending charge I do not recognise.",
        "The discount code was not applied to my invoice.",
    ],
    "technical": [
        "The app {crash} on my {device} when I open settings.",
        "Since the update the {device} version {crash} every few minutes.",
        "I get error code {n}0{n} when syncing on my {device}.",
        "Notifications stopped working on my {device}.",
        "The website {crash} when I upload a photo.",
        "Video playback stutters on my {device} even on fast wifi.",
        "The search function returns no results anymore.",
        "Dark mode is broken on the {device} build.",
        "The export button does nothing in the {device} app.",
        "Pages load very slowly and then time out.",
    ],
    "shipping": [
        "My {package} is {late}, the tracking has not moved in {n} days.",
        "The courier marked my {package} as delivered but nothing arrived.",
        "Can you change the delivery address for my {package}?",
        "Tracking number does not work for my {package}.",
        "When will my {package} be dispatched? It has been {n} days.",
        "The {package} was left at the wrong door.",
        "Is express delivery available for my area?",
        "The delivery driver never showed up for my {package}.",
        "My {package} was split and only half arrived.",
        "Do you ship to Canada and how long does it take?",
    ],
    "account": [
        "I cannot {login} even after resetting my password.",
        "Please delete my account and all my data.",
        "How do I change the email address on my profile?",
        "My account was locked after too many attempts to {login}.",
        "I want to enable two factor authentication.",
        "Someone else may have access to my account.",
        "The verification email never arrives when I try to {login}.",
        "Can I merge my two accounts into one?",
        "I would like to change my username.",
        "My profile settings are not saved after I {login}.",
    ],
    "returns": [
        "The {item} I received is {broken}, I want to send it back.",
        "How do I return the {item}? It is {broken}.",
        "I would like to exchange the {item} for a different size.",
        "Can you send me a return label for the {item}?",
        "The {item} arrived {broken} and I need a replacement.",
        "Is it too late to return the {item} after {n} days?",
        "I sent the {item} back {n} days ago, has the return been processed?",
        "Where do I drop off the {item} for a return?",
        "The {item} does not fit, can I swap it?",
        "I want to return the {item} unopened.",
    ],
    "feedback": [
        "Your support team was {praise}, thank you!",
        "I love the new design, it looks {praise}.",
        "Just wanted to say the {plan} features are {praise}.",
        "Suggestion: please add a wishlist feature.",
        "The onboarding tutorial was {praise} and easy to follow.",
        "It would be nice to have more colour options.",
        "Great experience overall, I will recommend you to friends.",
        "Please consider adding a student discount in the future.",
        "The recent changes made everything feel {praise}.",
        "I think the old layout was easier to use, just my opinion.",
    ],
}

_OPENERS = ["", "", "Hi, ", "Hello team, ", "Hey, ", "Good morning. ", "Quick question: ", "Hi there! ", "Dear support, "]
_FILLER = [
    "",
    "",
    "",
    " I have been a customer for {n} years.",
    " This is the second time I am writing about this.",
    " I tried again this morning.",
    " My order number is on the previous email.",
    " Please get back to me soon.",
]
_CLOSERS = ["", "", " Thanks.", " Thank you!", " Regards, Sam", " Cheers", " Best, Alex", " Please help."]


def _fill(template: str, rng: random.Random) -> str:
    out = template
    for slot, values in _SLOTS.items():
        while "{" + slot + "}" in out:
            out = out.replace("{" + slot + "}", rng.choice(values), 1)
    return out


def _ticket(label: str, rng: random.Random, *, mixed: bool) -> str:
    body = _fill(rng.choice(_TEMPLATES[label]), rng)
    if mixed:  # a second, lesser topic: the label stays with the first
        other = rng.choice([c for c in CLASSES if c != label])
        body += " Also, " + _fill(rng.choice(_TEMPLATES[other]), rng).lower()
    filler = _fill(rng.choice(_FILLER), rng)
    return f"{rng.choice(_OPENERS)}{body}{filler}{rng.choice(_CLOSERS)}".strip()


def _variant(label: str, rng: random.Random) -> str:
    return rng.choice([label.capitalize(), f" {label}", label.upper(), f"{label.capitalize()} ", f"  {label.upper()}"])


def generate(
    n: int = 5000, *, seed: int = 0, flip_rate: float = 0.07, variant_rate: float = 0.1, mixed_rate: float = 0.05, conflicts: int = 20
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(data, truth)``: ``n + conflicts`` tickets with labels damaged as the module says."""
    rng = random.Random(seed)
    rows, truth = [], []
    for i in range(n):
        true = CLASSES[i % len(CLASSES)]
        text = _ticket(true, rng, mixed=rng.random() < mixed_rate)
        given = rng.choice([c for c in CLASSES if c != true]) if rng.random() < flip_rate else true
        rows.append((f"r{i:06d}", text, given))
        truth.append((f"r{i:06d}", true))
    for j, source in enumerate(rng.sample(range(n), conflicts)):
        text, right = rows[source][1], truth[source][1]
        rows.append((f"c{j:06d}", text, rng.choice([c for c in CLASSES if c != right])))
        truth.append((f"c{j:06d}", right))
    labels = [_variant(g, rng) if rng.random() < variant_rate else g for _, _, g in rows]
    data = pl.DataFrame({"id": [r[0] for r in rows], "text": [r[1] for r in rows], "label": labels})
    t = pl.DataFrame({"id": [r[0] for r in truth], "true_label": [r[1] for r in truth]})
    t = t.with_columns(is_error=pl.Series([r[2] for r in rows]) != pl.col("true_label"))
    return data.sample(fraction=1.0, shuffle=True, seed=seed), t
