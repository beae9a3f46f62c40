"""Recognizers tuneprep adds to Presidio's, and the post-filters on what NER says.

Presidio has no US street address or date-of-birth recognizer, and spaCy's small
model tags product and model names ("Claude 3 Haiku", "Llama 3.1 8B") as PERSON. This
module holds the address and date-of-birth pattern recognizers, the user's extra regex
and deny-list recognizers, and the PERSON clean-up: version-numbered names dropped,
honorifics and suffixes joined on, and other mentions of a found name in the same
text tagged too. Presidio is imported inside functions: the stage module stays cheap.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from presidio_analyzer import EntityRecognizer, PatternRecognizer


class Span(NamedTuple):
    """One finding: character offsets into the analysed text, never the value itself."""

    start: int
    end: int
    entity: str
    score: float
    recognizer: str


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# USPS Publication 28, appendix C1: street suffixes, full names and standard abbreviations.
STREET_SUFFIXES = _words(
    "Alley Aly Annex Anx Arcade Arc Avenue Ave Av Bayou Byu Beach Bch Bend Bnd Bluffs? Blfs? Bottom Btm Boulevard Blvd "
    "Branch Br Bridge Brg Brooks? Brks? Burgs? Bgs? Bypass Byp Camp Cp Canyon Cyn Cape Cpe Causeway Cswy Centers? Ctrs? "
    "Circles? Cirs? Cliffs? Clfs? Club Clb Commons? Cmns? Corners? Cors? Course Crse Courts? Cts? Coves? Cvs? Creek Crk "
    "Crescent Cres Crest Crst Crossing Xing Crossroads? Xrds? Curve Curv Dale Dl Dam Dm Divide Dv Drives? Drs? Estates? "
    "Ests? Expressway Expy Extensions? Exts? Falls? Fls Ferry Fry Fields? Flds? Flats? Flts? Fords? Frds? Forest Frst "
    "Forges? Frgs? Forks? Frks? Fort Ft Freeway Fwy Gardens? Gdns? Gateway Gtwy Glens? Glns? Greens? Grns? Groves? Grvs? "
    "Harbors? Hbrs? Haven Hvn Heights Hts Highway Hwy Hills? Hls? Hollow Holw Inlet Inlt Island Is Islands Iss Isle "
    "Junctions? Jcts? Keys? Kys? Knolls? Knls? Lakes? Lks? Land Landing Lndg Lane Ln Lights? Lgts? Loaf Lf Locks? Lcks? "
    "Lodge Ldg Loop Mall Manors? Mnrs? Meadows? Mdws? Mews Mills? Mls? Mission Msn Motorway Mtwy Mount Mt Mountains? "
    "Mtns? Neck Nck Orchard Orch Oval Overpass Opas Parks? Parkways? Pkwy Pass Passage Psge Path Pike Pines? Pnes? Place "
    "Pl Plains? Plns? Plaza Plz Points? Pts? Ports? Prts? Prairie Pr Radial Radl Ramp Ranch Rnch Rapids? Rpds? Rest Rst "
    "Ridges? Rdgs? River Riv Roads? Rds? Route Rte Row Rue Run Shoals? Shls? Shores? Shrs? Skyway Skwy Springs? Spgs? "
    "Spurs? Squares? Sqs? Station Sta Stravenue Stra Stream Strm Streets? Sts? Summit Smt Terrace Ter Throughway Trwy "
    "Trace Trce Track Trak Trafficway Trfy Trail Trl Trailer Trlr Tunnel Tunl Turnpike Tpke Underpass Upas Unions? Uns? "
    "Valleys? Vlys? Via Viaduct Vdct Views? Vws? Villages? Vlgs? Ville Vl Vista Vis Walks? Wall Ways? Wells? Wls?"
)
US_STATES = _words(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK OR PA "
    "RI SC SD TN TX UT VT VA WA WV WI WY AS GU MP PR VI AA AE AP"
)

_WORD = r"[A-Z][A-Za-z'’.-]*"
_DIRECTION = r"(?:[NSEW]|NE|NW|SE|SW|North|South|East|West)\.?"
_SUFFIX = r"(?:" + "|".join(STREET_SUFFIXES) + r")\b\.?"
_UNIT = r"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|Fl|Floor|Rm|Bldg|Building|#)\.?\s*#?\s*[A-Za-z0-9-]{1,6}\b)"
_STREET = rf"\b\d{{1,6}}[A-Z]?\s+(?:{_DIRECTION}\s+)?(?:{_WORD}|\d{{1,3}}(?:st|nd|rd|th))(?:\s+{_WORD}){{0,3}}\s+{_SUFFIX}(?:\s+{_DIRECTION})?{_UNIT}?"
_CITY_STATE_ZIP = rf"{_WORD}(?:\s+{_WORD}){{0,3}},\s+(?:{'|'.join(US_STATES)})\s+\d{{5}}(?:-\d{{4}})?\b"
_MILITARY = (
    r"\b(?:(?:PSC|CMR|Unit)\s+\d{1,5},?\s+Box\s+\d{1,5}|(?:USNS|USNV|USS|USCGC)\s+[A-Z][a-z]+),?\s+(?:APO|FPO|DPO)\s+(?:AA|AE|AP)\s+\d{5}\b"
)
_PO_BOX = rf"\b(?:P\.?\s?O\.?\s?Box|Post Office Box)\s+\d{{1,6}}\b(?:[,\s]+{_CITY_STATE_ZIP})?"

ADDRESS_CONTEXT = [
    "address",
    "street",
    "live",
    "lives",
    "living",
    "reside",
    "moved",
    "ship",
    "shipping",
    "mail",
    "deliver",
    "billing",
    "home",
]
DOB_CONTEXT = ["dob", "birth", "born", "birthday", "birthdate", "d.o.b"]

_MONTH = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
_DATE = (
    rf"\b(?:\d{{4}}-\d{{1,2}}-\d{{1,2}}|\d{{1,2}}[/.-]\d{{1,2}}[/.-](?:\d{{4}}|\d{{2}})|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|"
    rf"\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+\d{{4}})\b"
)

# A PERSON span followed by a short version-like token is a product or model name
# ("Claude 3 Haiku", "Llama 3.1 8B", "Falcon 40B"); a phone number (3+ digit group) is not.
_VERSION_AFTER = re.compile(r"[ \t-]?v?\d{1,2}(?:\.\d+)*[A-Za-z+]{0,2}\b(?![-. ]?\d)")
_NOT_IN_NAMES = re.compile(r"[\d_+=@/\\#<>|{}\[\]]")  # "ERR_CONNECTION_RESET", "Command R+", "GPT-4o"
_VERSION_BEFORE = re.compile(r"\b[A-Za-z]+[ -]?\d+(?:\.\d+)*[A-Za-z]?[ -]$")  # "Phi-3 Mini", "GPT-4 Turbo"
_HONORIFIC_BEFORE = re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Rev)\.?\s+$")
_SUFFIX_AFTER = re.compile(r"^,?\s+(?:Jr|Sr|II|III|IV|MD|PhD|DDS|DVM|Esq)\b\.?")
NAME_REPEAT_SCORE = 0.85  # a later mention of a found name's part
_NAME_PART = re.compile(r"[A-Z][a-z'’-]{2,}")


def _pattern_recognizer(
    entity: str, name: str, patterns: list[tuple[str, str, float]], context: list[str], *, ignore_case: bool
) -> PatternRecognizer:
    import regex
    from presidio_analyzer import Pattern, PatternRecognizer

    flags = regex.DOTALL | regex.MULTILINE | (regex.IGNORECASE if ignore_case else 0)
    pats = [Pattern(name=n, regex=p, score=s) for n, p, s in patterns]
    return PatternRecognizer(supported_entity=entity, name=name, patterns=pats, context=context, global_regex_flags=flags)


def address_recognizer() -> PatternRecognizer:
    """US street, PO box and military addresses, with the city, state and ZIP when present.

    Case-sensitive on purpose: the capitalised street name and suffix are what tell
    "42 Wallaby Way" from "3 dogs run".
    """
    patterns = [
        ("street_city_state_zip", rf"{_STREET}[,\s]+{_CITY_STATE_ZIP}", 0.85),
        ("street", _STREET, 0.6),
        ("military", _MILITARY, 0.85),
        ("po_box", _PO_BOX, 0.6),
        ("city_state_zip", _CITY_STATE_ZIP, 0.45),
    ]
    return _pattern_recognizer("STREET_ADDRESS", "UsAddressRecognizer", patterns, ADDRESS_CONTEXT, ignore_case=False)


def date_of_birth_recognizer() -> PatternRecognizer:
    """Dates scored too low to pass the threshold unless a birth word is near ("DOB:", "born on")."""
    return _pattern_recognizer("DATE_OF_BIRTH", "DateOfBirthRecognizer", [("date", _DATE, 0.1)], DOB_CONTEXT, ignore_case=True)


_NAME_WORD = r"[A-Z][a-z]+(?:[-'’][A-Z]?[a-z]+)?"
_NAME = rf"{_NAME_WORD}(?:[ \t]+{_NAME_WORD}){{0,2}}"
_FULL_NAME = rf"{_NAME_WORD}(?:[ \t]+{_NAME_WORD}){{1,2}}"
# Where support tickets, emails and forms put a person's name. spaCy's small model often
# labels such names ORG or misses a bare first name ("Hi Brent,").
_PERSON_CUES = [
    ("greeting", rf"(?<=(?im:^[ \t]*(?:hi|hello|hey|dear|good (?:morning|afternoon|evening))[ \t]+)){_NAME}(?=[ \t]*[,!:\n])", 0.6),
    (
        "sign_off",
        rf"(?<=(?i:\b(?:regards|best|thanks|thank you|cheers|sincerely|yours truly),?[ \t]*\n[ \t]*)){_NAME}(?=[ \t]*(?:\n|$))",
        0.6,
    ),
    (
        "name_field",
        rf"(?<=(?im:^[ \t]*(?:name|full name|customer|client|patient|contact|employee|applicant|cardholder|from|to|attn)[ \t]*:[ \t]*)){_NAME}(?=[ \t]*(?:\n|,|$))",
        0.7,
    ),
    (
        "role",
        rf"(?<=(?i:\b(?:customer|client|patient|manager|colleague|supervisor|technician|caller|spoke with|talked to|my name is)[ \t]+)){_FULL_NAME}\b",
        0.6,
    ),
]


def person_cue_recognizer() -> PatternRecognizer:
    """Title-case names in greetings, sign-offs, name fields and after role words."""
    return _pattern_recognizer("PERSON", "PersonCueRecognizer", _PERSON_CUES, [], ignore_case=False)


def credit_card_recognizer() -> EntityRecognizer:
    """Presidio's Luhn-checked card recognizer, plus Mastercard's 2221-2720 range it lacks."""
    from presidio_analyzer import Pattern
    from presidio_analyzer.predefined_recognizers import CreditCardRecognizer

    two_series = Pattern("Mastercard 2-series (weak)", r"\b2(?:2[2-9]\d|[3-6]\d{2}|7[01]\d|720)[- ]?\d{4}[- ]?\d{4}[- ]?\d{4}\b", 0.3)
    return CreditCardRecognizer(patterns=[*CreditCardRecognizer.PATTERNS, two_series])


def regex_recognizer(name: str, entity: str, pattern: str, score: float, context: list[str]) -> PatternRecognizer:
    """A user-defined recognizer from the config's ``recognizers`` list."""
    return _pattern_recognizer(entity, name, [(name, pattern, score)], context, ignore_case=False)


