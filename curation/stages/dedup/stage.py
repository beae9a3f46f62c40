"""The `dedup` stage: exact and MinHash near-duplicate removal that explains itself.

1. Every row gets a key text: its dedup fields joined, then Unicode NFKC, case-folded,
   whitespace collapsed (punctuation optionally stripped).
2. Exact duplicates share a key text; each group keeps one row (the keep policy picks it).
3. Near duplicates: MinHash signatures of the survivors' shingles (vectorised, in
   ``curation.stages.dedup.minhash``), LSH bands give candidate pairs, each candidate pair is verified
   by the exact Jaccard similarity of the shingle sets (with several fields, each field
   on its own, and the smallest similarity counts), and clusters are formed without
   chaining: rows are visited in keep-priority order, an unremoved row becomes a keeper
   and removes the rows verified as duplicates *of it*. A row similar only to a removed
   row stays, so one bridging row never joins two unrelated rows, and every cluster keeps
   its keeper.
   With boilerplate discounting (the default, ``curation.stages.dedup.boilerplate``), the
   verification weighs shingles inside boilerplate blocks (text many distinct rows share)
   down, so different messages under one footer are not duplicates.
4. With ``against: RUN`` (or a list of runs) the curated datasets of earlier runs are
   prepended as rows that are always kept, so a new batch loses exactly its copies of
   what was curated before.

Findings hold one row per removed row (``id``, ``kept_id``, ``cluster_id``,
``similarity``, ``reason``, ``kept_from``, ``boilerplate_discounted``) and never any text.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import polars as pl
from pydantic import Field, field_validator, model_validator

from curation.core.errors import ConfigError
from curation.core.options import Strict
from curation.core.rundir import MANIFEST, load_dataset
from curation.core.schema import FORMS, Kind, detect_form
from curation.core.stage import StageContext, StageResult
from curation.stages.dedup import boilerplate as bp
from curation.stages.dedup import minhash as mh

KNOWN_FIELDS = sorted({c for forms in FORMS.values() for form in forms for c in form.columns})
# Default fields per form: the content that makes two rows the same example. A system prompt
# is left out (the same exchange under another system prompt is still a copy); ratings keep
# their judgment columns, so that each annotator's rating of a response stays a separate row.
DEFAULT_FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("text",),
    "messages": ("messages",),
    "prompt_completion": ("prompt", "completion"),
    "classification": ("text",),
    "pairwise": ("prompt", "response_a", "response_b", "winner", "annotator"),
    "transcripts": ("chosen", "rejected", "annotator"),
    "scores": ("prompt", "response", "score", "rank", "annotator"),
    "preference": ("prompt", "chosen", "rejected"),
}
T = TypeVar("T")
_CHUNK = 1024  # documents per hashing task: keeps the byte-level arrays in cache...
_CHUNK_BYTES = 8 << 20  # ...and fewer when the texts are long
_SHINGLE_CACHE = 1 << 30  # bytes of shingle hashes kept from the first pass for verification
_BLOCK_SAMPLE = 2_000  # rows (evenly spaced) whose boilerplate blocks the report counts
_SEP = " \x1f "  # between fields, so that moving words from one field to the next changes the key


class MinHashConfig(Strict):
    """Near-duplicate detection: shingles, MinHash and LSH parameters."""

    shingle: Literal["word", "char"] = "word"
    ngram: int = Field(2, ge=1)  # word bigrams keep 3-8% edited copies above 0.6 (docs/dedup.md)
    num_perm: int = Field(128, ge=2, le=1024)
    threshold: float = Field(0.6, gt=0, le=1)  # Jaccard similarity of the shingle sets
    bands: int | None = Field(None, ge=1)  # default: datasketch's optimum for `threshold`
    rows: int | None = Field(None, ge=1)
    verify: Literal["jaccard", "minhash"] = "jaccard"  # exact Jaccard, or the signature estimate
    seed: int = 1  # datasketch's default seed

    @model_validator(mode="after")
    def _bands_rows(self) -> MinHashConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("`bands` and `rows` go together: set both or neither")
        if self.bands is not None and self.rows is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"`bands` x `rows` must be at most `num_perm` ({self.num_perm}), got {self.bands} x {self.rows}")
        return self

    def lsh_params(self) -> tuple[int, int]:
        """(bands, rows): as given, or datasketch's ``MinHashLSH`` choice for the threshold."""
        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        from datasketch.lsh import _optimal_param

        return _optimal_param(self.threshold, self.num_perm, 0.5, 0.5)  # type: ignore[no-any-return]


