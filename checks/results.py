"""What a check run found: one ``Outcome`` per expectation, the verdict, and the failure lines.

GX's own ``success`` is not the verdict: a suite whose only failures are warnings still
reports ``success=False``, and an expectation that raised comes back as a plain
failure. The verdict is computed here from severities: any errored expectation makes
it ``error``, any failed critical one ``fail``, otherwise ``pass`` (warnings reported).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl

from checks.derive import label_key
from checks.gx import RawResult
from checks.suites import Spec
from curation.core.masking import mask_shape, mask_text, mask_value

Verdict = Literal["pass", "fail", "error"]
_SHOW_IDS = 5  # ids named in a failure line; results.json keeps up to checks.gx.SAMPLE


@dataclass(frozen=True)
class Outcome:
    """One expectation's result, in the gate's terms."""

    name: str
    check: str
    column: str | None
    severity: str
    success: bool
    observed: Any
    message: str
    error: str | None = None
    expectation: str = ""  # the GX expectation class

    @property
    def status(self) -> Literal["ok", "failed", "warning", "error"]:
        if self.error is not None:
            return "error"
        if self.success:
            return "ok"
        return "failed" if self.severity == "critical" else "warning"

    def line(self) -> str:
        """The one line the CLI prints for this expectation when it did not pass."""
        tag = {"error": "ERROR", "failed": "FAIL", "warning": "WARN", "ok": "OK"}[self.status]
        return f"{tag} [{self.severity}] {self.name}: {self.message}"


def _observed(result: dict[str, Any]) -> Any:
    if "observed_value" in result:  # e.g. the distinct labels seen: data, so masked
        return _masked(result["observed_value"])
    ids = [item["id"] for item in result.get("partial_unexpected_index_list") or [] if isinstance(item, dict) and "id" in item]
    return {
        "unexpected": result.get("unexpected_count"),
        "rows": result.get("element_count"),
        "ids": ids,
        "values": result.get("partial_unexpected_list", []),
    }


def _masked(value: Any) -> Any:
    """Strings in an observed value shown by ``mask_value``, numbers as they are."""
    if isinstance(value, dict):
        return {mask_value(k): _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    return mask_value(value)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _failure_message(spec: Spec, observed: Any, detail: str) -> str:
    if spec.note:
        return spec.note
    if isinstance(observed, dict):
        ids = observed["ids"][:_SHOW_IDS]
        more = " ..." if (observed["unexpected"] or 0) > len(ids) else ""
        named = f" (ids: {', '.join(map(str, ids))}{more})" if ids else ""
        return f"expected {spec.describe}; {observed['unexpected']} of {observed['rows']} rows violate it{named}{detail}"
    return f"expected {spec.describe}; observed {_fmt(observed)}{detail}"


def show_label(label: str | None) -> str:
    """A label as a check line names it: by shape, quoted so case and spacing show (``'Bxxxxxx '``).

    Labels are data (a label can be a name or an e-mail), so lines never print one raw;
    the shape is what tells the variants of one label apart.
    """
    return "null" if label is None else repr(mask_shape(label))


@dataclass(frozen=True)
class LabelCounts:
    """Rows per label (columns ``label``, ``len``) of a non-empty dataset with a string label, and its rows."""

    counts: pl.DataFrame
    rows: int


def label_counts(frame: pl.DataFrame) -> LabelCounts | None:
    """What label checks name in their lines; None when there is no non-empty string ``label`` column."""
    if "label" not in frame.columns or frame.is_empty() or frame.schema["label"] != pl.String:
        return None
    return LabelCounts(frame.group_by("label").len(), frame.height)


def class_detail(spec: Spec, labels: LabelCounts | None) -> str:
    """Which labels break a label check, by shape (``show_label``), with their rows."""
    if spec.check not in _LABEL_CHECKS or labels is None:
        return ""
    counts = labels.counts.with_columns(label_key(pl.col("label")).alias("key"))
    if spec.check == "max_class_share":
        label, n = counts.sort(["len", "label"], descending=[True, False]).select("label", "len").row(0)
        return f" ({show_label(label)}: {n} of {labels.rows} rows)"
    if spec.check == "min_rows_per_class":
        small = counts.filter(pl.col("len") < spec.kwargs["min_value"]).sort("len", "label").head(_SHOW_IDS)
        return " (" + ", ".join(f"{show_label(label)}: {n}" for label, n in small.select("label", "len").iter_rows()) + ")"
    if spec.check == "label_set":
        outside = counts.filter(~pl.col("label").is_in(spec.kwargs["value_set"]) | pl.col("label").is_null()).sort(
            "len", "label", descending=[True, False]
        )
        return "; outside the set: " + _listed(outside.select("label", "len").rows(), outside.height)
    if spec.check == "label_singletons":
        keys = counts.group_by("key").agg(pl.col("len").sum(), pl.col("label").first()).filter(pl.col("len") < 2).sort("label")
        return " (one row each: " + _listed([(label, None) for label in keys["label"]], keys.height) + ")"
    groups = counts.filter(pl.col("label").n_unique().over("key") > 1).sort(["key", "len", "label"], descending=[False, True, False])
    parts = [_listed(g.select("label", "len").rows(), g.height) for _, g in groups.group_by("key", maintain_order=True)]
    more = " ..." if len(parts) > _SHOW_IDS else ""
    return " (variants: " + "; ".join(parts[:_SHOW_IDS]) + more + ")"


_LABEL_CHECKS = ("min_rows_per_class", "max_class_share", "label_set", "label_variants", "label_singletons")


def _listed(items: list[tuple[str | None, int | None]], total: int) -> str:
    shown = [show_label(label) + (f" {n}" if n is not None else "") for label, n in items[:_SHOW_IDS]]
    return ", ".join(shown) + (" ..." if total > len(shown) else "")


def to_outcome(spec: Spec, raw: RawResult | None, frame: pl.DataFrame | LabelCounts | None, detail: str = "") -> Outcome:
    """The outcome of ``spec`` from GX's raw result (missing from the results: an error).

    ``detail`` is added to a failure line (``checks.fidelity.details``); label checks name
    their labels, from ``frame`` (the dataset, or its ``label_counts``).
    """
    if raw is None:
        return _outcome(spec, False, None, f"{spec.describe}: no result came back from Great Expectations", "missing result")
    if raw.exception is not None:
        error = mask_text(raw.exception)
        return _outcome(spec, False, None, f"could not evaluate ({spec.describe}): {error}", error)
    observed = _observed(raw.result)
    if raw.success:
        return _outcome(spec, True, observed, f"{spec.describe}: ok")
    return _outcome(
        spec,
        False,
        observed,
        _failure_message(spec, observed, detail + class_detail(spec, label_counts(frame) if isinstance(frame, pl.DataFrame) else frame)),
    )


def _outcome(spec: Spec, success: bool, observed: Any, message: str, error: str | None = None) -> Outcome:
    return Outcome(spec.name, spec.check, spec.column, spec.severity, success, observed, message, error, spec.expectation)


def verdict_of(outcomes: list[Outcome]) -> Verdict:
    statuses = {o.status for o in outcomes}
    return "error" if "error" in statuses else "fail" if "failed" in statuses else "pass"


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one ``run_checks`` call and everything behind it.

    Attributes:
        run_id: the run's id from its manifest.
        verdict: ``pass``, ``fail`` (a critical expectation failed) or ``error`` (one could not be evaluated).
        outcomes: every expectation's outcome, in suite order.
        suite_fingerprint: identifies the suite (kind, form, thresholds, severities).
        dataset_fingerprint: the fingerprint of the dataset that was validated.
        results_path: GX's validation result, as JSON.
        docs_path: the Data Docs index page.
    """

    run_id: str
    verdict: Verdict
    outcomes: tuple[Outcome, ...]
    suite_fingerprint: str
    dataset_fingerprint: str
    results_path: Path
    docs_path: Path

    def _with(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def failures(self) -> list[Outcome]:
        return self._with("failed")

    @property
    def warnings(self) -> list[Outcome]:
        return self._with("warning")

    @property
    def errors(self) -> list[Outcome]:
        return self._with("error")

    @property
    def lines(self) -> list[str]:
        """One line per expectation that did not pass: errors, then failures, then warnings."""
        return [o.line() for o in (*self.errors, *self.failures, *self.warnings)]

    @property
    def summary(self) -> str:
        return (
            f"checks {self.verdict}: {len(self.outcomes)} expectations, {len(self.failures)} failed, "
            f"{len(self.warnings)} warnings, {len(self.errors)} errors; dataset {self.dataset_fingerprint[:12]}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "verdict": self.verdict,
            "suite_fingerprint": self.suite_fingerprint,
            "dataset_fingerprint": self.dataset_fingerprint,
            "lines": self.lines,
            "outcomes": [asdict(o) for o in self.outcomes],
        }
