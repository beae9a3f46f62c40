"""Phone numbers by validity, or by shape and context.

Presidio's recognizer asks ``phonenumbers`` whether a number is a valid, assigned one.
People write numbers that are not: ``575-147-1049`` has no assigned area code, yet
"call me on 575-147-1049" leaks a phone number as a reviewer sees it. So a digit run is a
PHONE_NUMBER when ``phonenumbers`` finds a valid number in it, or when it is laid out like
a phone number (NANP with or without ``+1``, E.164, common UK, German, French and Indian
layouts), has phone punctuation, and a phone word (call, phone, tel, mobile, cell,
reach, callback, fax, WhatsApp...) stands within ``phone_context_window`` characters.

What is never a phone number, whatever the context: runs under seven digits, IPv4
addresses, dates, card-length runs that pass Luhn, decimals (``3.14159265``), runs
glued to an identifier (``ORD-2024-711685``, ``v10.0.19041``), amounts (``$1 234 567``,
``1 234 567 €``), arithmetic (``= 1234567 * 3``), and runs right after an id word
(``order``, ``ticket``, ``SKU``, ``build``, ``port``...), or after ``no.``, ``#`` or ``id`` unless
a phone word is near.
"""

from __future__ import annotations

import re
from typing import Any

# Digit runs with phone punctuation (and an extension): the only places a phone number can be.
_PHONE_RUN = re.compile(r"[+(]?\d[\d \t().\-/]*\d\)?(?:\s*(?:x|ext\.?|extension)\s*\d{1,6})?", re.IGNORECASE)
_NOT_PHONE = re.compile(
    r"\d{1,3}(?:\.\d{1,3}){3}|\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[/.-]\d{1,2}[/.-]\d{4}|\d{16,}|\d+\.\d+"
)  # IPv4, dates, card-length runs, decimals
# Identifier words: a digit run right after these is an id, not a phone number ("order 575-147-1049");
# after the weak ones ("no.", "#", "id") it is a phone number when a phone word is near ("Phone no. 555-...").
_ID_BEFORE = re.compile(
    r"\b(?:PO|order|invoice|inv|ticket|ref|reference|case|account|acct|sku|item|part|model|serial|tracking|build"
    r"|version|ver|release|port|error|code|isbn|batch|lot|issue|pr|job|run|step|row|page)\.?\s*(?:no\.?|number|#|id)?\s*:?\s*#?\s*$",
    re.IGNORECASE,
)
_WEAK_ID_BEFORE = re.compile(r"(?:\b(?:id|no)\.?|#)\s*:?\s*$", re.IGNORECASE)
# identifiers, decimals, amounts and arithmetic around a run
_GLUED_BEFORE = re.compile(r"(?:[A-Za-z_][-_#/.]?|\d\.|[$€£¥₹]\s?|[*/=^%<>]\s*|[\d)]\s*[-+]\s*)$")
_GLUED_AFTER = re.compile(r"[A-Za-z_%€$£]|\.\d|\s*[*^%=<>+]|\s*(?:€|EUR|USD|GBP|dollars?|euros?|kg|km|ms|MB|GB)\b")
_CARD_SHAPE = re.compile(r"\d{4}([ -]?)\d{4}\1\d{4}\1\d{1,7}")  # grouped like a card: left to the Luhn-checked card recognizer
MIN_PHONE_DIGITS = 7  # shorter "numbers" are extensions, short codes or noise

# Phone layouts with punctuation; a run laid out so, near a phone word, is a phone number even if not a valid one.
_SEP = r"[ .\-]"
PHONE_LAYOUTS = re.compile(
    r"(?:"
    rf"(?:\+?1{_SEP}?)?(?:\(\d{{3}}\){_SEP}?|\d{{3}}{_SEP})\d{{3}}{_SEP}\d{{4}}"  # NANP: 575-147-1049, +1 549 542 8211, (238) 194-8478
    rf"|\+\d{{1,3}}{_SEP}?\(?\d{{1,5}}\)?(?:{_SEP}\d{{2,6}}){{1,4}}"  # E.164 written with separators: +44 20 7946 0958
    r"|\+\d{8,15}"  # E.164
    rf"|0\d{{2,4}}{_SEP}\d{{3,4}}{_SEP}?\d{{3,4}}"  # UK: 020 7946 0958, 07700 900123
    r"|0\d{2,5}[ /\-]\d{3,8}(?:[ \-]\d{1,5})?"  # DE: 030 12345678, 0171/1234567
    rf"|0\d(?:{_SEP}\d{{2}}){{4}}"  # FR: 01 23 45 67 89
    rf"|(?:0|\+91{_SEP}?)?[6-9]\d{{4}}{_SEP}\d{{5}}"  # IN: 98765 43210
    r")(?:\s*(?:x|ext\.?|extension)\s*\d{1,6})?",
    re.IGNORECASE,
)
PHONE_WORDS = (
    "call", "calls", "called", "calling", "phone", "phoned", "phones", "telephone", "tel", "mobile", "mob", "cell",
    "cellphone", "reach", "reached", "callback", "call back", "call-back", "fax", "whatsapp", "sms", "text me", "dial",
    "ring", "landline", "voicemail", "hotline", "ph", "contact number", "signal", "viber", "telegram",
)  # fmt: skip
_PHONE_WORD = re.compile(r"\b(?:" + "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in PHONE_WORDS) + r")\b", re.IGNORECASE)
RECOGNIZER_NAME = "PhoneRecognizer"
CONTEXT_SCORE = 0.6  # above the default threshold: a laid-out number next to a phone word