class DedupConfig(Strict):
    fields: list[str] | None = None  # default: the form's content columns (DEFAULT_FIELDS)
    exact: bool = True
    near: bool = True
    strip_punctuation: bool = False  # also ignore punctuation and symbols in the key text
    keep: Literal["first", "longest", "best"] = "first"
    against: str | list[str] | None = None  # earlier runs (directories or run ids) whose datasets are kept
    minhash: MinHashConfig = Field(default_factory=MinHashConfig)  # type: ignore[arg-type]
    workers: int | None = Field(None, ge=1)  # hashing threads; default: the CPU count (at most 8)
    boilerplate: bp.BoilerplateConfig = Field(default_factory=bp.BoilerplateConfig)  # type: ignore[arg-type]
    strip_boilerplate: bool = False  # remove the frequent boilerplate blocks from the kept rows' text
    spill: bool | None = None  # band keys and candidate pairs on disk, same findings (spill.py); unset: from 1M rows on

    @model_validator(mode="after")
    def _strip_needs_words(self) -> DedupConfig:
        if self.strip_boilerplate and (self.minhash.shingle != "word" or not self.boilerplate.enabled or not self.near):
            raise ValueError("`strip_boilerplate` needs `near`, `boilerplate.enabled` and word shingles (`minhash.shingle: word`)")
        return self

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("`fields` must name at least one column (or be left out for the kind's text columns)")
            unknown = [f for f in value if f not in KNOWN_FIELDS]
            if unknown:
                raise ValueError(f"unknown field `{unknown[0]}`; expected canonical column names: {', '.join(KNOWN_FIELDS)}")
        return value


@dataclass
class _Table:
    """The rows to deduplicate in keep-priority order (earlier-run rows first)."""

    ids: np.ndarray  # ids (object array of str)
    row: np.ndarray  # input row number, -1 for rows of an `against` run
    key: pl.Series  # the dedup fields joined, not yet normalised
    parts: pl.DataFrame | None  # each field (part) on its own, when there are several
    fixed: np.ndarray  # True for rows of an `against` run: never removed
    fields: list[str]
    source: np.ndarray  # "input", or the run id of the `against` run a row comes from
    against: list[Path]


@dataclass
class _Verdicts:
    """Per table row: the row it duplicates (-1 while kept), the similarity and the reason."""

    kept_by: np.ndarray
    similarity: np.ndarray
    reason: np.ndarray
    discounted: np.ndarray  # the similarity left boilerplate shingles out

    @classmethod
    def all_kept(cls, n: int) -> _Verdicts:
        return cls(np.full(n, -1, np.int64), np.ones(n), np.full(n, "", dtype=object), np.zeros(n, bool))

    def remove(self, rows: np.ndarray, keepers: np.ndarray, similarity: np.ndarray | float, reason: str) -> None:
        self.kept_by[rows], self.similarity[rows], self.reason[rows] = keepers, similarity, reason


# ---------------------------------------------------------------------------- the stage
def dedup(df: pl.DataFrame, cfg: DedupConfig, ctx: StageContext) -> StageResult:
    """Remove exact and near duplicates; see the module docstring for the method."""
    from curation.stages.dedup import spill  # bounded memory for large inputs; it imports this module

    if spill.wanted(df, cfg):
        return spill.dedup(df, cfg, ctx)
    table = _ranked(df, cfg, ctx)
    hashed = _hash_all(table.key, cfg, ctx, cache_shingles=cfg.minhash.verify == "jaccard" and table.parts is None)
    verdicts = _Verdicts.all_kept(len(table.ids))
    survivors = _exact(hashed.keys, table.fixed, verdicts) if cfg.exact else np.arange(len(table.ids))
    near_stats = _near(table, hashed, survivors, cfg, ctx, verdicts) if cfg.near else {}
    _repoint(verdicts)
    result = _result(df, table, verdicts, cfg, near_stats)
    if hashed.boiler is not None:
        result = _with_boilerplate_blocks(result, df, table, hashed, verdicts, cfg, ctx)
    return result


def _boilerplate_on(cfg: DedupConfig) -> bool:
    """Boilerplate-aware comparison needs the shingle sets: near dedup with exact-Jaccard verification."""
    return cfg.near and cfg.boilerplate.enabled and cfg.minhash.verify == "jaccard"


def resolve_fields(cfg: DedupConfig, kind: Kind, columns: list[str]) -> list[str]:
    """The dedup fields: as configured, else the form's defaults that are present.

    Raises ConfigError naming a configured field that is not a column.
    """
    form = detect_form(kind, columns)
    if cfg.fields is None:
        return [c for c in DEFAULT_FIELDS.get(form.name, form.text_fields) if c in columns]
    missing = [f for f in cfg.fields if f not in columns]
    if missing:
        available = ", ".join(c for c in columns if c in KNOWN_FIELDS)
        raise ConfigError(f"`dedup.fields`: `{missing[0]}` is not a column of this {kind} ({form.name}) data; available: {available}")
    return list(cfg.fields)


# ---------------------------------------------------------------------------- key text
def key_columns(df: pl.DataFrame, fields: list[str]) -> pl.DataFrame:
    """The texts a row is judged on, not yet normalised (that happens in bulk, later).

    ``key``: every field joined (exact keys and MinHash). With more than one part, also
    ``part0``, ``part1``...: each field on its own (a ``messages`` field gives two parts,
    the system and user turns, and the assistant turns), compared one by one when
    verifying, so that the same prompt with a different answer is not a duplicate.
    """
    role = pl.element().struct.field("role")
    content = pl.element().struct.field("content").fill_null("")
    turn = role.fill_null("") + ": " + content
    keys, parts = [], []
    for f in fields:
        if isinstance(df.schema[f], pl.List):
            keys.append(pl.col(f).list.eval(turn).list.join("\n"))
            parts.append(pl.col(f).list.eval(pl.when(role != "assistant").then(turn)).list.drop_nulls().list.join("\n"))
            parts.append(pl.col(f).list.eval(pl.when(role == "assistant").then(content)).list.drop_nulls().list.join("\n"))
        else:
            keys.append(pl.col(f).cast(pl.String))
            parts.append(pl.col(f).cast(pl.String))
    key = keys[0].fill_null("") if len(keys) == 1 else pl.concat_str([k.fill_null("") for k in keys], separator=_SEP)
    more = {f"part{i}": p.fill_null("") for i, p in enumerate(parts)} if len(parts) > 1 else {}
    return df.select(key=key, **more)


