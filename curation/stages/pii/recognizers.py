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

from curation.stages.pii.vocab import is_vocabulary

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
NAME_TOKEN = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
HONORIFIC = re.compile(r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Rev)\b")
CUE_RECOGNIZERS = frozenset({"PersonCueRecognizer", "NameColumn", "NameInRow", "NameRepeat"})  # a person by context


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


_NAME_WORD = r"(?:Mc|Mac|O['’]|D['’])?[A-Z][a-z]+(?:[-'’][A-Z]?[a-z]+)?"
_NAME = rf"{_NAME_WORD}(?:[ \t]+{_NAME_WORD}){{0,2}}"
_FULL_NAME = rf"{_NAME_WORD}(?:[ \t]+(?:[A-Z]\.[ \t]+)?{_NAME_WORD}){{1,2}}"
# Words naming the role of the person whose full name follows ("beneficiary Jane Doe",
# "the account holder, Jane Doe", "Customer: Jane Doe", "my name is Jane Doe").
ROLE_WORDS = (
    "customer", "client", "patient", "manager", "colleague", "supervisor", "technician", "caller", "spoke with",
    "talked to", "my name is", "beneficiary", "account holder", "holder", "cardholder", "card holder", "payee", "payer",
    "recipient", "sender", "tenant", "landlord", "applicant", "employee", "member", "passenger", "guest",
    "policyholder", "policy holder", "insured", "borrower", "guarantor", "witness", "student", "buyer", "seller",
    "representative", "agent", "contact", "next of kin", "addressee", "signed by", "approved by", "assigned to",
)  # fmt: skip
_ROLE = "|".join(w.replace(" ", r"[ \t]+") for w in ROLE_WORDS)
_ROLE_GAP = r"[ \t]*(?:[:,–-]|\bis\b|\bnamed\b|\bname\b:?|\bname[ \t]+is\b)?[ \t]*"
_SPEECH = r"(?:wrote|writes|said|says|asked|asks|replied|replies|commented|added|noted|explained)\b"
# Where support tickets, emails and forms put a person's name. spaCy's small model often
# labels such names ORG or misses a bare first name ("Hi Brent,"). Each pattern opens with
# a capital-letter lookahead: the variable-length lookbehind then runs only where a name can start.
_PERSON_CUES = [
    (
        "greeting",
        rf"(?=[A-Z])(?<=(?im:^[ \t]*(?:hi|hello|hey|dear|good (?:morning|afternoon|evening))[ \t]+)){_NAME}(?=[ \t]*[,!:\n])",
        0.6,
    ),
    (
        "sign_off",
        rf"(?=[A-Z])(?<=(?i:\b(?:regards|best|thanks|thank you|cheers|sincerely|yours truly),?[ \t]*\n[ \t]*)){_NAME}(?=[ \t]*(?:\n|$))",
        0.6,
    ),
    (
        "name_field",
        rf"(?=[A-Z])(?<=(?im:^[ \t]*(?:name|full name|customer|client|patient|contact|employee|applicant|cardholder|beneficiary|account holder|payee|recipient|from|to|attn)[ \t]*:[ \t]*)){_NAME}(?=[ \t]*(?:\n|,|$))",
        0.7,
    ),
    (
        "sign_off_inline",
        rf"(?=[A-Z])(?<=(?i:\b(?:regards|best|thanks|thank you|cheers|sincerely|yours truly),[ \t]*)){_FULL_NAME}(?=[ \t]*[.!]?[ \t]*(?:\n|$))",
        0.6,
    ),
    ("role", rf"(?=[A-Z])(?<=(?i:\b(?:{_ROLE}){_ROLE_GAP})){_FULL_NAME}\b", 0.6),
    # a full name that opens a line or a quote and speaks: "Jane Doe wrote: ...", "> John Smith said"
    ("speaker", rf"(?=[A-Z])(?<=(?m:^[ \t>\"“'(]*|[\"“][ \t]*)){_FULL_NAME}(?=[ \t]+(?:<[^>\n]{{1,80}}>[ \t]+)?{_SPEECH})", 0.6),
    ("reply_header", rf"(?=[A-Z])(?<=,[ \t]){_FULL_NAME}(?=[ \t]+(?:<[^>\n]{{1,80}}>[ \t]+)?wrote\b)", 0.6),
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


_IBAN_START = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}")