def deny_list_recognizer(entity: str, terms: list[str]) -> PatternRecognizer:
    """Always flag these exact terms (case-insensitive, whole words) as ``entity``."""
    from presidio_analyzer import PatternRecognizer

    return PatternRecognizer(supported_entity=entity, name=f"DenyList_{entity}", deny_list=terms)


# Digit runs with phone punctuation (and an extension): the only places a phone number can be.
_PHONE_RUN = re.compile(r"[+(]?\d[\d \t().\-/]*\d\)?(?:\s*(?:x|ext\.?|extension)\s*\d{1,6})?", re.IGNORECASE)
_NOT_PHONE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}|\d{4}-\d{2}-\d{2}|\d{1,2}[/.-]\d{1,2}[/.-]\d{4}|\d{16,}")  # IPv4, dates, card-length runs
# Identifier words: a bare digit run right after these is an id, not a phone number.
_ID_BEFORE = re.compile(
    r"(?:\b(?:PO|order|invoice|inv|ticket|ref|reference|case|account|acct|sku|tracking|serial|id|no)\.?|#)\s*:?\s*$", re.IGNORECASE
)
_GLUED_BEFORE = re.compile(r"[A-Za-z][-_#/]?$")  # "ORD-2024-711685", "INC7925327": the digits belong to an identifier
_CARD_SHAPE = re.compile(r"\d{4}([ -]?)\d{4}\1\d{4}\1\d{1,7}")  # grouped like a card: left to the Luhn-checked card recognizer
MIN_PHONE_DIGITS = 7  # shorter "numbers" are extensions, short codes or noise


