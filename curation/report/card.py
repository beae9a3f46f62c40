"""The Hugging Face dataset card (``dataset_card.md``), pre-filled from report.json.

The card uses the Hub's own template (``huggingface_hub``'s ``datasetcard_template.md``)
and its ``DatasetCardData`` metadata. What the run knows (size, structure, processing,
personal data found and treated, balance findings, validation verdict) is filled in;
what only a person can answer (licence, curators, intended and out-of-scope uses,
source producers, annotators) keeps the Hub's marker ``[More Information Needed]``, and
``license: unknown`` carries a YAML comment saying a person must set it.

``validate_card_metadata`` checks the YAML block offline against the Hub's dataset card
metadata spec (hub-docs ``datasetcard.md``): known keys, value types and vocabularies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SIZE_CATEGORIES = (
    "n<1K",
    "1K<n<10K",
    "10K<n<100K",
    "100K<n<1M",
    "1M<n<10M",
    "10M<n<100M",
    "100M<n<1B",
    "1B<n<10B",
    "10B<n<100B",
    "100B<n<1T",
    "n>1T",
)
# task categories and ids the Hub lists for text (huggingface.js packages/tasks/src/pipelines.ts)
TASKS = {
    "text-classification": {
        "multi-class-classification",
        "multi-label-classification",
        "sentiment-classification",
        "topic-classification",
        "intent-classification",
    },
    "text-generation": {"dialogue-modeling", "dialogue-generation", "conversational", "language-modeling"},
    "question-answering": {"extractive-qa", "open-domain-qa", "closed-domain-qa"},
    "text2text-generation": set(),
    "summarization": set(),
    "translation": set(),
    "token-classification": {"named-entity-recognition"},
    "sentence-similarity": set(),
    "text-ranking": set(),
    "reinforcement-learning": set(),
    "other": set(),
}
CREATORS = {"found", "crowdsourced", "expert-generated", "machine-generated", "no-annotation", "other"}
MULTILINGUALITY = {"monolingual", "multilingual", "translation", "other"}
SPEC_KEYS = {
    "language", "license", "license_name", "license_link", "license_details", "tags", "annotations_creators", "language_creators",
    "language_details", "pretty_name", "size_categories", "source_datasets", "task_categories", "task_ids", "paperswithcode_id",
    "configs", "dataset_info", "extra_gated_fields", "extra_gated_prompt", "train-eval-index", "multilinguality", "viewer",
}  # fmt: skip
_KIND_TASKS = {
    "classification": ("text-classification", ["multi-class-classification"]),
    "instruction": ("text-generation", ["dialogue-modeling"]),
    "text": ("text-generation", ["language-modeling"]),
    "preference": ("text-generation", []),
    "ratings": ("text-generation", []),
}


def size_category(n: int) -> str:
    """The Hub's size bucket for ``n`` examples."""
    for i, limit in enumerate((1_000, 10_000, 100_000, 1_000_000, 10**7, 10**8, 10**9, 10**10, 10**11, 10**12)):
        if n < limit:
            return SIZE_CATEGORIES[i]
    return SIZE_CATEGORIES[-1]


def _section(report: Mapping[str, Any], sid: str) -> dict[str, Any]:
    return next((s for s in report["sections"] if s["id"] == sid), {"ran": False})


def _languages(report: Mapping[str, Any]) -> list[str]:
    bal = _section(report, "balance")
    facet = next((f for f in bal.get("facets", []) if f["facet"] == "language"), None) if bal.get("ran") else None
    return sorted(v["value"] for v in (facet or {}).get("top", []) if re.fullmatch(r"[a-z]{2,3}", v["value"]))


def card_metadata(report: Mapping[str, Any]) -> dict[str, Any]:
    """The YAML metadata block, as a plain dict in the Hub's vocabulary."""
    lineage = _section(report, "lineage")
    kind = report["run"]["kind"]
    task, task_ids = _KIND_TASKS.get(kind, ("other", []))
    langs = _languages(report)
    meta: dict[str, Any] = {
        "pretty_name": f"{report['run']['run_id']} ({kind})",
        "license": "unknown",
        "size_categories": [size_category(int(lineage["dataset"]["rows"] or 0))],
        "task_categories": [task],
        "tags": ["tuneprep", kind, "curated"] + (["dpo", "preference"] if kind == "preference" else []),
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": lineage["dataset"]["path"]}]}],
        "dataset_info": {
            "features": lineage["features"],
            "splits": [{"name": "train", "num_examples": int(lineage["dataset"]["rows"] or 0)}],
        },
    }
    if task_ids:
        meta["task_ids"] = task_ids
    if langs:
        meta.update(language=langs, multilinguality=["multilingual" if len(langs) > 1 else "monolingual"])
    return meta