# ---------------------------------------------------------------------------- keep order
def _ranked(df: pl.DataFrame, cfg: DedupConfig, ctx: StageContext) -> _Table:
    fields = resolve_fields(cfg, ctx.kind, df.columns)
    texts = key_columns(df, fields)
    order = _keep_order(df, texts["key"], cfg.keep, ctx)
    ids = df["id"]
    if cfg.keep != "first":
        texts, ids = texts[order], ids.gather(order)
    frames, rows = [texts.with_columns(id=ids, source=pl.lit("input"))], [order]
    against = [resolve_run(r, ctx) for r in ([cfg.against] if isinstance(cfg.against, str) else cfg.against or [])]
    for run_dir in reversed(against):
        prior = _load_against(run_dir, fields)
        frames.insert(0, key_columns(prior, fields).with_columns(id=prior["id"].cast(pl.String), source=pl.lit(run_dir.name)))
        rows.insert(0, np.full(prior.height, -1))
    table = pl.concat(frames)
    parts = table.drop("key", "id", "source") if table.width > 3 else None
    row = np.concatenate(rows)
    return _Table(table["id"].to_numpy(), row, table["key"], parts, row < 0, fields, table["source"].to_numpy(), against)


def _keep_order(df: pl.DataFrame, key: pl.Series, keep: str, ctx: StageContext) -> np.ndarray:
    """Input row numbers, best keeper first. Ties always go to the earlier row."""
    if keep == "first":
        return np.arange(df.height)
    if keep == "longest":
        frame = pl.DataFrame({"row": np.arange(df.height), "length": key.str.len_chars()})
        return frame.sort(["length", "row"], descending=[True, False])["row"].to_numpy()
    score = quality(df, ctx).with_columns(row=np.arange(df.height))
    return score.sort(["complete", "pii", "response", "row"], descending=[True, False, True, False])["row"].to_numpy()


def quality(df: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
    """The `best` keep policy's score parts per row, compared in this order.

    - ``complete``: how many of the kind's columns are filled (non-empty), more is better;
    - ``pii``: PII findings of the row when a ``pii`` stage ran earlier, fewer is better;
    - ``response``: characters of the response (completion, response, chosen, text, or the
      assistant messages), longer is better.
    """
    cols = [c for c in detect_form(ctx.kind, df.columns).columns if c in df.columns]
    filled = [_filled(df, c).fill_null(False).cast(pl.Int32) for c in cols]
    out = df.select(complete=pl.sum_horizontal(filled) if filled else pl.lit(0), response=_response_length(df), id=pl.col("id"))
    out = out.join(pii_counts(ctx), on="id", how="left", maintain_order="left")
    return out.select("complete", pl.col("pii").fill_null(0), "response")


def pii_counts(ctx: StageContext) -> pl.DataFrame:
    """``id``, ``pii``: the PII findings per row of an earlier ``pii`` stage (none without one)."""
    pii = ctx.artifacts.get("pii")
    if pii is not None and "id" in pii.findings.columns:
        return pii.findings.group_by("id").agg(pii=pl.len().cast(pl.Int64))
    return pl.DataFrame(schema={"id": pl.String, "pii": pl.Int64})


def _filled(df: pl.DataFrame, column: str) -> pl.Expr:
    if isinstance(df.schema[column], pl.List):
        return pl.col(column).list.len() > 0
    return pl.col(column).cast(pl.String).str.strip_chars().str.len_chars() > 0


def _response_length(df: pl.DataFrame) -> pl.Expr:
    for c in ("completion", "response", "chosen", "text"):
        if c in df.columns:
            return pl.col(c).cast(pl.String).fill_null("").str.len_chars()
    if "messages" in df.columns:
        content = pl.element().struct.field("content").fill_null("")
        is_assistant = pl.element().struct.field("role") == "assistant"
        return pl.col("messages").list.eval(pl.when(is_assistant).then(content.str.len_chars()).otherwise(0)).list.sum().fill_null(0)
    return pl.lit(0)


# ---------------------------------------------------------------------------- earlier run
def resolve_run(value: str, ctx: StageContext) -> Path:
    """A run directory from a path (relative to the config's folder) or a run id under the runs root."""
    path = Path(value).expanduser()
    tried = [path] if path.is_absolute() else [ctx.config_dir / path]
    if not path.is_absolute() and ctx.runs_root is not None:
        tried.append(ctx.runs_root / value)
    for candidate in tried:
        if (candidate / MANIFEST).is_file():
            return candidate
    raise ConfigError(f"`dedup.against`: no tuneprep run at {' or '.join(str(t) for t in tried)}; pass a run directory or a run id")


def _load_against(run_dir: Path, fields: list[str]) -> pl.DataFrame:
    prior = load_dataset(run_dir)
    missing = [f for f in fields if f not in prior.columns]
    if missing:
        raise ConfigError(
            f"`dedup.against`: the dataset of run `{run_dir.name}` has no column `{missing[0]}`; it must be of this input's kind"
        )
    return prior.select("id", *fields)


# ---------------------------------------------------------------------------- bulk hashing
def chunk_starts(texts: pl.Series) -> np.ndarray:
    """Chunk boundaries: at most ``_CHUNK`` texts and about ``_CHUNK_BYTES`` bytes each (at least one text)."""
    ends = np.cumsum(texts.str.len_bytes().fill_null(0).to_numpy(), dtype=np.int64)
    bounds, start = [0], 0
    while start < len(ends):
        base = ends[start - 1] if start else 0
        stop = min(start + _CHUNK, int(np.searchsorted(ends, base + _CHUNK_BYTES, side="right")))
        start = max(stop, start + 1)
        bounds.append(start)
    return np.array(bounds, np.int64)


def _map_chunks(texts: pl.Series, fn: Callable[[pl.Series], T], cfg: DedupConfig, ctx: StageContext, what: str) -> Iterator[T]:
    """``fn`` over chunks of ``texts`` in a pool of threads (numpy releases the GIL), yielded in order."""
    bounds = chunk_starts(texts)
    spans = list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))
    workers = cfg.workers or min(os.cpu_count() or 1, 8)
    run = lambda span: fn(texts.slice(span[0], span[1] - span[0]))  # noqa: E731
    with ctx.progress(f"dedup: {what}", texts.len()) as bar, ThreadPoolExecutor(workers) as pool:
        results = pool.map(run, spans) if workers > 1 and len(spans) > 1 else map(run, spans)
        for (lo, hi), result in zip(spans, results, strict=True):
            yield result
            bar.advance(hi - lo)


