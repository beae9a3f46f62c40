"""How much a stage rewrote the text it kept: rows, characters, and the values it replaced.

``measure(before, after, kind)`` joins a stage's input frame and its kept frame on ``id``
and compares the kind's free-text columns (message contents joined for the ``messages``
form). Counting the rewritten rows is polars; only the changed rows go through Python,
where a token diff (``difflib`` opcodes on word, space and punctuation tokens, after the
common prefix and suffix are cut off) names what was replaced by what.

Nothing raw leaves this module: the "before" side of a replacement can be real personal
data, so it is shown only by its shape (``mask_shape``: ``Jane Doe`` -> ``Jxxx Dxx``,
``415-555-0199`` -> ``###-###-####``); the "after" side keeps placeholders such as
``<PERSON>`` and is masked the same way otherwise. The runner stores the result under
``stats["fidelity"]`` of every stage; the gate's ``fidelity`` check and the report read it.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import Counter
from itertools import accumulate
from typing import Any

import polars as pl

from curation.core.masking import mask_shape
from curation.core.schema import Kind, text_fields

MAX_DIFF_ROWS = 10_000  # changed rows diffed token by token; beyond, a fixed sample by id hash
MAX_SPAN_CHARS = 4_000  # per side of the changed middle of a text; the rest counts as changed, undiffed
MAX_VALUE_CHARS = 40  # a replaced value is cut to this before it is masked, counted or shown
TOP_VALUES = 10
EXAMPLES = 3
CONTEXT_CHARS = 24  # characters of context either side of an example's change

_TOKEN = re.compile(r"<[A-Z][A-Z0-9_]*>|\w+|\s+|[^\w\s]")
_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*>")
_DIGIT = re.compile(r"\d")
_HAS_VALUE = re.compile(r"[^\W_]")  # a letter or digit: a value, not only spacing or punctuation
_SPACE_RUN = {
    (lead, trail): re.compile("|".join([*(["^ +"] if lead else []), *([" +$"] if trail else []), " {2,}"]))
    for lead in (True, False)
    for trail in (True, False)
}


def mask_replacement(value: str) -> str:
    """The "after" side of a replacement: placeholders (``<PERSON>``) kept, the rest masked by shape."""
    parts, last = [], 0
    for m in _PLACEHOLDER.finditer(value):
        parts += [mask_shape(value[last : m.start()]), m.group()]
        last = m.end()
    return "".join([*parts, mask_shape(value[last:])])


def visible(value: str, *, lead: bool = True, trail: bool = True) -> str:
    """Whitespace and invisible characters made visible: ``⏎`` newline, ``⇥`` tab, ``·`` for repeated spaces and spaces at an edge.

    ``lead``/``trail``: whether the start/end of ``value`` is an edge (not for context next to a change).
    """
    out = []
    for c in value:
        if c == "\n":
            out.append("⏎")
        elif c == "\t":
            out.append("⇥")
        elif c == "\r":
            out.append("␍")
        elif unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") or (c.isspace() and c != " "):
            out.append(f"<U+{ord(c):04X}>")
        else:
            out.append(c)
    return _SPACE_RUN[lead, trail].sub(lambda m: "·" * len(m.group()), "".join(out))


def _cut(value: str, limit: int = MAX_VALUE_CHARS) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


# ---------------------------------------------------------------------------- diff
def _kind(c: str) -> str:
    return "w" if c.isalnum() or c == "_" else "s" if c.isspace() else "p"


def _common_prefix(a: str, b: str) -> int:
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:  # binary search on slice equality: C-speed comparisons, no per-character Python loop
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _snap(p: int, a: str, b: str) -> int:
    """Move a cut at ``p`` back to the start of the word or space run it falls inside."""
    while p > 0 and _kind(a[p - 1]) != "p" and any(p < len(t) and _kind(t[p]) == _kind(a[p - 1]) for t in (a, b)):
        p -= 1
    return p


def _middles(a: str, b: str) -> tuple[int, str, str, int]:
    """The common prefix length (snapped to a token start), the two differing middles, and chars beyond the cap."""
    p = _snap(_common_prefix(a, b), a, b)
    ra, rb = a[p:][::-1], b[p:][::-1]
    s = _snap(_common_prefix(ra, rb), ra, rb)
    mid_a, mid_b = a[p : len(a) - s], b[p : len(b) - s]
    over = max(len(mid_a) - MAX_SPAN_CHARS, len(mid_b) - MAX_SPAN_CHARS, 0)
    return p, mid_a[:MAX_SPAN_CHARS], mid_b[:MAX_SPAN_CHARS], over


Change = tuple[str, str, int, int, int, int]  # before, after, and their spans in the two texts


def diff(a: str, b: str) -> tuple[int, list[Change]]:
    """Characters changed and the replacements (``before``, ``after``, spans) that turn ``a`` into ``b``.

    A replacement counts ``max(len(before), len(after))`` characters; a middle longer
    than ``MAX_SPAN_CHARS`` is diffed on its first part and the rest counted as changed.
    """
    p, mid_a, mid_b, over = _middles(a, b)
    ta, tb = _TOKEN.findall(mid_a), _TOKEN.findall(mid_b)
    pa, pb = [0, *accumulate(map(len, ta))], [0, *accumulate(map(len, tb))]
    changes: list[Change] = []
    chars = over
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        before, after = mid_a[pa[i1] : pa[i2]], mid_b[pb[j1] : pb[j2]]
        chars += max(len(before), len(after))
        changes.append((before, after, p + pa[i1], p + pa[i2], p + pb[j1], p + pb[j2]))
    return chars, changes


# ---------------------------------------------------------------------------- measure
def _as_text(col: str, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.List):  # messages: the contents, one per line
        return pl.col(col).list.eval(pl.element().struct.field("content")).list.join("\n")
    return pl.col(col).cast(pl.String)


def _texts(df: pl.DataFrame, fields: list[str], ids: pl.Series | None = None) -> pl.DataFrame:
    rows = df if ids is None else df.filter(pl.col("id").cast(pl.String).is_in(ids.implode()))
    return rows.select(pl.col("id").cast(pl.String), *[_as_text(f, df.schema[f]).alias(f) for f in fields]).unique("id", keep="first")


def _digests(df: pl.DataFrame, fields: list[str]) -> pl.DataFrame:
    """``id`` and a 64-bit hash and length per text: what finds the changed rows without a copy of the texts."""
    texts = [_as_text(f, df.schema[f]) for f in fields]
    return df.select(
        pl.col("id").cast(pl.String),
        *[t.hash(seed=0).alias(f) for f, t in zip(fields, texts, strict=True)],
        *[t.str.len_chars().alias(f"{f}__chars") for f, t in zip(fields, texts, strict=True)],
    ).unique("id", keep="first")


def _example(field: str, a: str, b: str, change: Change) -> dict[str, str]:
    _, _, a0, a1, b0, b1 = change

    def snippet(text: str, start: int, end: int, mask: Any) -> str:
        lo, hi = max(0, start - CONTEXT_CHARS), min(len(text), end + CONTEXT_CHARS)
        left, right = visible(mask(text[lo:start]), trail=False), visible(mask(text[end:hi]), lead=False)
        shown = f"{left}⟦{visible(mask(_cut(text[start:end])))}⟧{right}"
        return ("…" if lo else "") + shown + ("…" if hi < len(text) else "")

    return {"field": field, "before": snippet(a, a0, a1, mask_shape), "after": snippet(b, b0, b1, mask_replacement)}


def _replacements(pairs: list[tuple[str, str, str, str]]) -> dict[str, Any]:
    """Diff each changed (id, field, before, after); count characters and the rows each replacement is in."""
    chars = 0
    rows: Counter[tuple[str, str]] = Counter()
    first: dict[tuple[str, str], dict[str, str]] = {}
    seen: set[tuple[str, str, str]] = set()
    for row_id, field, a, b in pairs:
        n, changes = diff(a, b)
        chars += n
        for change in changes:
            key = (_cut(change[0]), _cut(change[1]))
            if (row_id, *key) not in seen:
                seen.add((row_id, *key))
                rows[key] += 1
            if key not in first:
                first[key] = _example(field, a, b, change)
    top = sorted(rows.items(), key=lambda kv: (-kv[1], mask_shape(kv[0][0]), kv[0]))[:TOP_VALUES]
    return {
        "chars_changed": chars,
        "top_replaced": [
            {
                "before": visible(mask_shape(before)),
                "after": visible(mask_replacement(after)),
                "rows": n,
                "is_value": bool(_HAS_VALUE.search(before)),  # a word or number, not only spacing or punctuation
            }
            for (before, after), n in top
        ],
        "examples": [first[key] for key, _ in top[:EXAMPLES]],
    }


def measure(before: pl.DataFrame, after: pl.DataFrame, kind: Kind, *, after_kind: Kind | None = None) -> dict[str, Any] | None:
    """What a stage rewrote in the rows it kept, by ``id``, on the kind's free-text columns.

    Args:
        before: the stage's input frame.
        after: the stage's kept frame.
        kind: the record kind of ``before``.
        after_kind: the record kind of ``after`` when the stage changes it (then nothing is
            compared: the rows are new records, not rewritten ones).

    Returns:
        None when nothing can be compared, else ``rows_compared``, ``rows_rewritten``,
        ``share``, ``rows_rewritten_by_field``, ``chars_compared``, ``rows_diffed``,
        ``chars_changed`` (over the diffed rows), ``top_replaced`` (masked before/after,
        rows, ``is_value``) and a few masked ``examples``.
    """
    fields = _fields(before, after, kind, after_kind)
    if fields is None:
        return None
    counts, ids = _compare(before, after, fields)
    return _result(fields, counts, ids.height, _replacements(_pairs(before, after, fields, ids)))


def _fields(before: pl.DataFrame, after: pl.DataFrame, kind: Kind, after_kind: Kind | None) -> list[str] | None:
    fields = [f for f in text_fields(kind, before.columns) if f in after.columns]
    if (after_kind not in (None, kind)) or not fields or "id" not in before.columns or "id" not in after.columns:
        return None
    return fields


def _compare(before: pl.DataFrame, after: pl.DataFrame, fields: list[str]) -> tuple[dict[str, int], pl.DataFrame]:
    """The counts (rows, rewritten, chars, and rewritten per field), and the changed rows to diff: at most MAX_DIFF_ROWS, the first by id hash."""
    after_digests = _digests(after, fields).drop([f"{f}__chars" for f in fields])
    joined = _digests(before, fields).join(after_digests, on="id", how="inner", suffix="__after")
    changed = {f: pl.col(f) != pl.col(f"{f}__after") for f in fields}
    counts = joined.select(
        pl.len().alias("rows"),
        pl.any_horizontal(list(changed.values())).sum().alias("rewritten"),
        pl.sum_horizontal([pl.col(f"{f}__chars").sum() for f in fields]).alias("chars"),
        *[e.sum().alias(f) for f, e in changed.items()],
    ).row(0, named=True)
    ids = joined.filter(pl.any_horizontal(list(changed.values()))).select("id", *[e.alias(f) for f, e in changed.items()])
    if ids.height > MAX_DIFF_ROWS:
        ids = ids.sort(pl.col("id").hash(seed=0), "id").head(MAX_DIFF_ROWS)
    return {k: int(v or 0) for k, v in counts.items()}, ids


def _pairs(before: pl.DataFrame, after: pl.DataFrame, fields: list[str], ids: pl.DataFrame) -> list[tuple[str, str, str, str]]:
    """(id, field, before, after) of each changed field of the rows in ``ids``: field by field, by id."""
    return _pairs_of(_changed_texts(before, after, fields, ids), fields)


def _changed_texts(before: pl.DataFrame, after: pl.DataFrame, fields: list[str], ids: pl.DataFrame) -> pl.DataFrame:
    """The rows in ``ids`` with, per field, whether it changed (``f``) and its texts (``f__text``, ``f__after``)."""
    return ids.join(
        _texts(before, fields, ids["id"]).join(_texts(after, fields, ids["id"]), on="id", suffix="__after"), on="id", suffix="__text"
    )


def _pairs_of(diffed: pl.DataFrame, fields: list[str]) -> list[tuple[str, str, str, str]]:
    return [
        (row_id, f, a or "", b or "")
        for f in fields
        for row_id, a, b in diffed.filter(pl.col(f)).sort("id").select("id", f"{f}__text", f"{f}__after").iter_rows()
    ]


def _result(fields: list[str], counts: dict[str, int], rows_diffed: int, replacements: dict[str, Any]) -> dict[str, Any]:
    return {
        "fields": fields,
        "rows_compared": counts["rows"],
        "rows_rewritten": counts["rewritten"],
        "share": round(counts["rewritten"] / counts["rows"], 4) if counts["rows"] else 0.0,
        "rows_rewritten_by_field": {f: counts[f] for f in fields},
        "chars_compared": counts["chars"],
        "rows_diffed": rows_diffed,
        **replacements,
        "masking": "shape",
    }


# ---------------------------------------------------------------------------- per batch, then merged
def partial(
    before: pl.DataFrame, after: pl.DataFrame, kind: Kind, *, after_kind: Kind | None = None
) -> tuple[dict[str, Any] | None, pl.DataFrame]:
    """``measure`` of one batch of rows, in the form ``merge`` combines into exactly ``measure`` of all batches.

    Returns:
        The batch's counts (None where ``measure`` gives None), and the changed rows
        ``measure`` would diff on this batch alone, undiffed: ``id``, ``hash`` (the id hash
        that picks the sample) and per field whether it changed and its two texts. They hold
        raw text: keep them in the stage's temporary folder.
    """
    fields = _fields(before, after, kind, after_kind)
    if fields is None:
        return None, pl.DataFrame(schema={"id": pl.String, "hash": pl.UInt64})
    counts, ids = _compare(before, after, fields)
    return {"fields": fields, **counts}, _changed_texts(before, after, fields, ids).with_columns(hash=pl.col("id").hash(seed=0))


def merge(parts: list[dict[str, Any] | None], changed: pl.LazyFrame) -> dict[str, Any] | None:
    """What ``measure`` gives on the whole frame, from each batch's ``partial`` (counts in a list, changed rows in one frame).

    The sample is re-picked over all batches by a streamed top-k (each batch's own sample
    holds every row of the overall one), and only the sample is read and diffed: the
    same rows, in the same order, through the same code as ``measure``.
    """
    if not parts or any(p is None for p in parts):
        return None
    fields: list[str] = parts[0]["fields"]  # type: ignore[index]
    counts = {k: sum(int(p[k]) for p in parts if p) for k in ("rows", "rewritten", "chars", *fields)}
    chosen = changed.select("id", "hash").bottom_k(MAX_DIFF_ROWS, by=["hash", "id"]).collect(engine="streaming").select("id")
    diffed = changed.join(chosen.lazy(), on="id", how="semi").collect(engine="streaming")
    return _result(fields, counts, diffed.height, _replacements(_pairs_of(diffed, fields)))


def summary(fidelity: dict[str, Any] | None) -> dict[str, Any] | None:
    """The counts of ``measure``'s result, without values or examples (for the manifest)."""
    if not fidelity:
        return None
    keys = ("rows_compared", "rows_rewritten", "share", "chars_changed", "rows_diffed")
    return {k: fidelity[k] for k in keys if k in fidelity}