def render_card(report: Mapping[str, Any]) -> str:
    """``dataset_card.md``: the Hub's template filled from report.json."""
    from huggingface_hub import DatasetCard, DatasetCardData
    from huggingface_hub.repocard import TEMPLATE_DATASETCARD_PATH

    from curation.report.card_text import card_fields

    template = TEMPLATE_DATASETCARD_PATH.read_text(encoding="utf-8")
    note = "# tuneprep: `license` and every field marked [More Information Needed] must be completed by a person.\n{{ card_data }}"
    template = template.replace("{{ card_data }}", note, 1)
    card = DatasetCard.from_template(DatasetCardData(**card_metadata(report)), template_str=template, **card_fields(report))
    return str(card).rstrip() + "\n"


# ---------------------------------------------------------------------------- validation
def validate_card_metadata(text: str) -> list[str]:
    """Problems with a card's YAML metadata against the Hub's dataset card spec; empty when valid."""
    from huggingface_hub import DatasetCard

    try:
        data = DatasetCard(text).data.to_dict()
    except ValueError as e:
        return [f"the YAML metadata does not parse: {e}"]
    problems = [f"`{k}` is not a dataset card metadata key" for k in sorted(set(data) - SPEC_KEYS)]
    problems += _vocabulary(data)
    problems += _configs(data.get("configs"))
    problems += _dataset_info(data.get("dataset_info"))
    if not isinstance(data.get("pretty_name", ""), str):
        problems.append("`pretty_name` must be a string")
    return problems


def _as_list(value: Any) -> list[Any]:
    return [] if value is None else value if isinstance(value, list) else [value]


def _vocabulary(data: Mapping[str, Any]) -> list[str]:
    checks = [
        ("size_categories", set(SIZE_CATEGORIES) | {"other"}),
        ("task_categories", set(TASKS)),
        ("task_ids", set().union(*TASKS.values())),
        ("annotations_creators", CREATORS),
        ("language_creators", CREATORS - {"no-annotation"}),
        ("multilinguality", MULTILINGUALITY),
    ]
    problems = [f"`{key}` has unknown value {v!r}" for key, allowed in checks for v in _as_list(data.get(key)) if v not in allowed]
    problems += [
        f"`language` {v!r} is not an ISO 639 code"
        for v in _as_list(data.get("language"))
        if not re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]+)*", str(v))
    ]
    lic = data.get("license")
    if lic is not None and not all(isinstance(v, str) and re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", v) for v in _as_list(lic)):
        problems.append("`license` must be a Hub licence identifier such as `apache-2.0`, `other` or `unknown`")
    if "other" in _as_list(lic) and not data.get("license_name"):
        problems.append("`license: other` needs `license_name`")
    return problems


def _configs(configs: Any) -> list[str]:
    if configs is None:
        return []
    if not isinstance(configs, list) or not all(isinstance(c, Mapping) and isinstance(c.get("config_name"), str) for c in configs):
        return ["`configs` must be a list of mappings with a `config_name`"]
    problems = []
    for c in configs:
        files = c.get("data_files")
        ok = isinstance(files, (str, list)) and all(
            isinstance(f, str) or (isinstance(f, Mapping) and set(f) == {"split", "path"} and re.fullmatch(r"\w+", str(f["split"])))
            for f in _as_list(files)
        )
        if not ok:
            problems.append(f"`configs` entry {c['config_name']!r}: `data_files` must be paths or {{split, path}} mappings")
    return problems


def _dataset_info(info: Any) -> list[str]:
    if info is None:
        return []
    if not isinstance(info, Mapping) or not isinstance(info.get("features", []), list):
        return ["`dataset_info` must be a mapping with a `features` list"]
    problems = [
        f"`dataset_info.features` entry {f!r} needs a `name` and a type (`dtype`, `list`, `sequence`, `struct` or `class_label`)"
        for f in info.get("features", [])
        if not _feature_ok(f)
    ]
    for s in info.get("splits", []):
        if not (isinstance(s, Mapping) and isinstance(s.get("name"), str) and isinstance(s.get("num_examples", 0), int)):
            problems.append(f"`dataset_info.splits` entry {s!r} needs a `name` and an integer `num_examples`")
    return problems


def _feature_ok(f: Any) -> bool:
    return isinstance(f, Mapping) and isinstance(f.get("name"), str) and _type_ok(f)


def _type_ok(t: Mapping[str, Any]) -> bool:
    """A feature type: ``dtype``, ``class_label``, ``struct`` (fields) or ``list``/``sequence`` of a dtype, fields or a type."""
    if isinstance(t.get("dtype"), str) or isinstance(t.get("class_label"), Mapping):
        return True
    if "struct" in t:
        return isinstance(t["struct"], list) and all(_feature_ok(x) for x in t["struct"])
    key = "list" if "list" in t else "sequence"
    item, length = t.get(key), t.get("length", -1)
    if not isinstance(length, int) or isinstance(length, bool):
        return False
    if isinstance(item, list):
        return all(_feature_ok(x) for x in item)
    return isinstance(item, str) or (isinstance(item, Mapping) and _type_ok(item))
