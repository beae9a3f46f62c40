"""What may be shown of a value that came from the data: the one home of masking.

Every value that leaves the data (a config or check error, a check result, the ledger,
a stage's stats, training metrics, the report, the card, the manifest, a log line) goes
through one of these functions:

- ``mask_text``: a free string that may echo data (an error message, a status, a string
  metric): e-mails, URLs, IBAN-like codes and IPv6 addresses become placeholders, runs
  of seven or more digits and IPv4 addresses lose their digits.
- ``mask_value``: a value shown as a name (a label, a facet value, an annotator, a row
  id, a field name): shown as given when it is a plain word, else as ``masked:<8 hex>``
  (the start of its SHA-256), so it can still be told apart and looked up by whoever
  holds the data. Labels and ids count as data.
- ``mask_shape``: a label or a replaced word by its shape (``Billing`` -> ``Bxxxxxx``), case and
  spacing visible: how label variants and a stage's replacements are named.
- ``shape``: a detected PII span as the PII stage's findings show it (``j***@e******.com``).
- ``mask_example``: a sample text shown in a report after the PII stage's scrubbing;
  every capitalised word keeps only its initial.
- ``mask_path``: an input file name as a short hash plus its extension.

Linear time: every value is cut to ``SCAN_CHARS`` before any regex runs, and the
patterns cannot backtrack across a token (the e-mail pattern only starts at a token
boundary), so a 5 MB value costs what its first few kilobytes cost.
"""

from __future__ import annotations

import hashlib
import numbers
import re
from pathlib import PurePath
from typing import Any

import polars as pl

SCAN_CHARS = 4096  # a longer string is cut before any regex; a name longer than PLAIN_CHARS is hashed anyway
PLAIN_CHARS = 40
PREFIX = "masked:"

_LOCAL = r"[\w.!#$%&'*+/=?^`{|}~-]"  # RFC 5322 local-part characters
# the one e-mail pattern: it may only start where a local part starts, so a long token
# without `@` is scanned once, not once per start position
EMAIL = re.compile(rf"(?<!{_LOCAL}){_LOCAL}{{1,64}}@[\w-]{{1,63}}(?:\.[\w-]{{1,63}}){{1,8}}")
URL = re.compile(r"\b(?:https?://|www\.)\S{0,2000}", re.IGNORECASE)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}[A-Z0-9]{10,30}\b")
_IPV6 = re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{1,4}\b")
# a run of digits split by spaces, dots, dashes or brackets (phones, cards, IBAN tails, SSNs, IPs)
_NUMBER_RUN = re.compile(r"\+?\(?\d[\d\s().-]{2,64}\d")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_LONG_DIGITS = re.compile(r"\d{7}")
# a plain word: letters, digits and a few separators, no `@`; not a run of 7+ digits
_PLAIN = re.compile(rf"[\w][\w .:/+\[\]-]{{0,{PLAIN_CHARS - 1}}}")
# two to four capitalised words read as a person's name ("Jane Doe"): not plain
_NAME_SHAPE = re.compile(r"[A-Z][a-z'’.-]+(?: [A-Z][A-Za-z'’.-]*){1,3}")
_HANDLE = re.compile(r"(?<!\w)@\w{1,64}")
_DIGIT = re.compile(r"\d")
_LETTERS = re.compile(r"[^\W\d_]+")
_CAPITALISED = re.compile(r"(?<![<\[\w])([A-ZÀ-Þ])[\w'’-]{0,200}")  # not inside <PERSON>-style placeholders
_MASKED_PATH = re.compile(r"file-[0-9a-f]{8}(?:[.][A-Za-z0-9]{1,8})?")
_WORDY = frozenset({"PERSON", "STREET_ADDRESS", "LOCATION", "ORGANIZATION", "NRP"})  # initials say little