def phone_recognizer(regions: list[str]) -> EntityRecognizer:
    """Presidio's phonenumbers-based recognizer, run only on digit runs that can be phone numbers.

    Presidio runs ``PhoneNumberMatcher`` over the whole text once per region, parsing every
    number-like candidate (card numbers, dates, IPs, versions) eight times; this tries only
    runs with at least seven digits that are not IPv4 addresses, dates or card-length digit
    strings, and stops at the first region that matches.
    """
    import phonenumbers
    from presidio_analyzer import EntityRecognizer
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    class WindowedPhoneRecognizer(PhoneRecognizer):  # type: ignore[misc]
        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
            results = []
            for run in _PHONE_RUN.finditer(text):
                if _could_be_phone(text, run):
                    lo, hi = max(0, run.start() - 1), min(len(text), run.end() + 1)
                    results += self._in_window(text[lo:hi], lo, nlp_artifacts)
            return EntityRecognizer.remove_duplicates(results)  # type: ignore[no-any-return]

        def _in_window(self, window: str, offset: int, nlp_artifacts: Any) -> list[Any]:
            # An international number ("+1 ...") parses the same whatever the default region.
            regions = self.supported_regions[:1] if window.lstrip(" (").startswith("+") else self.supported_regions
            for region in regions:
                matches = phonenumbers.PhoneNumberMatcher(window, region, leniency=self.leniency or 0)
                found = [
                    self._get_recognizer_result(m, window, region, nlp_artifacts)
                    for m in matches
                    if _digits(m.raw_string) >= MIN_PHONE_DIGITS
                ]
                if found:
                    for r in found:
                        r.start, r.end = r.start + offset, r.end + offset
                    return found
            return []

    return WindowedPhoneRecognizer(supported_regions=tuple(regions), name="PhoneRecognizer")


