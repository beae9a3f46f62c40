"""What keeps the report safe to share: masked values and samples, inert SVG.

Three rules. Strings that may echo the data (labels, facet values, a stage's string
metrics) go through ``scrub_value``, which masks e-mail addresses, URLs, phone-like
digit runs and other long numbers. Sample texts are shown only through the PII stage's
own masking (``curation.stages.pii.stage.scrub_texts``) followed by ``scrub_value``; when that is not
available no sample text is shown at all. SVG charts written by stages are parsed and
re-serialised without scripts, event handlers, foreign objects or external references,
so the page makes no request and runs no code.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
ET.register_namespace("", SVG_NS)
ET.register_namespace("xlink", XLINK_NS)

_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")  # RFC 5322 local-part characters
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)
# a run of digits, possibly split by spaces, dots, dashes or brackets (phones, cards, IBAN tails, SSNs, IPs)
_NUMBER_RUN = re.compile(r"\+?\(?\d[\d\s().-]{2,}\d")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}[A-Z0-9]{10,30}\b")
_IPV6 = re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{1,4}\b")
_UNSAFE_ELEMENTS = {"script", "foreignObject", "iframe", "object", "embed", "image", "use", "a", "animate", "set"}


_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")


def _digits(match: re.Match[str]) -> str:
    """Mask a digit run that could identify someone: 7+ digits (phones, cards, SSNs, accounts) or an IPv4."""
    text = match.group(0)
    risky = sum(c.isdigit() for c in text) >= 7 or _IPV4.search(text)
    return re.sub(r"\d", "#", text) if risky else text


def scrub_value(value: str) -> str:
    """Mask what looks like contact data or an identifier in a short string.

    E-mails and URLs become ``<email>``/``<url>``; IBAN-like codes become ``<iban>``;
    runs of seven or more digits (phones, cards, SSNs, account numbers) and IPv4
    addresses keep their punctuation but lose their digits (``(415) 555-0199`` ->
    ``(###) ###-####``); shorter numbers (counts, years) stay readable.
    """
    text = _URL.sub("<url>", _EMAIL.sub("<email>", value))
    text = _IPV6.sub("<ip>", _IBAN.sub("<iban>", text))
    return _NUMBER_RUN.sub(_digits, text)


def scrub_id(value: str) -> str:
    """A row id as the report shows it: content-hash ids stay readable, an e-mail or URL used as an id does not."""
    return _URL.sub("<url>", _EMAIL.sub("<email>", value))


def mask_samples(texts: Sequence[str], pii_options: Mapping[str, Any] | None = None) -> list[str] | None:
    """Mask sample texts by the PII stage's rules, then ``scrub_value``; None when the PII stage is not installed.

    Args:
        texts: the samples to show.
        pii_options: the run's resolved ``pii`` options (its entities, thresholds, allow
            and deny lists); every found span is replaced by ``<ENTITY>`` whatever the
            run's operator, since a report shows samples, not data.
    """
    try:
        from curation.stages.pii import stage as pii
    except ImportError:
        return None
    if not (hasattr(pii, "scrub_texts") and hasattr(pii, "PiiConfig")):
        return None
    if not texts:
        return []
    from curation.core.stage import StageContext

    options = {**(pii_options or {}), "operator": "replace", "operators": {}}
    cfg = pii.PiiConfig(**options)
    return [scrub_value(t) for t in pii.scrub_texts(list(texts), cfg, StageContext(kind="text"))]


def sanitize_svg(svg: str) -> str:
    """An inert copy of an SVG chart: no scripts, handlers, foreign content or external links.

    Raises:
        ValueError: the text is not an SVG document.
    """
    root = ET.fromstring(svg)
    if root.tag not in (f"{{{SVG_NS}}}svg", "svg"):
        raise ValueError(f"expected an <svg> root element, got <{root.tag}>")
    _strip(root)
    return ET.tostring(root, encoding="unicode")


def _strip(el: ET.Element) -> None:
    for child in list(el):
        local = child.tag.rsplit("}", 1)[-1]
        is_css_with_url = local == "style" and re.search(r"url\(|@import", child.text or "", re.I)
        if local in _UNSAFE_ELEMENTS or is_css_with_url:
            el.remove(child)
            continue
        _strip(child)
    for name in list(el.attrib):
        local = name.rsplit("}", 1)[-1].lower()
        value = el.attrib[name]
        if local.startswith("on") or (local in ("href", "src") and not value.startswith("#")) or ("url(" in value and "url(#" not in value):
            del el.attrib[name]


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