def digest(value: str) -> str:
    """The first 8 hex digits of the value's SHA-256: how a masked value can still be told apart."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _digits(match: re.Match[str]) -> str:
    text = match.group(0)
    risky = sum(c.isdigit() for c in text) >= 7 or _IPV4.search(text)
    return _DIGIT.sub("#", text) if risky else text


def mask_text(value: str, *, limit: int = SCAN_CHARS) -> str:
    """A free string with contact data and identifiers masked, cut to ``limit`` characters.

    E-mails and URLs become ``<email>``/``<url>``, IBAN-like codes ``<iban>``, IPv6
    addresses ``<ip>``; runs of seven or more digits and IPv4 addresses keep their
    punctuation but lose their digits (``(415) 555-0199`` -> ``(###) ###-####``).
    """
    text = value if len(value) <= limit else value[:limit] + "…"
    text = URL.sub("<url>", EMAIL.sub("<email>", text))
    text = _IPV6.sub("<ip>", _IBAN.sub("<iban>", text))
    return _NUMBER_RUN.sub(_digits, text)


def is_plain(value: str) -> bool:
    """True for a value safe to show as given: a short plain word, no contact data, no long number, no name shape."""
    core = value.strip(" \t")  # ` billing` is a label variant worth showing, not a secret
    if len(value) > PLAIN_CHARS or not _PLAIN.fullmatch(core) or _LONG_DIGITS.search(core):
        return False
    return not (_NAME_SHAPE.fullmatch(core) or mask_text(core) != core)


def mask_value(value: Any) -> Any:
    """A data value shown as a name (label, facet value, annotator, id, field): as given when plain, else ``masked:<8 hex>``.

    Numbers, booleans and None pass through; any other object is shown by its string.
    """
    if value is None or isinstance(value, (bool, numbers.Number)):
        return value
    text = value if isinstance(value, str) else str(value)
    return text if is_plain(text) else PREFIX + digest(text)


def mask_values(values: Any) -> Any:
    """``mask_value`` over a list, or over a mapping's keys; anything else as ``mask_value``."""
    if isinstance(values, dict):
        return {mask_value(k): v for k, v in values.items()}
    if isinstance(values, (list, tuple)):
        return [mask_value(v) for v in values]
    return mask_value(values)


def mask_value_expr(expr: pl.Expr) -> pl.Expr:
    """``mask_value`` over a string column, computed once per distinct value."""
    return expr.map_batches(_mask_series, return_dtype=pl.String)


def _mask_series(s: pl.Series) -> pl.Series:
    uniques = s.drop_nulls().unique().to_list()
    mapping = {v: mask_value(v) for v in uniques}
    return s.replace_strict(mapping, default=None, return_dtype=pl.String) if mapping else s.cast(pl.String)


def shape(value: str, entity_type: str) -> str:
    """The most a report may show of a detected PII value: its shape, e.g. ``j***@e******.com``.

    Names and places (``PERSON``, ``STREET_ADDRESS``, ``LOCATION``, ``ORGANIZATION``,
    ``NRP``) keep the first letter of each word (``M**** L****``, ``*** M*** S*****``);
    an e-mail keeps the first letter of its local part (then ``***``) and of its domain,
    and its top-level domain; anything else keeps only its separators (``***-**-****``).
    """
    value = value[:SCAN_CHARS]
    if entity_type == "EMAIL_ADDRESS" and value.count("@") == 1 and "." in value.split("@")[1]:
        local, domain = value.split("@")
        host, _, tld = domain.rpartition(".")
        return f"{local[:1]}***@{host[:1]}{'*' * (len(host) - 1)}.{tld}"
    if entity_type not in _WORDY or len(value) <= 2:
        return re.sub(r"[^\W_]", "*", value)
    return re.sub(r"[^\W\d_]+|\d", lambda m: m.group()[:1] + "*" * (len(m.group()) - 1) if m.group()[0].isalpha() else "*", value)


def mask_shape(value: str) -> str:
    """A value by its shape: each word keeps its first letter, other letters become ``x``/``X``, digits ``#``.

    ``Jane Doe`` -> ``Jxxx Dxx``, ``BILLING`` -> ``BXXXXXX``, ``java.util.Random`` ->
    ``jxxx.uxxx.Rxxxxx``, ``(415) 555-0199`` -> ``(###) ###-####``. Case and spacing stay
    visible (they are what tells label variants apart); the value does not.
    """

    def word(m: re.Match[str]) -> str:
        w = m.group()
        return w[0] + "".join("X" if c.isupper() else "x" for c in w[1:])

    return _DIGIT.sub("#", _LETTERS.sub(word, value))


def mask_example(text: str, *, limit: int = 160) -> str:
    """A conservative mask for example texts shown in a report, cut to ``limit`` characters.

    On top of ``mask_text``'s placeholders, @handles become ``@<handle>``, every digit
    becomes ``#`` and every capitalised word keeps only its first letter (``Jane Doe`` ->
    ``J*** D***``), so names, addresses and numbers never survive, at the cost of
    masking some harmless words.
    """
    # placeholders are lowercase so the capitalised-word rule leaves them alone
    text = URL.sub("<url>", EMAIL.sub("<email>", text[: limit * 2]))
    text = _DIGIT.sub("#", _HANDLE.sub("@<handle>", text))
    text = _CAPITALISED.sub(lambda m: m.group(0) if m.group(0) == "I" else m.group(1) + "***", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_masked_path(name: str) -> bool:
    """True for a file name in the form ``mask_path`` gives (``file-<8 hex>.<ext>``)."""
    return _MASKED_PATH.fullmatch(name) is not None


def mask_path(path: str | PurePath, *, show: bool = False) -> str:
    """An input file as reports and logs show it: ``<8 hex of its name>.<ext>`` unless ``show``.

    The hash is of the path as given (a glob stays a glob's hash), so two runs over the
    same input show the same name.
    """
    text = str(path)
    if show or is_masked_path(text):  # already shown form: stays as it is
        return text
    suffix = PurePath(text).suffix
    return f"file-{digest(text)}{suffix if re.fullmatch(r'[.][A-Za-z0-9]{1,8}', suffix) else ''}"