def _digits(value: str) -> int:
    return sum(c.isdigit() for c in value)


def _could_be_phone(text: str, run: re.Match[str]) -> bool:
    value = run.group().strip()
    if _digits(value) < MIN_PHONE_DIGITS or _NOT_PHONE.fullmatch(value) or (_CARD_SHAPE.fullmatch(value) and _luhn(value)):
        return False
    glued = _GLUED_BEFORE.search(text, max(0, run.start() - 2), run.start()) or text[run.end() : run.end() + 1].isalpha()
    return not glued and not (value.isdigit() and _ID_BEFORE.search(text, max(0, run.start() - 16), run.start()))


def _luhn(value: str) -> bool:
    digits = [int(c) for c in value if c.isdigit()][::-1]
    return sum(d if i % 2 == 0 else (2 * d - 9 if d > 4 else 2 * d) for i, d in enumerate(digits)) % 10 == 0


def clean_person_spans(text: str, spans: list[Span]) -> list[Span]:
    """Drop model/product names tagged PERSON, widen names to honorifics, tag repeats."""
    out: list[Span] = []
    for s in spans:
        if s.entity != "PERSON":
            out.append(s)
        elif not _is_product_name(text, s):
            out.append(_widen_name(text, _first_line(text, s)))
    return out + _name_repeats(text, out)


