"""A generated near-duplicate corpus with known duplicate groups, for the dedup stage.

Emails and support messages of realistic length (about 2 KB): sentences drawn from a
Zipf-distributed vocabulary (Faker's English word list as the frequent head, made-up
words as the long tail), in paragraphs, some of them ending in one of a few long
boilerplate blocks (email disclaimers, signatures). Then duplicates are added:

- ``exact``: a byte-for-byte copy;
- ``format``: the same text with its case, spacing or line breaks changed (``\\r\\n``,
  doubled spaces, trailing blanks, upper/lower case);
- ``edit``: 3-8% of the words substituted, deleted or inserted (a re-sent, lightly
  edited message).

The hard negatives are the distinct documents that share a boilerplate block: they
overlap a lot but are not duplicates. Rows are shuffled, so the original of a group is
not necessarily its first row.

``generate`` returns the frame (``id, text``) and the truth (``id, group, variant``):
rows with the same ``group`` are duplicates of each other; ``variant`` is ``original``,
``exact``, ``format`` or ``edit``. ``score`` turns dedup findings into precision/recall.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

_SYLLABLES = (
    "ba",
    "ko",
    "ri",
    "tel",
    "mun",
    "sa",
    "ve",
    "dor",
    "li",
    "quen",
    "pa",
    "tro",
    "mi",
    "gan",
    "zu",
    "fel",
    "ra",
    "no",
    "cas",
    "ti",
)
_DISCLAIMER_WORDS = (60, 160)  # long: up to about half of a short message


@dataclass(frozen=True)
class Spec:
    """Knobs of the corpus; the defaults are the benchmark's."""

    dup_groups: float = 0.3  # share of originals that get copies
    max_copies: int = 3  # copies per duplicated original: 1..max_copies
    boilerplate: float = 0.35  # share of originals ending in a shared boilerplate block
    edit_rate: tuple[float, float] = (0.03, 0.08)  # word edits of an `edit` copy
    body_words: tuple[int, int] = (60, 600)  # clip of the lognormal body length
    mean_words: int = 300  # about 2 KB of text
    variants: tuple[float, float, float] = (0.25, 0.25, 0.5)  # exact, format, edit


def _vocabulary(rng: np.random.Generator, size: int = 40_000) -> tuple[np.ndarray, np.ndarray]:
    from faker.providers.lorem.en_US import Provider

    head = list(dict.fromkeys(Provider.word_list))
    n_tail = size - len(head)
    sylls = rng.integers(0, len(_SYLLABLES), size=(n_tail, 4))
    lens = rng.integers(2, 5, size=n_tail)
    tail = [
        "".join(_SYLLABLES[s] for s in row[:k]) + str(i % 7 if i % 5 == 0 else "")
        for i, (row, k) in enumerate(zip(sylls, lens, strict=True))
    ]
    words = np.array(head + tail, dtype=object)
    p = 1.0 / np.arange(1, len(words) + 1) ** 1.05
    return words, p / p.sum()


