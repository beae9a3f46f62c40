"""What keeps the report safe to share: masked values and samples, inert SVG.

Three rules. Strings that may echo the data (labels, facet values, a stage's string
metrics) go through ``scrub_value``, which is ``curation.core.masking.mask_text`` (e-mail
addresses, URLs, phone-like digit runs and other long numbers masked; linear time). Sample texts are shown only through the PII stage's
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

from curation.core.masking import mask_text, mask_value

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
ET.register_namespace("", SVG_NS)
ET.register_namespace("xlink", XLINK_NS)

_UNSAFE_ELEMENTS = {"script", "foreignObject", "iframe", "object", "embed", "image", "use", "a", "animate", "set"}


def scrub_value(value: str) -> str:
    """A string that may echo the data, masked by ``curation.core.masking.mask_text``."""
    return mask_text(value)


def scrub_id(value: str) -> str:
    """A row id as the report shows it: ``curation.core.masking.mask_value`` (plain ids stay readable)."""
    return str(mask_value(value))


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