def has_phone_context(text: str, start: int, end: int, window: int) -> bool:
    """Whether a phone word stands within ``window`` characters before or after ``text[start:end]``."""
    return bool(_PHONE_WORD.search(text, max(0, start - window), start) or _PHONE_WORD.search(text[end : end + window]))


def phone_recognizer(regions: list[str], window: int) -> Any:
    """Presidio's phonenumbers-based recognizer, on digit runs that can be phone numbers, plus the shape-and-context rule.

    Presidio runs ``PhoneNumberMatcher`` over the whole text once per region, parsing every
    number-like candidate (card numbers, dates, IPs, versions) eight times; this tries only
    runs with at least seven digits that pass ``could_be_phone`` and stops at the first
    region that matches. A run no region validates is still a phone number when laid out
    like one with a phone word within ``window`` characters (score ``CONTEXT_SCORE``).
    """
    import phonenumbers
    from presidio_analyzer import AnalysisExplanation, EntityRecognizer, RecognizerResult
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    class WindowedPhoneRecognizer(PhoneRecognizer):  # type: ignore[misc]
        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
            results = []
            for run in _PHONE_RUN.finditer(text):
                if not could_be_phone(text, run, window):
                    continue
                lo, hi = max(0, run.start() - 1), min(len(text), run.end() + 1)
                found = self._in_window(text[lo:hi], lo, nlp_artifacts)
                results += found or [r for r in [self._by_shape(text, run)] if r is not None]
            return EntityRecognizer.remove_duplicates(results)  # type: ignore[no-any-return]

        def _by_shape(self, text: str, run: re.Match[str]) -> Any:
            value, start = run.group(), run.start()
            if not PHONE_LAYOUTS.fullmatch(value) and value.endswith(")"):
                value = value[:-1]
            if not PHONE_LAYOUTS.fullmatch(value) and value.startswith("("):
                value, start = value[1:], start + 1
            if not PHONE_LAYOUTS.fullmatch(value) or not has_phone_context(text, start, start + len(value), window):
                return None
            name = RECOGNIZER_NAME
            explanation = AnalysisExplanation(name, CONTEXT_SCORE, textual_explanation="phone layout next to a phone word")
            meta = {RecognizerResult.RECOGNIZER_NAME_KEY: name, RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}
            return RecognizerResult("PHONE_NUMBER", start, start + len(value), CONTEXT_SCORE, explanation, meta)

        def _in_window(self, window_text: str, offset: int, nlp_artifacts: Any) -> list[Any]:
            # An international number ("+1 ...") parses the same whatever the default region.
            regions = self.supported_regions[:1] if window_text.lstrip(" (").startswith("+") else self.supported_regions
            for region in regions:
                matches = phonenumbers.PhoneNumberMatcher(window_text, region, leniency=self.leniency or 0)
                found = [
                    self._get_recognizer_result(m, window_text, region, nlp_artifacts)
                    for m in matches
                    if _digits(m.raw_string) >= MIN_PHONE_DIGITS
                ]
                if found:
                    for r in found:
                        r.start, r.end = r.start + offset, r.end + offset
                    return found
            return []

    return WindowedPhoneRecognizer(supported_regions=tuple(regions), name=RECOGNIZER_NAME)


def _digits(value: str) -> int:
    return sum(c.isdigit() for c in value)


def could_be_phone(text: str, run: re.Match[str], window: int) -> bool:
    """Whether a digit run may be a phone number at all (see the module docstring)."""
    value = run.group().strip()
    if _digits(value) < MIN_PHONE_DIGITS or _NOT_PHONE.fullmatch(value) or (_CARD_SHAPE.fullmatch(value) and _luhn(value)):
        return False
    if _GLUED_BEFORE.search(text[max(0, run.start() - 6) : run.start()]) or _GLUED_AFTER.match(text, run.end()):
        return False
    if _ID_BEFORE.search(text, max(0, run.start() - 24), run.start()):
        return False
    if _WEAK_ID_BEFORE.search(text, max(0, run.start() - 8), run.start()):
        return not value.isdigit() and has_phone_context(text, run.start(), run.end(), window)
    return True


def _luhn(value: str) -> bool:
    digits = [int(c) for c in value if c.isdigit()][::-1]
    return sum(d if i % 2 == 0 else (2 * d - 9 if d > 4 else 2 * d) for i, d in enumerate(digits)) % 10 == 0