@dataclass
class _Hashed:
    """What one pass over the texts gives, per table row."""

    keys: np.ndarray  # (n, 2) uint64: the exact key
    sigs: np.ndarray  # (n, num_perm) uint32: MinHash hashvalues
    has_shingles: np.ndarray  # False for an empty key text
    shingles: dict[int, tuple[np.ndarray, np.ndarray]]  # chunk -> (hashes, offsets), kept within _SHINGLE_CACHE
    boiler: bp.Boilerplate | None = None  # phrase document frequencies, when boilerplate is discounted
    blocks: pl.DataFrame | None = None  # the boilerplate blocks of the candidates and the sample (``_find_blocks``)
    block_sample: np.ndarray | None = None  # the rows whose blocks the report counts
    block_rows: np.ndarray | None = None  # the rows whose blocks were looked for
    profiles: tuple[np.ndarray, list[np.ndarray], np.ndarray] | None = None  # rows (sorted), their profiles, has boilerplate


def _hash_all(texts: pl.Series, cfg: DedupConfig, ctx: StageContext, *, cache_shingles: bool) -> _Hashed:
    """One pass over every text: exact keys, MinHash signatures, and whether it has shingles.

    The shingle hashes of the first chunks are kept (up to ``_SHINGLE_CACHE`` bytes) so
    that verifying their candidate pairs needs no second tokenisation.
    """
    m = cfg.minhash
    perms = mh.permutations(m.num_perm, m.seed)
    boiler = (
        bp.Boilerplate.for_corpus(
            cfg.boilerplate,
            int(texts.str.len_bytes().sum() or 0),
            texts.len(),
            1 if cfg.strip_boilerplate else bp.WINDOW,
            # stripping needs exact block edges: every phrase is counted (the comparison still uses the sampled ones)
        )
        if _boilerplate_on(cfg)
        else None
    )

    def one(chunk: pl.Series) -> tuple[np.ndarray, ...]:
        tok = mh.tokenize(chunk, strip_punctuation=cfg.strip_punctuation)
        if not cfg.near:
            return mh.exact_keys(tok), np.zeros((chunk.len(), 0), np.uint32), np.diff(tok.word_offsets) > 0
        hashes, offsets = mh.shingle_hashes(tok, m.shingle, m.ngram)
        out = mh.exact_keys(tok), mh.signatures(hashes, offsets, perms), np.diff(offsets) > 0, hashes, offsets
        if boiler is None:
            return out
        fresh = boiler.df.claim(out[0])
        phrases, _, phrase_offsets = boiler.phrases(hashes, offsets, boiler.counted)
        return *out, *boiler.df.chunk_counts(phrases, phrase_offsets, fresh), np.array(fresh.size)

    keys, sigs, has_shingles, cache, cached_bytes = [], [], [], {}, 0
    for i, part in enumerate(_map_chunks(texts, one, cfg, ctx, "hashing")):
        keys.append(part[0])
        sigs.append(part[1])
        has_shingles.append(part[2])
        if len(part) > 3 and cache_shingles and cached_bytes + part[3].nbytes <= _SHINGLE_CACHE:
            cache[i], cached_bytes = (part[3], part[4]), cached_bytes + part[3].nbytes
        if boiler is not None:
            boiler.df.add(part[5], part[6], int(part[7]))
    if boiler is not None:
        boiler.finish()
    if not keys:
        return _Hashed(np.zeros((0, 2), np.uint64), np.zeros((0, m.num_perm if cfg.near else 0), np.uint32), np.zeros(0, bool), {}, boiler)
    return _Hashed(np.concatenate(keys), np.concatenate(sigs), np.concatenate(has_shingles), cache, boiler)