def _is_product_name(text: str, s: Span) -> bool:
    value = text[s.start : s.end]
    if _NOT_IN_NAMES.search(value) or _VERSION_AFTER.match(text, s.end):
        return True
    return bool(_VERSION_BEFORE.search(text, max(0, s.start - 12), s.start))


def _first_line(text: str, s: Span) -> Span:
    """A name never spans lines: NER sometimes runs a form's name into the next label."""
    cut = text.find("\n", s.start, s.end)
    return s if cut < 0 else s._replace(end=cut)


def _widen_name(text: str, s: Span) -> Span:
    start, end = s.start, s.end
    before = _HONORIFIC_BEFORE.search(text, max(0, start - 8), start)
    if before:
        start = before.start()
    after = _SUFFIX_AFTER.match(text[end : end + 8])
    if after:
        end += after.end()
    return s._replace(start=start, end=end)


def name_parts(text: str, spans: list[Span]) -> set[str]:
    """The capitalised parts of the PERSON spans' values: what a later mention of the name may use."""
    return {m.group() for s in spans if s.entity == "PERSON" for m in _NAME_PART.finditer(text, s.start, s.end)}


def whole_words(words: set[str]) -> re.Pattern[str]:
    """A pattern matching any of ``words`` as a whole word."""
    return re.compile(r"\b(?:" + "|".join(sorted(map(re.escape, words))) + r")\b")


def _name_repeats(text: str, people: list[Span]) -> list[Span]:
    """Other whole-word mentions of a found name's parts ("Hi Maria" after "Maria Lopez")."""
    parts = name_parts(text, people)
    if not parts:
        return []
    covered = [(s.start, s.end) for s in people]
    found = whole_words(parts).finditer(text)
    return [
        Span(m.start(), m.end(), "PERSON", NAME_REPEAT_SCORE, "NameRepeat")
        for m in found
        if not any(a <= m.start() < b for a, b in covered)
    ]


def resolve(spans: list[Span], text: str) -> list[Span]:
    """Non-overlapping spans covering every flagged character, in text order.

    Overlapping spans merge into their union (privacy first: nothing flagged survives),
    labelled by the longest, then highest-scoring, member; same-entity spans separated
    only by whitespace merge too, so "<PERSON> <PERSON>" reads "<PERSON>".
    """
    merged: list[list[Any]] = []  # [start, end, best span]
    for s in sorted(spans, key=lambda s: (s.start, -s.end)):
        if merged and (s.start < merged[-1][1] or (s.entity == merged[-1][2].entity and not text[merged[-1][1] : s.start].strip())):
            last = merged[-1]
            last[1] = max(last[1], s.end)
            if (s.end - s.start, s.score) > (last[2].end - last[2].start, last[2].score):
                last[2] = s
        else:
            merged.append([s.start, s.end, s])
    return [best._replace(start=a, end=b) for a, b, best in merged]
