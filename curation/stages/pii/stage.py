"""The `pii` stage: find personal data with Presidio and scrub it, without leaking it.

Every free-text field of the record kind (each message's content for chat data) is
analysed by a Presidio ``AnalyzerEngine`` on the embedded spaCy model, built once per
run; found spans are replaced through presidio-anonymizer operators (``<ENTITY>`` by
default). The scrubbed text is analysed again and what is still found is counted as
residual PII for the checks gate. Rows can instead be dropped for given entity types
or too many findings. Findings hold offsets, entity types and a masked shape only,
never the value. Presidio is imported inside functions: this module is cheap to import.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from curation.core.errors import ConfigError
from curation.core.masking import mask_values, shape
from curation.core.schema import Kind, detect_form, text_fields
from curation.core.stage import StageContext, StageResult, with_reason
from curation.stages.pii.options import (  # noqa: F401  (re-exported: the options live beside the engine)
    DEFAULT_ENTITIES,
    DEFAULT_LABELS_TO_IGNORE,
    DEFAULT_MODEL,
    DEFAULT_PERSON_COLUMNS,
    DEFAULT_PHONE_REGIONS,
    KNOWN_ENTITIES,
    MIN_SALT_BYTES,
    SALT_ENV,
    DropPolicy,
    Operator,
    PiiConfig,
    RegexRecognizer,
    SaltSource,
)

if TYPE_CHECKING:
    from curation.stages.pii.engine import PiiEngine, TextResult

# -- the stage -----------------------------------------------------------------


def pii(df: pl.DataFrame, cfg: PiiConfig, ctx: StageContext) -> StageResult:
    """Find and scrub PII in every scanned field; drop rows per ``cfg.drop``; count residuals.

    Raises:
        ConfigError: the spaCy model is not installed, an entity has no recognizer, or
            the ``hash`` operator has no salt (or one under 16 bytes).
    """
    fields = scanned_fields(cfg, ctx.kind, df.schema)
    cells = _cells(df, fields)
    unique = list(dict.fromkeys(text for _, _, text in cells if text))
    engine = _engine(cfg, ctx)
    with ctx.progress("pii: scanning", len(unique)) as bar:
        results = dict(zip(unique, engine.run(unique, advance=bar.advance), strict=True))
    from curation.stages.pii.rows import numbered_people, row_context

    in_rows = row_context(cells, results, engine)  # names a row's other fields reveal
    in_rows |= numbered_people(cells, results, in_rows, cfg.person_columns)  # annotators stay distinct
    scrubbed = _rebuild(df, fields, results, in_rows)
    findings = _findings(df["id"], cells, results, in_rows)
    reasons = _drop_reasons(df["id"], findings, cfg)
    drop = pl.Series([r is not None for r in reasons], dtype=pl.Boolean)
    kept = scrubbed.filter(~drop)
    dropped = with_reason(scrubbed.filter(drop), pl.lit(pl.Series([r for r in reasons if r is not None], dtype=pl.String)))
    stats = _stats(cfg, fields, cells, unique, findings, kept["id"])
    return StageResult(kept=kept, dropped=dropped, findings=findings, stats=stats)


def scanned_fields(cfg: PiiConfig, kind: Kind, schema: pl.Schema) -> list[str]:
    """The columns to scan: the kind's free text (``cfg.fields[kind]`` or all), then metadata.

    Metadata is every string column outside the kind's contract plus ``annotator``
    (``id``, labels, roles and winners are never rewritten).
    """
    columns = list(schema)
    present = text_fields(kind, columns)
    chosen = cfg.fields.get(kind)
    fields = present if chosen is None else [f for f in present if f in chosen]
    if cfg.scan_metadata:
        contract = set(detect_form(kind, columns).columns) - {"annotator"}
        fields += [c for c in columns if c not in contract and c != "id" and c not in fields and schema[c] == pl.String]
    return fields


def _cells(df: pl.DataFrame, fields: list[str]) -> list[tuple[int, str, str]]:
    """Every scanned text as (row index, field label, text); a message is ``messages[j].content``."""
    cells: list[tuple[int, str, str]] = []
    for f in fields:
        if f == "messages":
            for i, msgs in enumerate(df[f].to_list()):
                cells += [(i, f"messages[{j}].content", m["content"]) for j, m in enumerate(msgs or []) if m and m.get("content")]
        else:
            cells += [(i, f, t) for i, t in enumerate(df[f].to_list()) if t]
    return sorted(cells, key=lambda c: c[0])  # row order, fields in scan order within a row


def _rebuild(
    df: pl.DataFrame, fields: list[str], results: dict[str, TextResult], in_rows: dict[tuple[int, str], TextResult]
) -> pl.DataFrame:
    def clean(t: str | None, i: int, label: str) -> str | None:
        return (in_rows.get((i, label)) or results[t]).scrubbed if t else t

    cols = []
    for f in fields:
        if f == "messages":
            chats = [
                [{**m, "content": clean(m["content"], i, f"messages[{j}].content")} if m else m for j, m in enumerate(msgs)]
                if msgs is not None
                else None
                for i, msgs in enumerate(df[f].to_list())
            ]
            cols.append(pl.Series(f, chats, dtype=df.schema[f]))
        else:
            cols.append(pl.Series(f, [clean(t, i, f) for i, t in enumerate(df[f].to_list())], dtype=df.schema[f]))
    return df.with_columns(cols) if cols else df


FINDINGS_SCHEMA = {
    "id": pl.String,
    "field": pl.String,
    "entity_type": pl.String,
    "start": pl.Int64,
    "end": pl.Int64,
    "score": pl.Float64,
    "recognizer": pl.String,
    "operator": pl.String,
    "masked": pl.String,
    "residual": pl.Boolean,
}


def _findings(
    ids: pl.Series, cells: list[tuple[int, str, str]], results: dict[str, TextResult], in_rows: dict[tuple[int, str], TextResult]
) -> pl.DataFrame:
    """One row per span; residual rows have offsets into the scrubbed text and no operator."""
    id_list = ids.to_list()
    rows: list[tuple[Any, ...]] = []
    for i, field, text in cells:
        res = in_rows.get((i, field)) or results[text]
        rows += [
            (id_list[i], field, s.entity, s.start, s.end, s.score, s.recognizer, op, mask_value(text[s.start : s.end], s.entity), False)
            for s, op in zip(res.spans, res.operators, strict=True)
        ]
        rows += [
            (
                id_list[i],
                field,
                s.entity,
                s.start,
                s.end,
                s.score,
                s.recognizer,
                None,
                mask_value(res.scrubbed[s.start : s.end], s.entity),
                True,
            )
            for s in res.residual
        ]
    return pl.DataFrame(rows, schema=FINDINGS_SCHEMA, orient="row")


def _drop_reasons(ids: pl.Series, findings: pl.DataFrame, cfg: PiiConfig) -> list[str | None]:
    """``pii_<entity>`` for the first of ``drop.entities`` a row holds, else ``pii_max_findings``."""
    if not cfg.drop.entities and cfg.drop.max_findings is None:
        return [None] * len(ids)
    by_row: dict[str, list[str]] = {}
    for rid, entity in findings.filter(~pl.col("residual")).select("id", "entity_type").iter_rows():
        by_row.setdefault(rid, []).append(entity)
    reasons: list[str | None] = []
    for rid in ids.to_list():
        found = by_row.get(rid, [])
        hit = next((e for e in cfg.drop.entities if e in found), None)
        too_many = cfg.drop.max_findings is not None and len(found) > cfg.drop.max_findings
        reasons.append(f"pii_{hit.lower()}" if hit else "pii_max_findings" if too_many else None)
    return reasons


def _stats(
    cfg: PiiConfig, fields: list[str], cells: list[tuple[int, str, str]], unique: list[str], findings: pl.DataFrame, kept_ids: pl.Series
) -> dict[str, Any]:
    found = findings.filter(~pl.col("residual"))
    residual = findings.filter(pl.col("residual") & pl.col("id").is_in(kept_ids.implode()))

    def count(frame: pl.DataFrame, col: str) -> dict[str, int]:
        return {k: int(v) for k, v in sorted(Counter(frame[col].to_list()).items())}

    samples: dict[str, list[str]] = {}
    for entity, masked in found.select("entity_type", "masked").iter_rows():
        if masked not in samples.setdefault(entity, []) and len(samples[entity]) < 3:
            samples[entity].append(masked)
    return {
        "model": cfg.model,
        "entities": cfg.all_entities(),
        "fields": mask_values(fields),  # field names count as data: a column may be named after a person
        "texts_scanned": len(cells),
        "unique_texts": len(unique),
        "rows_with_pii": found["id"].n_unique(),
        "found_total": found.height,
        "found_by_entity": count(found, "entity_type"),
        "found_by_field": mask_values(count(found.with_columns(pl.col("field").str.replace(r"\[\d+\]", "[]")), "field")),
        "operator_by_entity": {e: cfg.operator_for(e) for e in cfg.all_entities()},
        "residual_total": residual.height,
        "residual_by_entity": count(residual, "entity_type"),
        "rows_with_residual": residual["id"].n_unique(),
        "residual_scan": RESIDUAL_SCAN,
        "samples_by_entity": dict(sorted(samples.items())),
    }


# What the residual count can and cannot say: it is the same detector run again.
RESIDUAL_SCAN = {
    "detector": "same",
    "independent": False,
    "note": "the residual scan re-runs this stage's analyzer on the scrubbed text: it catches what scrubbing uncovered "
    "or created, never what the analyzer itself misses, so residual_total 0 is no measure of recall (see eval_pii)",
}


def mask_value(value: str, entity_type: str) -> str:
    """A detected span's shape for findings and samples: ``curation.core.masking.shape``."""
    return shape(value, entity_type)


