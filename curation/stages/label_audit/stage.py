"""The `label_audit` stage: wrong, inconsistent and low-quality labels, found before training.

For ``classification`` rows, in order:

1. label hygiene: labels are stripped, inner spaces collapsed and casefolded, synonyms
   mapped through ``label_map``, and spelled as declared in ``labels``; every changed
   label is a ``label_normalized`` finding (old and new) and counted in stats. Missing
   labels are ``label_missing``, labels outside ``labels`` are ``label_unknown``;
2. suspected mislabels (``label_mislabel``) by confident learning over out-of-fold
   probabilities of a logistic regression on TF-IDF or MiniLM features
   (``curation.stages.label_audit.confident_learning``), each with a label-quality score and a suggestion;
3. conflicts (``label_conflict``): the same text (case and spacing ignored), or a
   near-duplicate cluster found by an earlier ``dedup`` stage, carrying different
   labels. The group's label is its majority (ties broken by the classifier's mean
   confidence); rows disagreeing with it are findings;
4. annotator agreement when an ``annotator`` column exists (``curation.stages.label_audit.agreement``).

For ``instruction`` rows it runs the response audit (``curation.stages.label_audit.response_audit``).
Every finding type has an action: ``flag`` (kept and reported), ``drop`` (reason =
the issue, e.g. ``label_conflict``) or ``relabel`` (the suggestion replaces the label;
the finding keeps the old one). Other kinds pass through untouched.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal, get_args

import numpy as np
import polars as pl
from pydantic import Field, field_validator, model_validator

from curation.core.masking import mask_value, mask_values
from curation.core.options import Strict
from curation.core.stage import StageContext, StageResult, empty_like
from curation.stages.label_audit.response_audit import RESPONSE_ISSUES, ResponseAuditConfig, response_findings

Issue = Literal[
    "label_missing",
    "label_unknown",
    "label_conflict",
    "label_mislabel",
    "response_empty",
    "response_echo",
    "response_truncated",
    "response_refusal",
    "response_length_ratio",
]
Action = Literal["flag", "drop", "relabel"]
ISSUES: tuple[str, ...] = get_args(Issue)  # precedence when one row has several findings
LABEL_ISSUES = ISSUES[:4]
assert ISSUES[4:] == RESPONSE_ISSUES
FINDINGS_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "issue": pl.String(),
    "given_label": pl.String(),
    "suggested_label": pl.String(),
    "score": pl.Float64(),
    "action": pl.String(),
    "group": pl.String(),
    "detail": pl.String(),
}


def _norm(label: str, casefold: bool) -> str:
    squashed = " ".join(label.split())
    return squashed.casefold() if casefold else squashed


class LabelAuditConfig(Strict):
    """Options of the `label_audit` stage; docs/label_audit.md explains each one."""

    labels: list[str] | None = None  # the declared label set (canonical spelling); None = any label is allowed
    label_map: dict[str, str] = Field(default_factory=dict)  # synonym -> label, e.g. {payments: billing}
    casefold: bool = True  # `Billing`, ` billing`, `BILLING` are one label
    features: Literal["tfidf", "embeddings"] | None = "tfidf"  # None turns confident learning off; see docs for the trade-off
    folds: int = Field(5, ge=2, le=20)  # out-of-fold probabilities; 5 as in the confident learning paper
    rank_by: Literal["self_confidence", "normalized_margin"] = "self_confidence"
    min_class_rows: int = Field(10, ge=2)  # smaller classes are too small to learn: not audited by confident learning
    actions: dict[Issue, Action] = Field(default_factory=dict)  # issue -> action; unlisted issues are flagged
    response: ResponseAuditConfig = Field(default_factory=ResponseAuditConfig)  # type: ignore[arg-type]

    @field_validator("labels")
    @classmethod
    def _labels_present(cls, labels: list[str] | None) -> list[str] | None:
        if labels is not None and (not labels or any(not label.strip() for label in labels)):
            raise ValueError("`labels` must list at least one non-empty label, or be left out")
        return labels

    @model_validator(mode="after")
    def _consistent(self) -> LabelAuditConfig:
        declared = [_norm(label, self.casefold) for label in self.labels or []]
        if len(set(declared)) != len(declared):
            raise ValueError("`labels` has entries that are the same label after normalisation (case and spacing); list each once")
        for source, target in self.label_map.items():
            if not source.strip() or not target.strip():
                raise ValueError("`label_map` keys and values must be non-empty labels")
            if self.labels is not None and _norm(target, self.casefold) not in declared:
                raise ValueError(f"`label_map` maps {source!r} to {target!r}, which is not in `labels`")
        bad = sorted(issue for issue, action in self.actions.items() if action == "relabel" and issue not in LABEL_ISSUES)
        if bad:
            raise ValueError(f"`actions`: `relabel` applies to label issues only, not {', '.join(bad)}; use `flag` or `drop`")
        return self

    @property
    def declared(self) -> list[str] | None:
        """``labels`` as they will be spelled: surrounding and repeated spaces removed."""
        return None if self.labels is None else [" ".join(label.split()) for label in self.labels]

    def action(self, issue: str) -> Action:
        return self.actions.get(issue, "flag")  # type: ignore[call-overload,no-any-return]


def label_audit(df: pl.DataFrame, cfg: LabelAuditConfig, ctx: StageContext) -> StageResult:
    """Audit labels (classification) or responses (instruction); other kinds pass through."""
    if ctx.kind == "classification":
        return _audit_classification(df, cfg, ctx)
    if ctx.kind == "instruction":
        return audit_instruction(df, cfg, response_findings(df, cfg.response))
    stats = {
        "applies": False,
        "reason": f"label_audit audits classification labels and instruction responses; nothing applies to kind `{ctx.kind}`",
    }
    return StageResult(kept=df, dropped=empty_like(df, reason=pl.String()), findings=pl.DataFrame(schema=FINDINGS_SCHEMA), stats=stats)


# ---- label hygiene -------------------------------------------------------------------


def canonical_labels(values: list[str | None], cfg: LabelAuditConfig) -> dict[str, str | None]:
    """Raw label -> canonical label (None when it is empty after stripping)."""
    declared = {_norm(label, cfg.casefold): label for label in cfg.declared or []}
    synonyms = {_norm(k, cfg.casefold): _norm(v, cfg.casefold) for k, v in cfg.label_map.items()}
    out: dict[str, str | None] = {}
    for raw in values:
        if raw is None:
            continue
        key = synonyms.get(_norm(raw, cfg.casefold), _norm(raw, cfg.casefold))
        out[raw] = None if not key else declared.get(key, key)
    return out


def _canonical(raw: pl.Series, cfg: LabelAuditConfig) -> pl.Series:
    mapping = canonical_labels(raw.unique().sort().to_list(), cfg)
    return raw.replace_strict(list(mapping), list(mapping.values()), default=None, return_dtype=pl.String).alias("label")


def _finding(
    frame: pl.DataFrame,
    issue: str | pl.Expr,
    *,
    given: pl.Expr,
    suggested: pl.Expr,
    score: pl.Expr,
    detail: pl.Expr,
    group: pl.Expr | None = None,
) -> pl.DataFrame:
    return frame.select(
        "id",
        (pl.lit(issue) if isinstance(issue, str) else issue).alias("issue"),
        given.cast(pl.String).alias("given_label"),
        suggested.cast(pl.String).alias("suggested_label"),
        score.cast(pl.Float64).alias("score"),
        pl.lit(None, pl.String).alias("action"),
        (group if group is not None else pl.lit(None, pl.String)).cast(pl.String).alias("group"),
        detail.cast(pl.String).alias("detail"),
    )


def _hygiene_findings(rows: pl.DataFrame, cfg: LabelAuditConfig) -> list[pl.DataFrame]:
    none = pl.lit(None, pl.String)
    changed = rows.filter(pl.col("raw").is_not_null() & pl.col("label").is_not_null() & (pl.col("raw") != pl.col("label")))
    synonyms = {_norm(k, cfg.casefold) for k in cfg.label_map}
    via_map = [raw for raw in changed["raw"].unique().sort().to_list() if _norm(raw, cfg.casefold) in synonyms]
    detail = pl.when(pl.col("raw").is_in(via_map)).then(pl.lit("label_map")).otherwise(pl.lit("case_and_spacing"))
    out = [_finding(changed, "label_normalized", given=pl.col("raw"), suggested=pl.col("label"), score=pl.lit(None), detail=detail)]
    missing = rows.filter(pl.col("label").is_null())
    out.append(
        _finding(missing, "label_missing", given=pl.col("raw"), suggested=pl.col("predicted"), score=pl.col("predicted_p"), detail=none)
    )
    if cfg.declared is not None:
        unknown = rows.filter(pl.col("label").is_not_null() & ~pl.col("label").is_in(cfg.declared))
        out.append(
            _finding(
                unknown,
                "label_unknown",
                given=pl.col("label"),
                suggested=pl.col("predicted"),
                score=pl.col("predicted_p"),
                detail=pl.lit("not in `labels`"),
            )
        )
    return out


def _normalized_counts(rows: pl.DataFrame) -> dict[str, dict[str, int]]:
    changed = rows.filter(pl.col("raw").is_not_null() & pl.col("label").is_not_null() & (pl.col("raw") != pl.col("label")))
    counts = changed.group_by("label", "raw").len().sort("label", "raw")
    out: dict[str, dict[str, int]] = {}
    for label, raw, n in counts.iter_rows():
        out.setdefault(label, {})[raw] = n
    return out


# ---- confident learning --------------------------------------------------------------


def feature_texts(df: pl.DataFrame, cfg: LabelAuditConfig) -> list[str] | None:
    """The texts confident learning featurises (``_learn``), or None when it will not run."""
    labels = df.select(label=_canonical(df["label"].cast(pl.String), cfg))
    if cfg.features is None or len(_audited_classes(labels, cfg)[0]) < 2:
        return None
    return df["text"].fill_null("").to_list()


def _features(texts: list[str], cfg: LabelAuditConfig, ctx: StageContext) -> Any:
    from curation.stages.label_audit.confident_learning import tfidf_features

    if cfg.features == "embeddings":
        from curation.embeddings import embed

        return embed(texts, ctx)
    return tfidf_features(texts)


def _audited_classes(rows: pl.DataFrame, cfg: LabelAuditConfig) -> tuple[list[str], dict[str, int]]:
    """Classes with enough rows to learn, and the others with their counts."""
    counts = rows.filter(pl.col("label").is_not_null()).group_by("label").len().sort("label")
    if cfg.declared is not None:
        counts = counts.filter(pl.col("label").is_in(cfg.declared))
    need = max(cfg.min_class_rows, cfg.folds)
    audited = counts.filter(pl.col("len") >= need)["label"].to_list()
    skipped = {label: n for label, n in counts.filter(pl.col("len") < need).iter_rows()}
    return audited, skipped


def _learn(rows: pl.DataFrame, cfg: LabelAuditConfig, ctx: StageContext) -> tuple[pl.DataFrame, dict[str, Any]]:
    """``rows`` plus predicted, predicted_p, quality, self_conf, mislabel columns; and stats."""
    from curation.stages.label_audit.confident_learning import find_label_issues, out_of_fold_probs, predict

    blank = rows.with_columns(
        predicted=pl.lit(None, pl.String),
        predicted_p=pl.lit(None, pl.Float64),
        quality=pl.lit(None, pl.Float64),
        self_conf=pl.lit(None, pl.Float64),
        mislabel=pl.lit(False),
    )
    if cfg.features is None:
        return blank, {"ran": False, "reason": "`features` is null: confident learning is off"}
    classes, skipped = _audited_classes(rows, cfg)
    if len(classes) < 2:
        return blank, {
            "ran": False,
            "reason": f"fewer than two classes with at least {max(cfg.min_class_rows, cfg.folds)} rows",
            "classes_not_audited": skipped,
        }
    audited = rows["label"].is_in(classes).fill_null(False).to_numpy()
    y = np.searchsorted(classes, rows.filter(audited)["label"].to_numpy())
    features = _features(rows["text"].fill_null("").to_list(), cfg, ctx)
    with ctx.progress("label audit: out-of-fold models", cfg.folds) as bar:
        probs = out_of_fold_probs(features[audited], y, len(classes), folds=cfg.folds, seed=ctx.seed, on_fold=lambda: bar.advance(1))
    cl = find_label_issues(y, probs, rank_by=cfg.rank_by)
    # missing and unknown labels get a suggestion from a model fitted on all audited rows
    usable = rows["label"].is_in(cfg.declared) if cfg.declared is not None else rows["label"].is_not_null()
    guess = ~usable.fill_null(False).to_numpy()
    guessed = predict(features[audited], y, features[guess], len(classes), seed=ctx.seed) if guess.any() else np.zeros((0, len(classes)))
    return _learned_columns(rows, classes, audited, y, cl, guess, guessed), _cl_stats(cfg, classes, skipped, y, cl)


def _learned_columns(
    rows: pl.DataFrame, classes: list[str], audited: np.ndarray, y: np.ndarray, cl: Any, guess: np.ndarray, guessed: np.ndarray
) -> pl.DataFrame:
    best, best_p = np.full(rows.height, -1), np.full(rows.height, np.nan)
    best[audited], best_p[audited] = cl.probs.argmax(axis=1), cl.probs.max(axis=1)
    best[guess], best_p[guess] = guessed.argmax(axis=1), guessed.max(axis=1)
    quality, self_conf, mislabel = np.full(rows.height, np.nan), np.full(rows.height, np.nan), np.zeros(rows.height, dtype=bool)
    quality[audited], self_conf[audited], mislabel[audited] = cl.quality, cl.probs[np.arange(len(y)), y], cl.issues
    return rows.with_columns(
        predicted=pl.Series([classes[i] if i >= 0 else None for i in best.tolist()], dtype=pl.String),
        predicted_p=pl.Series(best_p).fill_nan(None),
        quality=pl.Series(quality).fill_nan(None),
        self_conf=pl.Series(self_conf).fill_nan(None),
        mislabel=pl.Series(mislabel),
    )


def _cl_stats(cfg: LabelAuditConfig, classes: list[str], skipped: dict[str, int], y: np.ndarray, cl: Any) -> dict[str, Any]:
    n = len(y)
    joint = {g: {t: round(float(cl.joint[i, j]), 2) for j, t in enumerate(classes)} for i, g in enumerate(classes)}
    return {
        "ran": True,
        "features": cfg.features,
        "classifier": "logistic_regression",
        "folds": cfg.folds,
        "rank_by": cfg.rank_by,
        "rows_audited": n,
        "classes": classes,
        "classes_not_audited": skipped,
        "oof_accuracy": round(float((cl.suggested == y).mean()), 6),
        "thresholds": {c: round(float(t), 6) for c, t in zip(classes, cl.thresholds, strict=True)},
        "confident_joint": joint,
        "estimated_noise_rate": round(float((cl.joint.sum() - np.trace(cl.joint)) / max(n, 1)), 6),
        "issues": int(cl.issues.sum()),
        "issues_by_class": {c: int(cl.issues[y == i].sum()) for i, c in enumerate(classes)},
    }


def _mislabel_findings(rows: pl.DataFrame, cfg: LabelAuditConfig) -> pl.DataFrame:
    flagged = rows.filter(pl.col("mislabel"))
    return _finding(
        flagged, "label_mislabel", given=pl.col("label"), suggested=pl.col("predicted"), score=pl.col("quality"), detail=pl.lit(cfg.rank_by)
    )


# ---- conflicts -----------------------------------------------------------------------


def _text_key() -> pl.Expr:
    return pl.col("text").fill_null("").str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()


def _exact_members(rows: pl.DataFrame) -> pl.DataFrame:
    """Members of same-text groups with more than one label: group, id, label, self_conf."""
    labelled = rows.filter(pl.col("label").is_not_null()).with_columns(key=_text_key())
    groups = labelled.filter(pl.col("label").n_unique().over("key") > 1)
    keys = groups["key"].unique().sort().to_list()
    names = {k: "text:" + hashlib.blake2b(k.encode("utf-8"), digest_size=8).hexdigest() for k in keys}
    return groups.select(
        pl.col("key").replace_strict(names, return_dtype=pl.String).alias("group"),
        "id",
        "label",
        "self_conf",
        detail=pl.lit("exact_text"),
        kept_label=pl.lit(None, pl.String),
    )


def _dedup_members(rows: pl.DataFrame, cfg: LabelAuditConfig, ctx: StageContext) -> pl.DataFrame | None:
    """Near-duplicate clusters from the dedup stage: the kept row here, the dropped ones there.

    The dropped rows keep their ids (detail ``dedup_dropped``) so that one whose label
    differs from the kept row's (``kept_label``) is a finding of its own: dedup removed
    it, but the disagreement is evidence about the kept row's label.
    """
    result = ctx.artifacts.get("dedup")
    if (
        result is None
        or not {"id", "kept_id", "cluster_id"} <= set(result.findings.columns)
        or not {"id", "label"} <= set(result.dropped.columns)
    ):
        return None
    gone = result.findings.select("id", "kept_id", group=pl.lit("dedup:") + pl.col("cluster_id").cast(pl.String)).join(
        result.dropped.select("id", "label"), on="id"
    )
    gone = gone.with_columns(_canonical(gone["label"].cast(pl.String), cfg)).filter(pl.col("label").is_not_null())
    here = rows.join(gone.select("kept_id", "group").unique(), left_on="id", right_on="kept_id").filter(pl.col("label").is_not_null())
    members = pl.concat(
        [
            here.select("group", "id", "label", "self_conf", detail=pl.lit("dedup_cluster")),
            gone.select("group", "id", "label", pl.lit(None, pl.Float64).alias("self_conf"), detail=pl.lit("dedup_dropped")),
        ]
    )
    kept_label = here.select("group", kept_label="label")
    members = members.join(kept_label, on="group", how="left", maintain_order="left")
    return members.filter(pl.col("label").n_unique().over("group") > 1)


def _resolve(members: pl.DataFrame) -> pl.DataFrame:
    """Per group: the majority label, ties broken by mean confidence, else None.

    A tie stays unresolved when either side has no confidence (rows dedup dropped have
    none): a known confidence never beats an unknown one.
    """
    votes = members.group_by("group", "label").agg(n=pl.len(), conf=pl.col("self_conf").mean())
    ranked = votes.sort(["group", "n", "conf", "label"], descending=[False, True, True, False], nulls_last=True)
    top = ranked.group_by("group", maintain_order=True).head(2).with_columns(pos=pl.int_range(pl.len()).over("group"))
    first, second = top.filter(pl.col("pos") == 0), top.filter(pl.col("pos") == 1).select("group", n2="n", conf2="conf")
    both = first.join(second, on="group", how="left")
    tie = (pl.col("n") == pl.col("n2")) & (pl.col("conf").is_null() | pl.col("conf2").is_null() | (pl.col("conf") == pl.col("conf2")))
    return both.select("group", resolved=pl.when(tie).then(None).otherwise(pl.col("label")))


def _conflict_findings(rows: pl.DataFrame, cfg: LabelAuditConfig, ctx: StageContext) -> tuple[pl.DataFrame, dict[str, Any]]:
    exact = _exact_members(rows)
    near = _dedup_members(rows, cfg, ctx)
    members = pl.concat([exact, near]) if near is not None else exact
    sizes = members.group_by("group").agg(size=pl.len())
    shares = members.group_by("group", "label").agg(share=pl.len())
    resolved = _resolve(members).join(sizes, on="group")
    rows_in = members.filter(pl.col("id").is_not_null()).join(resolved, on="group").join(shares, on=["group", "label"])
    # a row here disagrees with the group's label; a dropped row, with the row dedup kept in its place
    reference = pl.when(pl.col("detail") == "dedup_dropped").then(pl.coalesce("kept_label", "resolved")).otherwise(pl.col("resolved"))
    wrong = rows_in.filter(reference.is_null() | (reference != pl.col("label")))
    # a row in both an exact group and a dedup cluster keeps one finding: one with a suggestion if any (sorted,
    # because join order is not stable)
    wrong = wrong.sort(pl.col("id"), pl.col("resolved").is_null(), "detail", "group").unique("id", keep="first", maintain_order=True)
    same = (pl.col("detail") == "dedup_dropped") & (pl.col("resolved") == pl.col("label"))  # nothing to suggest
    findings = _finding(
        wrong,
        "label_conflict",
        given=pl.col("label"),
        suggested=pl.when(same).then(None).otherwise(pl.col("resolved")),
        score=pl.col("share") / pl.col("size"),
        detail=pl.col("detail"),
        group=pl.col("group"),
    )
    stats = {
        "exact_text_groups": exact["group"].n_unique(),
        "near_duplicate_clusters": near["group"].n_unique() if near is not None else None,
        "near_duplicates": "dedup stage findings used" if near is not None else "no dedup stage before this one: exact text only",
        "unresolved_groups": int(resolved["resolved"].null_count()),
        "dropped_rows_in_conflict": int(wrong.filter(pl.col("detail") == "dedup_dropped").height),
    }
    return findings, stats


# ---- actions -------------------------------------------------------------------------


def _with_actions(findings: pl.DataFrame, cfg: LabelAuditConfig) -> pl.DataFrame:
    actions = {issue: cfg.action(issue) for issue in ISSUES} | {"label_normalized": "relabel"}
    rank = {issue: i for i, issue in enumerate(("label_normalized", *ISSUES))}
    out = findings.with_columns(
        # a row dedup already dropped can only be reported
        action=pl.when(pl.col("detail") == "dedup_dropped")
        .then(pl.lit("flag"))
        .otherwise(pl.col("issue").replace_strict(actions, return_dtype=pl.String)),
        _rank=pl.col("issue").replace_strict(rank, return_dtype=pl.Int32),
    )
    return out.sort(["_rank", "score", "id"], nulls_last=True).drop("_rank")


def dropping(findings: pl.DataFrame) -> pl.DataFrame:
    """The rows the findings drop (``id``, ``reason``): per row the first drop action by precedence (findings come sorted)."""
    acted = findings.filter((pl.col("issue") != "label_normalized") & (pl.col("action") == "drop"))
    return acted.unique("id", keep="first", maintain_order=True).select("id", reason="issue")


def _apply(df: pl.DataFrame, labels: pl.Series | None, findings: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]:
    """Kept rows (labels canonical, relabels applied), dropped rows with reasons, relabel counts."""
    acted = findings.filter(pl.col("issue") != "label_normalized")  # findings come sorted by precedence
    drops = dropping(findings)
    relabels = acted.filter(
        (pl.col("action") == "relabel") & pl.col("suggested_label").is_not_null() & ~pl.col("id").is_in(drops["id"].implode())
    )
    relabels = relabels.unique("id", keep="first", maintain_order=True).select("id", "issue", new="suggested_label")
    out = df if labels is None else df.with_columns(labels.alias("label"))
    if labels is not None:
        out = out.join(relabels.select("id", "new"), on="id", how="left", maintain_order="left")
        out = out.with_columns(pl.coalesce("new", "label").alias("label")).drop("new")
    dropped = df.join(drops, on="id", how="inner", maintain_order="left")
    counts = dict(relabels.group_by("issue").len().sort("issue").iter_rows())
    return out.filter(~pl.col("id").is_in(drops["id"].implode())), dropped, counts


def _issue_counts(findings: pl.DataFrame) -> dict[str, int]:
    return dict(findings.group_by("issue").len().sort("issue").iter_rows())


# ---- the two audits ------------------------------------------------------------------


def _audit_classification(df: pl.DataFrame, cfg: LabelAuditConfig, ctx: StageContext) -> StageResult:
    raw = df["label"].cast(pl.String)
    rows = df.select("id", "text", raw=raw, label=_canonical(raw, cfg))
    rows, cl_stats = _learn(rows, cfg, ctx)
    conflicts, conflict_stats = _conflict_findings(rows, cfg, ctx)
    parts = [*_hygiene_findings(rows, cfg), conflicts, _mislabel_findings(rows, cfg)]
    findings = _with_actions(pl.concat(parts), cfg)
    kept, dropped, relabeled = _apply(df, rows["label"], findings)
    stats: dict[str, Any] = {
        "applies": True,
        "rows_in": df.height,
        "normalized_rows": int(findings.filter(pl.col("issue") == "label_normalized").height),
        "normalized_counts": _normalized_counts(rows),
        "issues": _issue_counts(findings.filter(pl.col("issue") != "label_normalized")),
        "actions": {issue: cfg.action(issue) for issue in LABEL_ISSUES},
        "relabeled": relabeled,
        "dropped": _issue_counts(dropped.rename({"reason": "issue"})),
        "label_counts": dict(kept.drop_nulls("label").group_by("label").len().sort("label").iter_rows()),
        "unlabelled_kept": kept["label"].null_count(),
        "confident_learning": cl_stats,
        "conflicts": conflict_stats,
    }
    if "annotator" in df.columns:
        from curation.stages.label_audit.agreement import annotator_agreement

        long = rows.select(item=_text_key(), annotator=df["annotator"].cast(pl.String), label="label")
        stats["agreement"] = annotator_agreement(long)
    return StageResult(kept=kept, dropped=dropped, findings=findings, stats=_shown_labels(stats))


def _shown_labels(stats: dict[str, Any]) -> dict[str, Any]:
    """Labels count as data: stats name them by ``curation.core.masking.mask_value`` (plain labels stay readable)."""
    stats["label_counts"] = mask_values(stats["label_counts"])
    stats["normalized_counts"] = {mask_value(k): mask_values(v) for k, v in stats["normalized_counts"].items()}
    cl = stats["confident_learning"]
    for key in ("classes_not_audited", "thresholds", "issues_by_class"):
        if isinstance(cl.get(key), dict):
            cl[key] = mask_values(cl[key])
    if isinstance(cl.get("classes"), list):
        cl["classes"] = mask_values(cl["classes"])
    if isinstance(cl.get("confident_joint"), dict):
        cl["confident_joint"] = {mask_value(k): mask_values(v) for k, v in cl["confident_joint"].items()}
    return stats


def audit_instruction(df: pl.DataFrame, cfg: LabelAuditConfig, found: pl.DataFrame) -> StageResult:
    """The instruction audit from its per-row part, ``response_findings(df, cfg.response)`` (in any row order)."""
    findings = instruction_findings(found, cfg)
    kept, dropped, _ = _apply(df, None, findings)
    return StageResult(kept=kept, dropped=dropped, findings=findings, stats=instruction_stats(df.height, findings, dropped["reason"], cfg))


def instruction_findings(found: pl.DataFrame, cfg: LabelAuditConfig) -> pl.DataFrame:
    """The instruction audit's findings (with actions, sorted by precedence) from ``response_findings`` in any row order."""
    none = pl.lit(None, pl.String)
    return _with_actions(_finding(found, pl.col("issue"), given=none, suggested=none, score=pl.col("score"), detail=pl.col("detail")), cfg)


def instruction_stats(rows_in: int, findings: pl.DataFrame, reasons: pl.Series, cfg: LabelAuditConfig) -> dict[str, Any]:
    """The instruction audit's stats: ``reasons`` is the dropped rows' ``reason`` column."""
    return {
        "applies": True,
        "rows_in": rows_in,
        "issues": _issue_counts(findings),
        "actions": {issue: cfg.action(issue) for issue in RESPONSE_ISSUES},
        "dropped": _issue_counts(pl.DataFrame({"issue": reasons})),
    }