# ---------------------------------------------------------------------------- exact
def _exact(keys: np.ndarray, fixed: np.ndarray, verdicts: _Verdicts) -> np.ndarray:
    """Mark exact duplicates of each group's first row; return the rows left for near dedup."""
    frame = pl.DataFrame({"h1": keys[:, 0], "h2": keys[:, 1], "rank": np.arange(len(keys))})
    first = frame.select(pl.col("rank").min().over("h1", "h2")).to_series().to_numpy()
    dup = np.flatnonzero((first != np.arange(len(first))) & ~fixed)
    verdicts.remove(dup, first[dup], 1.0, "exact_duplicate")
    return np.flatnonzero(first == np.arange(len(first)))


# ---------------------------------------------------------------------------- near
def _near(table: _Table, hashed: _Hashed, nodes: np.ndarray, cfg: DedupConfig, ctx: StageContext, verdicts: _Verdicts) -> dict[str, Any]:
    """Near duplicates among ``nodes`` (table rows left after exact dedup, in rank order)."""
    m = cfg.minhash
    bands, rows = m.lsh_params()
    sigs, has_shingles, fixed = hashed.sigs[nodes], hashed.has_shingles[nodes], table.fixed[nodes]
    live = np.flatnonzero(has_shingles)  # an empty text has no shingles and matches nothing
    pairs = live[mh.candidate_pairs(mh.band_keys(sigs[live], bands, rows))]
    pairs = pairs[~(fixed[pairs[:, 0]] & fixed[pairs[:, 1]])]
    discounted, whole = np.zeros(len(pairs), bool), np.zeros(len(pairs))
    if hashed.boiler is not None:  # the blocks of the candidates, and of a sample of rows for the report
        hashed.block_sample = nodes[live][:: max(1, -(-live.size // _BLOCK_SAMPLE))]
        hashed.block_rows = np.union1d(nodes[pairs.ravel()], hashed.block_sample)
        candidates = np.unique(nodes[pairs]) if m.verify == "jaccard" and table.parts is None else None  # profiled meanwhile
        hashed.blocks = _find_blocks(table, hashed, hashed.block_rows, cfg, ctx, profile=candidates)
    if m.verify == "jaccard":
        scores, discounted, whole = _verify_jaccard(table, hashed, nodes[pairs], cfg, ctx)
    else:
        scores = (sigs[pairs[:, 0]] == sigs[pairs[:, 1]]).mean(axis=1) if len(pairs) else np.zeros(0)
    ok = scores >= m.threshold
    keeper, similarity = star_clusters(len(nodes), pairs[ok, 0], pairs[ok, 1], scores[ok], fixed)
    removed = np.flatnonzero(keeper >= 0)
    verdicts.remove(nodes[removed], nodes[keeper[removed]], similarity[removed], "near_duplicate")
    counts: dict[str, Any] = {
        "candidate_pairs": len(pairs),
        "verified_pairs": int(ok.sum()),
        "rows_without_shingles": int((~has_shingles).sum()),
    }
    if hashed.boiler is not None:
        verdicts.discounted[nodes[removed]] = _edge_flags(len(nodes), pairs[ok], discounted[ok], keeper[removed], removed)
        counts["boilerplate"] = {
            "pairs_discounted": int(discounted.sum()),  # compared without their boilerplate shingles
            "pairs_kept_apart": int((discounted & (whole >= m.threshold) & ~ok).sum()),  # duplicates only through boilerplate
            "removed_with_discount": int(verdicts.discounted[nodes[removed]].sum()),
        }
    return {"bands": bands, "rows": rows, **counts}


def _edge_flags(n: int, edges: np.ndarray, flags: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``flags`` of the edges ``src -> dst`` (each one of ``edges``)."""
    codes = edges[:, 0] * n + edges[:, 1]
    order = np.argsort(codes)
    return flags[order[np.searchsorted(codes[order], src * n + dst)]] if len(dst) else np.zeros(0, bool)


def _verify_jaccard(
    table: _Table,
    hashed: _Hashed,
    pairs: np.ndarray,
    cfg: DedupConfig,
    ctx: StageContext,
    part_blocks: list[pl.DataFrame | None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact Jaccard similarity of the shingle sets of each candidate pair of table rows.

    With several parts (fields), the smallest of the per-part similarities. With
    boilerplate discounting, on the shingles outside boilerplate blocks (``boilerplate.compare``).
    ``part_blocks``: each part's blocks, when found beforehand (the spill path).
    Returns the similarities, whether boilerplate was left out, and the similarities of the whole texts.
    """
    scores, discounted, whole = np.ones(len(pairs)), np.zeros(len(pairs), bool), np.ones(len(pairs))
    if not len(pairs):
        return scores, discounted, whole
    rows = np.unique(pairs)
    local = np.searchsorted(rows, pairs)
    parts = [table.key] if table.parts is None else [table.parts[name] for name in table.parts.columns]
    for i, texts in enumerate(parts):
        blocks = hashed.blocks if table.parts is None else None  # blocks of the joined key: for each part found anew
        blocks = part_blocks[i] if part_blocks is not None else blocks
        blocked: np.ndarray | None
        if hashed.profiles is not None and table.parts is None and np.array_equal(hashed.profiles[0], rows):
            full, blocked = hashed.profiles[1], hashed.profiles[2]  # built with the blocks
        else:
            full, blocked = _shingle_sets(texts, rows, hashed.shingles if table.parts is None else {}, cfg, ctx, hashed.boiler, blocks)
        if blocked is None:
            np.minimum(scores, [mh.jaccard(full[u], full[v]) for u, v in local.tolist()], out=scores)
            continue
        weighted, discount, plain = bp.pair_similarities(full, blocked, local, cfg.boilerplate.weight)
        np.minimum(scores, weighted, out=scores)
        discounted |= discount
        np.minimum(whole, plain, out=whole)
    return scores, discounted, (whole if hashed.boiler is not None else scores)


def _shingle_sets(
    texts: pl.Series,
    rows: np.ndarray,
    cache: dict[int, tuple[np.ndarray, np.ndarray]],
    cfg: DedupConfig,
    ctx: StageContext,
    boiler: bp.Boilerplate | None = None,
    blocks: pl.DataFrame | None = None,
) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Sorted distinct shingle hashes of ``texts[rows]``; with ``boiler`` their profiles (``boilerplate.flagged``)
    and which have boilerplate (``blocks`` when they are known, else found)."""
    empty = np.zeros(0, np.uint64)
    full: list[np.ndarray] = [empty] * len(rows)
    blocked = None if boiler is None else np.zeros(len(rows), bool)
    for at, hashes, offsets in _sequences(texts, rows, cache, cfg, ctx, "verifying"):
        if boiler is None:
            values, set_offsets = mh.shingle_sets(hashes, offsets)
            found = np.split(values, set_offsets[1:-1])
        else:
            found, has = boiler.profiles(hashes, offsets, None if blocks is None else bp.blocks_of(blocks, rows[at]))
            blocked[at] = has  # type: ignore[index]
        for k, i in enumerate(at.tolist()):
            full[i] = found[k]
    return full, blocked


def _sequences(
    texts: pl.Series, rows: np.ndarray, cache: dict[int, tuple[np.ndarray, np.ndarray]], cfg: DedupConfig, ctx: StageContext, what: str
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The shingle hashes of ``texts[rows]`` in text order, in batches: (positions in ``rows``, hashes, offsets).

    From the first pass's cache where it has them, else hashed again.
    """
    bounds = chunk_starts(texts)
    chunk = np.searchsorted(bounds, rows, side="right") - 1
    cached = np.array([c in cache for c in chunk.tolist()], bool)
    hit = np.flatnonzero(cached)
    for lo in range(0, len(hit), _CHUNK):
        at, pieces = hit[lo : lo + _CHUNK], []
        for i in at.tolist():
            hashes, offsets = cache[int(chunk[i])]
            k = int(rows[i] - bounds[chunk[i]])
            pieces.append(hashes[offsets[k] : offsets[k + 1]])
        yield at, np.concatenate(pieces), np.r_[0, np.cumsum([len(p) for p in pieces])]
    rest, done = np.flatnonzero(~cached), 0
    for hashes, offsets in _map_chunks(texts.gather(rows[rest]), lambda part: _hashes_of(part, cfg), cfg, ctx, what):
        n = len(offsets) - 1
        yield rest[done : done + n], hashes, offsets
        done += n


def _find_blocks(
    table: _Table,
    hashed: _Hashed,
    rows: np.ndarray,
    cfg: DedupConfig,
    ctx: StageContext,
    boiler: bp.Boilerplate | None = None,
    profile: np.ndarray | None = None,
) -> pl.DataFrame:
    """The boilerplate blocks of the table rows ``rows``: ``row``, ``start``, ``end`` (shingle positions), ``key``; by row.

    ``boiler``: how to find them, by default ``hashed.boiler``. ``profile``: rows (sorted, some of ``rows``) whose
    profiles (``Boilerplate.profiles``) are built from the same shingles, into ``hashed.profiles``."""
    boiler = boiler or hashed.boiler
    assert boiler is not None
    wanted = None if profile is None else np.isin(rows, profile)

    def one(batch: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[pl.DataFrame, Any]:
        found = boiler.blocks(batch[1], batch[2])
        frame = pl.DataFrame({"row": rows[batch[0]][found[0]], "start": found[1], "end": found[2], "key": found[3]})
        if wanted is None:
            return frame, None
        pick = np.flatnonzero(wanted[batch[0]])
        return frame, (rows[batch[0][pick]], *boiler.profiles_of(batch[1], batch[2], found[:3], pick))

    schema = {"row": pl.Int64, "start": pl.Int64, "end": pl.Int64, "key": pl.UInt64}
    if not boiler.any_common:  # no phrase reaches the threshold: no text has a block, nothing to hash again
        return pl.DataFrame(schema=schema)
    batches = _sequences(table.key, rows, hashed.shingles, cfg, ctx, "boilerplate")
    with ThreadPoolExecutor(cfg.workers or min(os.cpu_count() or 1, 8)) as pool:
        done = list(pool.map(one, batches))
    if profile is not None:
        got = np.concatenate([d[1][0] for d in done]) if done else np.zeros(0, np.int64)
        order = np.argsort(got)
        sets = [s for d in done for s in d[1][1]]
        hashed.profiles = (
            got[order],
            [sets[i] for i in order.tolist()],
            np.concatenate([d[1][2] for d in done] or [np.zeros(0, bool)])[order],
        )
    frames = [d[0] for d in done]
    return pl.concat([pl.DataFrame(schema=schema), *(f.cast(schema) for f in frames)]).sort("row", "start")  # type: ignore[arg-type]


def _hashes_of(chunk: pl.Series, cfg: DedupConfig) -> tuple[np.ndarray, np.ndarray]:
    tok = mh.tokenize(chunk, strip_punctuation=cfg.strip_punctuation)
    return mh.shingle_hashes(tok, cfg.minhash.shingle, cfg.minhash.ngram)


def star_clusters(n: int, src: np.ndarray, dst: np.ndarray, score: np.ndarray, fixed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keepers and their duplicates from verified edges ``src -> dst`` (``src`` ranks first).

    The result equals visiting rows in rank order, where an unremoved row becomes a keeper
    and removes its unremoved verified neighbours ranked after it (``fixed`` rows are
    always keepers). It is computed in rounds over all edges at once: a row is removed as
    soon as an earlier neighbour is a keeper, and becomes a keeper once every earlier
    neighbour is removed. Removed rows remove nothing: no chaining.

    Returns, per row, the keeper it duplicates (-1 if kept) and the similarity to it.
    """
    state = np.where(fixed, 1, 0).astype(np.int8)  # 0 undecided, 1 keeper, 2 removed
    involved = np.zeros(n, bool)
    involved[src], involved[dst] = True, True
    state[~involved & (state == 0)] = 1
    while (state == 0).any():
        near_keeper = np.zeros(n, bool)
        near_keeper[dst[state[src] == 1]] = True
        state[(state == 0) & near_keeper] = 2
        waiting = np.zeros(n, bool)
        waiting[dst[state[src] == 0]] = True
        state[(state == 0) & ~waiting] = 1
    keeper, similarity = np.full(n, -1, np.int64), np.ones(n)
    edge = np.flatnonzero((state[src] == 1) & (state[dst] == 2))
    edge = edge[np.lexsort((src[edge], dst[edge]))]  # by removed row, then earliest keeper
    first = edge[np.r_[True, dst[edge][1:] != dst[edge][:-1]]] if len(edge) else edge
    keeper[dst[first]], similarity[dst[first]] = src[first], score[first]
    return keeper, similarity


def _repoint(verdicts: _Verdicts) -> None:
    """An exact copy of a row that near dedup removed now points at that row's keeper.

    Its similarity to the new keeper equals the removed row's (same key text), and its
    reason becomes ``near_duplicate``: findings always describe the relation to a kept row.
    """
    kept_by = verdicts.kept_by
    moved = np.flatnonzero((kept_by >= 0) & (verdicts.reason == "exact_duplicate"))
    moved = moved[kept_by[kept_by[moved]] >= 0]
    via = kept_by[moved]
    verdicts.remove(moved, kept_by[via], verdicts.similarity[via], "near_duplicate")
    verdicts.discounted[moved] = verdicts.discounted[via]


# ---------------------------------------------------------------------------- result
def _result(df: pl.DataFrame, table: _Table, verdicts: _Verdicts, cfg: DedupConfig, near_stats: dict[str, Any]) -> StageResult:
    removed = np.flatnonzero(verdicts.kept_by >= 0)
    removed = removed[np.argsort(table.row[removed], kind="stable")]  # input order
    keepers = verdicts.kept_by[removed]
    reasons = verdicts.reason[removed].astype(str)
    findings = pl.DataFrame(
        {
            "id": table.ids[removed].astype(str),
            "kept_id": table.ids[keepers].astype(str),
            "cluster_id": np.unique(keepers, return_inverse=True)[1].astype(np.int64),  # numbered in keeper rank order
            "similarity": verdicts.similarity[removed],
            "reason": reasons,
            "kept_from": table.source[keepers].astype(str),
            "boilerplate_discounted": verdicts.discounted[removed],
        },
        schema=FINDINGS_SCHEMA,
    )
    mask = np.ones(df.height, bool)
    mask[table.row[removed]] = False
    # the removed rows in input order: a filter shares the texts, a gather would copy them
    dropped = df.filter(pl.Series(~mask)).with_columns(reason=pl.Series(reasons, dtype=pl.String))
    return StageResult(kept=df.filter(pl.Series(mask)), dropped=dropped, findings=findings, stats=_stats(findings, table, cfg, near_stats))


FINDINGS_SCHEMA = {
    "id": pl.String,
    "kept_id": pl.String,
    "cluster_id": pl.Int64,
    "similarity": pl.Float64,
    "reason": pl.String,
    "kept_from": pl.String,
    "boilerplate_discounted": pl.Boolean,  # the similarity was computed without the shared boilerplate
}


def _stats(findings: pl.DataFrame, table: _Table, cfg: DedupConfig, near_stats: dict[str, Any]) -> dict[str, Any]:
    sizes = findings.group_by("cluster_id").len()["len"] + 1  # removed rows plus their keeper
    by_reason = dict(findings.group_by("reason").len().rows())
    out: dict[str, Any] = {
        "fields": table.fields,
        "keep": cfg.keep,
        "removed": findings.height,
        "exact_duplicates": int(by_reason.get("exact_duplicate", 0)),
        "near_duplicates": int(by_reason.get("near_duplicate", 0)),
        "clusters": len(sizes),
        "cluster_sizes": {str(k): int(v) for k, v in sorted(sizes.value_counts().rows())},
        "largest_cluster": int(sizes.max()) if len(sizes) else 0,  # type: ignore[arg-type]
        "against": None,
    }
    if table.against:
        copies = int((findings["kept_from"] != "input").sum())
        runs = ", ".join(p.name for p in table.against)
        out["against"] = {
            "runs": runs,
            "paths": [str(p) for p in table.against],
            "rows": int(table.fixed.sum()),
            "removed_as_copies": copies,
        }
    if cfg.near:
        m = cfg.minhash
        out["minhash"] = {
            "shingle": m.shingle,
            "ngram": m.ngram,
            "num_perm": m.num_perm,
            "threshold": m.threshold,
            "verify": m.verify,
            "seed": m.seed,
            **{k: v for k, v in near_stats.items() if k != "boilerplate"},
        }
        b = cfg.boilerplate
        out["boilerplate"] = {"enabled": _boilerplate_on(cfg)}
        if _boilerplate_on(cfg):
            out["boilerplate"] |= {"min_docs": b.min_docs, "min_share": b.min_share, "phrase": b.phrase, "min_block": b.min_block}
            out["boilerplate"] |= {"max_gap": b.max_gap, "weight": b.weight, **near_stats.get("boilerplate", {})}
    return out


# ---------------------------------------------------------------------------- boilerplate blocks of the kept rows
def _with_boilerplate_blocks(
    result: StageResult, df: pl.DataFrame, table: _Table, hashed: _Hashed, verdicts: _Verdicts, cfg: DedupConfig, ctx: StageContext
) -> StageResult:
    """The frequent boilerplate blocks of the kept rows in ``stats["boilerplate"]`` (counts, masked examples);
    with ``strip_boilerplate`` also removed from the kept rows' text."""
    boiler, blocks = hashed.boiler, hashed.blocks
    assert boiler is not None and blocks is not None and hashed.block_sample is not None and hashed.block_rows is not None
    kept = np.flatnonzero((verdicts.kept_by < 0) & ~table.fixed)
    sample = np.intersect1d(hashed.block_sample, kept)
    in_sample = blocks.filter(pl.col("row").is_in(pl.Series(sample).implode()))
    frequent = bp.frequent_blocks(in_sample, max(2, math.ceil(boiler.min_df * sample.size / max(kept.size, 1))))
    found = in_sample.filter(pl.col("key").is_in(frequent["key"].implode()))
    stats = dict(result.stats)
    stats["boilerplate"] = {
        **stats["boilerplate"],
        "min_df": boiler.min_df,
        "distinct_texts": boiler.df.documents,
        "rows_examined": int(sample.size),  # kept rows whose blocks were counted (all, or an even sample)
        "rows_with_blocks": found["row"].n_unique(),
        "blocks": bp.block_examples(frequent.head(cfg.boilerplate.top), in_sample, sample.size, table.key, **_word_options(cfg)),
        "examples_masked_by": "regex",
    }
    if not cfg.strip_boilerplate:
        return replace(result, stats=stats)
    if len(table.fields) != 1 or df.schema[table.fields[0]] != pl.String:
        raise ConfigError(f"`dedup.strip_boilerplate` needs one text field to strip; the dedup fields are {', '.join(table.fields)}")
    exact = copy.copy(boiler)
    exact.window = 1  # every phrase was counted: exact block edges
    every = _find_blocks(table, hashed, kept[hashed.has_shingles[kept]], cfg, ctx, exact)
    frequent_all = bp.frequent_blocks(every, boiler.min_df)
    found_all = every.filter(pl.col("key").is_in(frequent_all["key"].implode()))
    at = np.searchsorted(np.sort(table.row[kept]), table.row[found_all["row"].to_numpy()])  # the rows' places in `kept`
    kept_frame, stripped, skipped = bp.strip_column(result.kept, table.fields[0], found_all.with_columns(row=at), **_word_options(cfg))
    stats["boilerplate"] |= {"stripped_rows": stripped, "strip_skipped_rows": skipped}
    return replace(result, kept=kept_frame, stats=stats)


def _word_options(cfg: DedupConfig) -> dict[str, Any]:
    """How block positions map to words: word shingles of ``ngram`` words (None: character shingles, no words)."""
    return {"ngram": cfg.minhash.ngram if cfg.minhash.shingle == "word" else None, "strip_punctuation": cfg.strip_punctuation}