def scrub_texts(texts: list[str], cfg: PiiConfig, ctx: StageContext) -> list[str]:
    """Scrub arbitrary texts (report samples, exports) with the stage's rules and engine."""
    unique = list(dict.fromkeys(t for t in texts if t))
    results = dict(zip(unique, _engine(cfg, ctx).run(unique), strict=True))
    return [results[t].scrubbed if t else t for t in texts]


def load_salt(cfg: PiiConfig, config_dir: Path) -> bytes:
    """The hash salt from ``cfg.salt.file`` or the ``cfg.salt.env`` variable; never logged.

    Raises:
        ConfigError: no salt, or one shorter than 16 bytes.
    """
    if cfg.salt.file:
        path = Path(cfg.salt.file).expanduser()
        path = path if path.is_absolute() else config_dir / path
        if not path.is_file():
            raise ConfigError(f"`pii.salt.file`: `{path}` does not exist; write a salt of at least {MIN_SALT_BYTES} bytes there")
        salt, source = path.read_bytes().strip(), f"file `{path}`"
    else:
        value = os.environ.get(cfg.salt.env)
        if not value:
            msg = f"`pii.operator` `hash` needs a salt: set the environment variable `{cfg.salt.env}` or `pii.salt.file` (never the salt itself in the config)"
            raise ConfigError(msg)
        salt, source = value.encode("utf-8"), f"environment variable `{cfg.salt.env}`"
    if len(salt) < MIN_SALT_BYTES:
        raise ConfigError(
            f"`pii.salt`: the salt in {source} is {len(salt)} bytes; use at least {MIN_SALT_BYTES}, e.g. `openssl rand -hex 16`"
        )
    return salt