def iban_recognizer() -> EntityRecognizer:
    """Presidio's IBAN recognizer, matching upper case first and ignoring case only where that finds nothing.

    The analyzer matches patterns ignoring case, so the IBAN pattern's last four-character
    group swallows the next word ("DE89 3704 ... 3000 before the") and the checksum fails;
    matched in upper case, an IBAN ends where the word begins. A lower-case IBAN is still found.
    """
    import regex
    from presidio_analyzer.predefined_recognizers import IbanRecognizer

    flags = regex.DOTALL | regex.MULTILINE
    any_case = IbanRecognizer(regex_flags=flags | regex.IGNORECASE)  # Presidio's recognizer reads its own flags only

    class CaseAwareIbanRecognizer(IbanRecognizer):  # type: ignore[misc]
        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None, regex_flags: int | None = None) -> list[Any]:
            if not _IBAN_START.search(text):  # no country code and check digits: nothing to match (most texts)
                return []
            upper = super().analyze(text, entities, nlp_artifacts)
            found = [
                r for r in any_case.analyze(text, entities, nlp_artifacts) if not any(u.start < r.end and r.start < u.end for u in upper)
            ]
            for r in found:  # the analyzer looks its recognizer up by id
                r.recognition_metadata = {**r.recognition_metadata, "recognizer_name": "IbanRecognizer", "recognizer_identifier": self.id}
            return upper + found

    return CaseAwareIbanRecognizer(name="IbanRecognizer", regex_flags=flags)


def regex_recognizer(name: str, entity: str, pattern: str, score: float, context: list[str]) -> PatternRecognizer:
    """A user-defined recognizer from the config's ``recognizers`` list."""
    return _pattern_recognizer(entity, name, [(name, pattern, score)], context, ignore_case=False)


def deny_list_recognizer(entity: str, terms: list[str]) -> PatternRecognizer:
    """Always flag these exact terms (case-insensitive, whole words) as ``entity``."""
    from presidio_analyzer import PatternRecognizer

    return PatternRecognizer(supported_entity=entity, name=f"DenyList_{entity}", deny_list=terms)


def clean_person_spans(text: str, spans: list[Span]) -> list[Span]:
    """Drop model/product names tagged PERSON, widen names to honorifics, tag repeats."""
    out: list[Span] = []
    for s in spans:
        if s.entity != "PERSON":
            out.append(s)
        elif not _is_product_name(text, s):
            out.append(_widen_name(text, first_line(text, s)))
    return out + _name_repeats(text, out)


def _is_product_name(text: str, s: Span) -> bool:
    value = text[s.start : s.end]
    if _NOT_IN_NAMES.search(value) or _VERSION_AFTER.match(text, s.end):
        return True
    return bool(_VERSION_BEFORE.search(text, max(0, s.start - 12), s.start))


def first_line(text: str, s: Span) -> Span:
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


def is_strong_name(text: str, s: Span) -> bool:
    """Whether a PERSON finding is evidence enough to tag the name's other mentions (NameRepeat, NameInRow).

    A cue (name field, greeting, role word, a person column, or a mention of such a name),
    an honorific, or a full name of two or more capitalised words that are not vocabulary
    words; never a lone word NER tagged, so one false positive does not spread.
    """
    if s.recognizer in CUE_RECOGNIZERS or HONORIFIC.match(text, s.start):
        return True
    words = [t.group() for t in NAME_TOKEN.finditer(text, s.start, s.end)]
    return sum(1 for w in words if w[:1].isupper() and not is_vocabulary(w)) >= 2


def name_parts(text: str, spans: list[Span]) -> set[str]:
    """The capitalised, non-vocabulary parts of the strong PERSON spans: what a later mention of the name may use."""
    return {
        m.group()
        for s in spans
        if s.entity == "PERSON" and is_strong_name(text, s)
        for m in _NAME_PART.finditer(text, s.start, s.end)
        if not is_vocabulary(m.group()) and not HONORIFIC.fullmatch(m.group())
    }


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
