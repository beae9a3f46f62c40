"""The expectation suite for a curated dataset, as plain data (no Great Expectations import).

``build_suite`` turns a record kind, the dataset's columns and the ``checks:`` config into
a list of ``Spec``: which GX expectation to run, on which column, with which arguments
and severity. Keeping the suite as data makes its fingerprint cheap and stable, and
lets the gate reason about it without paying the seconds GX takes to import.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from checks.fidelity import StageRewrite
from curation.core.config import ChecksConfig
from curation.core.rundir import sha256_json
from curation.core.schema import BALANCE_COLUMNS, NON_EMPTY, Kind, detect_form

Severity = Literal["critical", "warning"]
SUITE_VERSION = 1  # bump when a default expectation changes meaning

# Check names: the keys of `checks.severity`, and the first word of every failure line.
CHECKS: tuple[str, ...] = get_args(get_args(ChecksConfig.model_fields["severity"].annotation)[0])


@dataclass(frozen=True)
class Spec:
    """One expectation of the suite.

    Attributes:
        name: unique within the suite, ``<check>`` or ``<check>:<column>``.
        check: the check it belongs to (a key of ``checks.severity``, or ``custom``).
        expectation: the GX expectation class name.
        kwargs: its arguments (column, bounds, value sets...).
        severity: ``critical`` blocks training, ``warning`` is only reported.
        describe: what must hold, in words, for the failure line.
        note: a fixed explanation to print when it fails (instead of the observed value).
    """

    name: str
    check: str
    expectation: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    severity: Severity = "critical"
    describe: str = ""
    note: str | None = None

    @property
    def column(self) -> str | None:
        return self.kwargs.get("column")


def suite_fingerprint(specs: list[Spec]) -> str:
    return sha256_json({"version": SUITE_VERSION, "specs": [asdict(s) for s in specs]})


def _severity(cfg: ChecksConfig, check: str, default: Severity = "critical") -> Severity | None:
    """The configured severity of ``check``; None when it is turned off."""
    level = dict(cfg.severity).get(check, default)  # type: ignore[call-overload]
    return None if level == "off" else level


_PER_COLUMN = ("column_types", "not_null", "not_empty")  # one expectation per column: the name carries it


class _Builder:
    def __init__(self, cfg: ChecksConfig) -> None:
        self.cfg = cfg
        self.specs: list[Spec] = []

    def add(
        self,
        check: str,
        expectation: str,
        describe: str,
        *,
        column: str | None = None,
        default: Severity = "critical",
        note: str | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        severity = _severity(self.cfg, check, default)
        if severity is None:
            return
        if column is not None:
            kwargs = {"column": column, **kwargs}
        name = name or (f"{check}:{column}" if check in _PER_COLUMN else check)
        self.specs.append(Spec(name, check, expectation, kwargs, severity, describe, note))


_PANDAS_TYPES = {"String": "str", "Float64": "float64"}


def _columns(b: _Builder, kind: Kind, columns: list[str]) -> None:
    form = detect_form(kind, columns)
    required = ["id", *form.required]
    b.add(
        "required_columns",
        "ExpectTableColumnsToMatchSet",
        f"columns {', '.join(required)} are present",
        column_set=required,
        exact_match=False,
    )
    # pandas names: polars String -> str, Float64 -> float64; ints and lists are left to other checks
    pandas_types = {"id": "str", **{c: _PANDAS_TYPES.get(str(t)) for c, t in form.columns.items()}}
    for col, type_name in pandas_types.items():
        if col in columns and type_name is not None:
            b.add("column_types", "ExpectColumnValuesToBeOfType", f"`{col}` holds {type_name} values", column=col, type_=type_name)
    for col in required:
        if col in columns and col != "messages":  # messages: see messages_roles
            b.add("not_null", "ExpectColumnValuesToNotBeNull", f"`{col}` has no nulls", column=col)
    for col in form.columns:
        if col in columns and col in NON_EMPTY:
            b.add("not_empty", "ExpectColumnValuesToNotMatchRegex", f"`{col}` has no empty or blank values", column=col, regex=r"^\s*$")
    b.add("unique_ids", "ExpectColumnValuesToBeUnique", "ids are unique", column="id")
    if any(c in columns for c in form.text_fields):
        b.add("no_exact_duplicates", "ExpectColumnValuesToBeUnique", "no two rows have the same text", column="_dup_key")


def _volume(b: _Builder, cfg: ChecksConfig, kind: Kind, columns: list[str]) -> None:
    b.add("min_rows", "ExpectTableRowCountToBeBetween", f"at least {cfg.min_rows} rows", min_value=cfg.min_rows)
    bounds = f"between {cfg.min_tokens} and {cfg.max_tokens}" if cfg.max_tokens else f"at least {cfg.min_tokens}"
    unit = "tokenizer" if cfg.tokenizer else "whitespace"
    b.add(
        "token_length",
        "ExpectColumnValuesToBeBetween",
        f"{bounds} {unit} tokens per row",
        column="_n_tokens",
        min_value=cfg.min_tokens,
        max_value=cfg.max_tokens,
    )
    if "label" not in columns:
        return
    _labels(b, cfg)
    if kind != "classification":
        return
    b.add(
        "min_rows_per_class",
        "ExpectColumnMinToBeBetween",
        f"every class has at least {cfg.min_rows_per_class} rows",
        column="_class_rows",
        min_value=cfg.min_rows_per_class,
    )
    b.add(
        "max_class_share",
        "ExpectColumnMaxToBeBetween",
        f"the largest class holds at most {cfg.max_class_share:.0%} of rows",
        column="_class_share",
        max_value=cfg.max_class_share,
    )


def _labels(b: _Builder, cfg: ChecksConfig) -> None:
    """Label hygiene, whatever stages ran: declared set, case and spacing variants, one-row labels."""
    if cfg.label_set is not None:
        b.add(
            "label_set",
            "ExpectColumnValuesToBeInSet",
            f"labels are in {sorted(cfg.label_set)}",
            column="label",
            value_set=sorted(cfg.label_set),
        )
    b.add(
        "label_variants",
        "ExpectColumnMaxToBeBetween",
        "no two labels differ only in case or spacing",
        column="_label_variants",
        max_value=1,
    )
    b.add("label_singletons", "ExpectColumnMinToBeBetween", "every label has at least 2 rows", column="_label_rows", min_value=2)


def _fidelity(b: _Builder, cfg: ChecksConfig, rewrites: list[StageRewrite]) -> None:
    """Per stage that rewrote text: its share of rewritten rows, and its most repeated replaced value."""
    limit = cfg.fidelity.max_repeated_value_rows
    for r in rewrites:
        share = cfg.fidelity.share_for(r.stage.split("#")[0])
        for describe, column, name, bound in (
            (f"{r.stage} rewrites at most {share:.0%} of the rows it keeps", r.share_column, f"fidelity:{r.stage}", share),
            (f"no word or number replaced by {r.stage} in more than {limit} rows", r.repeats_column, f"fidelity:{r.stage}:repeats", limit),
        ):
            b.add("fidelity", "ExpectColumnMaxToBeBetween", describe, column=column, default="warning", name=name, max_value=bound)


def _content(b: _Builder, cfg: ChecksConfig, kind: Kind, columns: list[str], *, pii_ran: bool) -> None:
    if pii_ran:
        b.add(
            "residual_pii",
            "ExpectColumnMaxToBeBetween",
            f"at most {cfg.max_residual_pii} PII entities left after treatment",
            column="_residual_pii",
            max_value=cfg.max_residual_pii,
        )
    else:  # not a silent pass: say that nothing looked for PII
        b.add(
            "residual_pii",
            "ExpectColumnMinToBeBetween",
            "a PII stage scanned the data",
            column="_residual_pii",
            default="warning",
            note="no PII stage in this run",
            min_value=0,
        )
    if kind == "preference" and {"chosen", "rejected"} <= set(columns):
        b.add(
            "chosen_differs", "ExpectColumnValuesToBeInSet", "chosen differs from rejected", column="_chosen_eq_rejected", value_set=[False]
        )
    if set(BALANCE_COLUMNS) & set(columns):
        b.add(
            "balance_columns",
            "ExpectColumnValuesToBeNull",
            "`sample_weight` is a finite number >= 0 and `repeat` a whole number >= 1 (training's rules)",
            column="_balance_issue",
        )
    if "messages" in columns:
        b.add(
            "messages_roles",
            "ExpectColumnValuesToBeNull",
            "messages alternate user/assistant after an optional system turn, end with assistant, no empty turn",
            column="_messages_issue",
        )


def build_suite(
    kind: Kind, columns: list[str], cfg: ChecksConfig, *, pii_ran: bool, rewrites: list[StageRewrite] | None = None
) -> list[Spec]:
    """The specs for a dataset of ``kind`` with ``columns``, in a stable order.

    Args:
        kind: the dataset's record kind (after pair assembly: ``preference``).
        columns: the dataset's columns (they pick the form and which checks apply).
        cfg: thresholds and severities from the ``checks:`` config section.
        pii_ran: whether a PII stage ran; without one the residual check is a warning.
        rewrites: the stages that rewrote text (``checks.fidelity.read_rewrites``).
    """
    b = _Builder(cfg)
    _columns(b, kind, columns)
    _volume(b, cfg, kind, columns)
    _content(b, cfg, kind, columns, pii_ran=pii_ran)
    _fidelity(b, cfg, rewrites or [])
    for i, custom in enumerate(cfg.custom):
        column = custom.kwargs.get("column")
        name = f"custom[{i}]:{custom.type}" + (f":{column}" if column else "")
        b.specs.append(
            Spec(
                name,
                "custom",
                custom.type,
                dict(custom.kwargs),
                custom.severity,
                f"{custom.type}({', '.join(f'{k}={v!r}' for k, v in custom.kwargs.items())})",
            )
        )
    return b.specs