class _Writer:
    """Writes paragraphs of sentences from the vocabulary (vectorised: generation is not what is measured)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.words, p = _vocabulary(rng)
        self.cdf = np.cumsum(p)

    def sample_words(self, n: int) -> list[str]:
        idx = np.searchsorted(self.cdf, self.rng.random(n) * self.cdf[-1])
        return list(self.words[np.minimum(idx, len(self.words) - 1)])

    def text(self, n_words: int) -> str:
        words = self.sample_words(n_words)
        cuts = np.cumsum(self.rng.integers(6, 19, size=n_words // 6 + 1))
        ends = self.rng.choice(np.array([".", ".", ".", "?", "!"]), size=len(cuts))
        commas = self.rng.random(len(cuts)) < 0.4
        breaks = self.rng.integers(2, 6, size=len(cuts))
        parts, start, in_par = [], 0, 0
        for k, end in enumerate(cuts):
            sent = words[start : min(int(end), n_words)]
            if not sent:
                break
            sent[0] = sent[0].capitalize()
            if len(sent) > 7 and commas[k]:
                sent[len(sent) // 2] += ","
            in_par += 1
            sep = "\n\n" if in_par >= breaks[k] else " "
            in_par = 0 if sep != " " else in_par
            parts.append(" ".join(sent) + str(ends[k]) + sep)
            start = int(end)
        return "".join(parts).strip()


def _format_variant(text: str, rng: np.random.Generator) -> str:
    choice = int(rng.integers(0, 4))
    if choice == 0:
        text = text.upper() if rng.random() < 0.3 else text.lower()
    elif choice == 1:
        text = text.replace("\n", "\r\n").replace(". ", ".  ")
    elif choice == 2:
        text = "  " + text.replace("\n\n", "\n \n\t") + " \n\n"
    else:
        text = text.replace(", ", ",\n").replace("\n\n", "\n")
    return text


def _edit_variant(text: str, rate: float, writer: _Writer) -> str:
    tokens = text.split(" ")
    n_edits = max(1, round(rate * len(tokens)))
    rng = writer.rng
    fresh = writer.sample_words(n_edits)
    for k, pos in enumerate(sorted(rng.choice(len(tokens), size=n_edits, replace=False), reverse=True)):
        op = rng.random()
        if op < 0.5:
            tokens[pos] = fresh[k]
        elif op < 0.75 and len(tokens) > 2:
            del tokens[pos]
        else:
            tokens.insert(int(pos), fresh[k])
    return " ".join(tokens)


def generate(n_docs: int, *, seed: int = 0, spec: Spec | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``n_docs`` rows (``id, text``) and their truth (``id, group, variant``)."""
    spec = spec or Spec()
    rng = np.random.default_rng(seed)
    writer = _Writer(rng)
    disclaimers = [writer.text(int(rng.integers(*_DISCLAIMER_WORDS))).replace("\n\n", " ") for _ in range(8)]
    return _assemble(
        n_docs, rng, lambda: _original(writer, disclaimers, spec), lambda original, kind: _copy(original, kind, writer, spec), spec, "d"
    )


