"""Precision guards on what the analyzer found, before the PERSON clean-up and resolution.

- **Code.** In code (``code.py``: fences, inline code, indented blocks, code-like lines)
  only high-precision entities stand: e-mails, cards, IBANs, SSN/ITIN, crypto wallets,
  street addresses, dates of birth (they need a birth word) and the user's own
  recognizers; a phone number only with a phone word near it; an IP address only when it
  is a public one; a PERSON only from a cue (a name field, a greeting). Identifiers, type
  names and keywords are never people.
- **IP addresses** must parse as one and, for IPv6, hold at least three groups: Python's
  ``[::-1]`` or a C++ ``std::`` is no address, nor is a dotted quad inside a longer
  version (``1.2.3.4.5``, ``v10.0.0.1``); loopback, unspecified, link-local and multicast
  addresses (``127.0.0.1``, ``0.0.0.0``) identify no one.
- **PERSON** must look like a name: it starts with a capital, no ``java.util`` dots or
  camelCase inside, not a word in capitals (``JSON``), and not made only of common,
  product or programming words (``vocab.py``: ``Visa``, ``String``, ``False``) unless an
  honorific or "my name is" precedes it. Leading vocabulary words are trimmed off
  ("Thanks Maria" -> "Maria"). Nor is it made only of ordinary English words or
  near-miss brands, unless a name in Faker's lists supports it or an honorific or "my
  name is" precedes it (``lexicon.py``: "Cancel Transaction", "Seller", "Mastecard";
  "Rose Baker" stays).
"""

from __future__ import annotations

import ipaddress
import re

from curation.stages.pii.code import code_regions, in_regions
from curation.stages.pii.lexicon import only_words
from curation.stages.pii.phones import has_phone_context
from curation.stages.pii.recognizers import CUE_RECOGNIZERS, HONORIFIC, NAME_TOKEN, Span, first_line
from curation.stages.pii.vocab import is_vocabulary

# precise enough to stand inside code; custom recognizer and deny-list entities stand too
CODE_SAFE = frozenset({"EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "US_ITIN", "CRYPTO", "STREET_ADDRESS", "DATE_OF_BIRTH"})
NER_ENTITIES = frozenset({"PERSON", "LOCATION", "NRP", "DATE_TIME", "ORGANIZATION"})
_CAMEL = re.compile(r"[a-z][A-Z]")
_NAME_PREFIX = re.compile(r"^(?:Mc|Mac|De|Di|Da|Du|La|Le|Van|Von|O['’]|D['’])[A-Z]")
_DOTTED = re.compile(r"[^\W\d_]\.[^\W\d_]{2,}")  # java.util, os.path; not "J. Smith"
_STRONG_BEFORE = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Rev)\.?|\bmy name is|\bI am|\bI'm|\bthis is)\s+$", re.IGNORECASE)


def guard_spans(text: str, spans: list[Span], *, phone_window: int, custom: frozenset[str] = frozenset()) -> list[Span]:
    """``spans`` without the findings that code, shape or vocabulary say are not personal data."""
    regions = code_regions(text) if spans else []
    out = []
    for s in spans:
        if s.entity == "IP_ADDRESS" and not _plausible_ip(text, s, code=in_regions(regions, s.start, s.end)):
            continue
        if regions and in_regions(regions, s.start, s.end) and not _stands_in_code(text, s, phone_window, custom):
            continue
        if s.entity == "PERSON":
            kept = _name_or_none(text, s)
            if kept is None:
                continue
            s = kept
        out.append(s)
    return out


def _stands_in_code(text: str, s: Span, phone_window: int, custom: frozenset[str]) -> bool:
    if s.entity in CODE_SAFE or s.entity in custom:
        return True
    if s.entity == "PHONE_NUMBER":
        return has_phone_context(text, s.start, s.end, phone_window)
    if s.entity == "PERSON":
        return s.recognizer in CUE_RECOGNIZERS
    return s.entity == "IP_ADDRESS"  # already checked public by _plausible_ip


def _plausible_ip(text: str, s: Span, *, code: bool) -> bool:
    value = text[s.start : s.end]
    before, after = text[max(0, s.start - 1) : s.start], text[s.end : s.end + 2]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    if address.version == 6 and sum(1 for g in value.split(":") if g) < 3:
        return False
    if address.version == 4 and (re.match(r"[\w.]", before) or re.match(r"\.\d", after)):
        return False
    if address.is_loopback or address.is_unspecified or address.is_link_local or address.is_multicast:
        return False  # the machine itself, or no machine: identifies no one
    return address.is_global or not code


def _name_or_none(text: str, s: Span) -> Span | None:
    """``s`` cut at a line break, trimmed to its words and of leading vocabulary words, or None if it does not look like a name."""
    s = first_line(text, s)
    strong = s.recognizer in CUE_RECOGNIZERS or bool(_STRONG_BEFORE.search(text, max(0, s.start - 12), s.start))
    tokens = list(NAME_TOKEN.finditer(text, s.start, s.end))
    if not tokens or _DOTTED.search(text, s.start, s.end):
        return None
    if any(_CAMEL.search(t.group()) and not _NAME_PREFIX.match(t.group()) for t in tokens):
        return None
    s = s._replace(start=tokens[0].start())  # "> Lori Harris" -> "Lori Harris"; the end keeps "Command R+" a product
    words = [t.group() for t in tokens]
    if not words[0][0].isupper() or (not strong and all(w.isupper() and len(w) > 1 for w in words)):
        return None
    if HONORIFIC.match(words[0]):
        return s
    if all(is_vocabulary(w) for w in words) or only_words(words):  # a cue's shape alone ("The Recipient says") is not enough
        return s if _STRONG_BEFORE.search(text, max(0, s.start - 12), s.start) else None
    lead = 0
    while is_vocabulary(words[lead]):
        lead += 1
    return s if lead == 0 else s._replace(start=tokens[lead].start())