def salt_identity(cfg: PiiConfig, ctx: StageContext) -> dict[str, str]:
    """A one-way digest of the hash salt, for the runner's resume check ({} when nothing is hashed).

    Another salt gives other surrogates, so a rerun with a new salt must not reuse the
    stage's output. The digest is domain-separated from the surrogates (a salted hash of
    a fixed label) and only ever enters the hashed input fingerprint.
    """
    if not _uses_hash(cfg):
        return {}
    return {"salt": hashlib.sha256(b"tuneprep resume check\0" + load_salt(cfg, ctx.config_dir)).hexdigest()}


def _uses_hash(cfg: PiiConfig) -> bool:
    return "hash" in {cfg.operator_for(e) for e in cfg.all_entities()} | {cfg.operator}


def _engine(cfg: PiiConfig, ctx: StageContext) -> PiiEngine:
    """The stage's engine: spaCy and the analyzer come from ``ctx.engine`` (built once per run)."""
    from curation.stages.pii import engine as pe

    pe.offline_presidio()
    labels = pe.effective_labels_to_ignore(cfg)
    nlp = ctx.engine(f"presidio-nlp:{cfg.model}:{','.join(labels)}", lambda: pe.build_nlp_engine(cfg.model, labels))
    detection = cfg.model_dump(mode="json", exclude={"operator", "operators", "salt", "drop", "residual_rounds", "workers"})
    key = f"presidio:{cfg.model}:{hashlib.sha256(json.dumps(detection, sort_keys=True).encode()).hexdigest()[:16]}"
    analyzer = ctx.engine(key, lambda: pe.build_analyzer(cfg, nlp))
    salt = load_salt(cfg, ctx.config_dir) if _uses_hash(cfg) else None
    return pe.PiiEngine(cfg, analyzer, pe.build_operators(cfg, salt))