def _assemble(
    n_docs: int,
    rng: np.random.Generator,
    original: Callable[[], str],
    copy: Callable[[str, str], str],
    spec: Spec | BoilerplateSpec,
    prefix: str,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Originals and their copies (``spec.dup_groups`` of the originals, 1 to ``spec.max_copies`` copies each), shuffled."""
    texts: list[str] = []
    groups: list[int] = []
    variants: list[str] = []
    group = 0
    while len(texts) < n_docs:
        text = original()
        texts.append(text)
        groups.append(group)
        variants.append("original")
        if rng.random() < spec.dup_groups:
            for _ in range(int(rng.integers(1, spec.max_copies + 1))):
                kind = str(rng.choice(["exact", "format", "edit"], p=list(spec.variants)))
                texts.append(copy(text, kind))
                groups.append(group)
                variants.append(kind)
        group += 1
    order = rng.permutation(len(texts))[:n_docs]
    ids = [f"{prefix}{i:07d}" for i in range(n_docs)]
    df = pl.DataFrame({"id": ids, "text": [texts[i] for i in order]})
    truth = pl.DataFrame({"id": ids, "group": [groups[i] for i in order], "variant": [variants[i] for i in order]})
    return df, truth


def _original(writer: _Writer, disclaimers: list[str], spec: Spec) -> str:
    rng = writer.rng
    n = int(np.clip(rng.lognormal(np.log(spec.mean_words), 0.45), *spec.body_words))
    body = writer.text(n)
    if rng.random() < spec.boilerplate:
        body += "\n\n--\n" + disclaimers[int(rng.integers(len(disclaimers)))]
    return body


def _copy(original: str, kind: str, writer: _Writer, spec: Spec) -> str:
    if kind == "exact":
        return original
    if kind == "format":
        return _format_variant(original, writer.rng)
    return _edit_variant(original, float(writer.rng.uniform(*spec.edit_rate)), writer)


def score(findings: pl.DataFrame, truth: pl.DataFrame, kept_ids: pl.Series) -> dict[str, float | int]:
    """Duplicate precision and recall of dedup ``findings`` (``id``, ``kept_id``) against ``truth``.

    A removed row counts as correct when its kept row is in the same group. Recall is
    over the rows that had to go: each group's size minus one. ``groups_lost`` counts
    groups with no row kept at all (must be 0).
    """
    g = dict(zip(truth["id"].to_list(), truth["group"].to_list(), strict=True))
    removed = findings.select("id", "kept_id").rows()
    correct = sum(1 for rid, kid in removed if g[rid] == g.get(kid, -1))
    should = truth.height - truth["group"].n_unique()
    kept_groups = {g[i] for i in kept_ids.to_list()}
    return {
        "removed": len(removed),
        "correct": correct,
        "duplicates": should,
        "precision": correct / len(removed) if removed else 1.0,
        "recall": correct / should if should else 1.0,
        "groups_lost": truth["group"].n_unique() - len(kept_groups),
    }


# ---------------------------------------------------------------------------- boilerplate-sharing messages
_FOOTERS = (
    "This message and any attachments are confidential and intended solely for the addressee. If you received it in error, "
    "please notify the sender and delete it. Any unauthorised use or disclosure is prohibited.",
    "Thank you for contacting our support team. Your request has been logged and an agent will reply within two business days. "
    "Please do not reply to this automated message.",
    "You are receiving this email because you subscribed to updates from our service. To stop these messages, "
    "open your account settings and change your notification preferences at any time.",
)


@dataclass(frozen=True)
class BoilerplateSpec:
    """Knobs of the boilerplate corpus: short messages under shared footers, next to ordinary ones."""

    short: float = 0.5  # share of originals that are ~8 distinct words plus a boilerplate block
    with_block: float = 0.25  # share of longer originals that also carry a block (the rest have none)
    short_words: tuple[int, int] = (6, 11)
    long_words: tuple[int, int] = (20, 150)
    blocks: int = 8  # distinct boilerplate blocks: the three above and generated ones of 25-40 words
    top: float = 0.3  # share of blocks placed above the message (a banner) rather than below
    dup_groups: float = 0.3
    max_copies: int = 2
    edit_rate: tuple[float, float] = (0.03, 0.08)
    variants: tuple[float, float, float] = (0.2, 0.2, 0.6)  # exact, format, edit


def generate_boilerplate(n_docs: int, *, seed: int = 0, spec: BoilerplateSpec | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Distinct messages that share long boilerplate blocks, and lightly edited copies.

    Half of the originals are a short message (about 8 words of its own) under or over one
    of a few ~30-word blocks (disclaimers, support footers, subscription notes): as whole
    texts they overlap by 0.6 or more, yet they are different messages. The others are
    longer messages, a quarter of them with a block. 30% of originals get 1-2 copies
    (exact, re-formatted, or with 3-8% of the words edited, at least one, anywhere,
    the block included). Returns ``(id, text)`` and the truth (``id, group, variant``),
    like ``generate``.
    """
    spec = spec or BoilerplateSpec()
    rng = np.random.default_rng(seed)
    writer = _Writer(rng)
    blocks = list(_FOOTERS) + [writer.text(int(rng.integers(25, 41))).replace("\n\n", " ") for _ in range(spec.blocks - len(_FOOTERS))]

    def copy(original: str, kind: str) -> str:
        if kind == "format":
            return _format_variant(original, rng)
        return _edit_variant(original, float(rng.uniform(*spec.edit_rate)), writer) if kind == "edit" else original

    return _assemble(n_docs, rng, lambda: _message(writer, blocks, spec), copy, spec, "b")


def _message(writer: _Writer, blocks: list[str], spec: BoilerplateSpec) -> str:
    rng = writer.rng
    short = rng.random() < spec.short
    body = writer.text(int(rng.integers(*(spec.short_words if short else spec.long_words)))).replace("\n\n", " ")
    if not short and rng.random() >= spec.with_block:
        return body
    block = blocks[int(rng.integers(len(blocks)))]
    return f"{block}\n\n{body}" if rng.random() < spec.top else f"{body}\n\n{block}"
