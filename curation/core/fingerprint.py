"""Dataset fingerprints (format v4): one SHA-256 per row, ordered by id, hashed as a list.

The definition, the same for the local engine (``frame_fingerprint``, ``file_fingerprint``)
and for Spark (``curation.spark.fingerprint.spark_fingerprint``):

1. Each row's canonical line: its columns sorted by name, written as one NDJSON object by
   polars, with floats (nested ones too) as their shortest round-trip text so NaN, +inf,
   -inf, null and -0.0 differ, binary columns as hex, and zoned timestamps in UTC.
2. Each line's SHA-256: the row digest.
3. The digests ordered by (``id``, digest) (by digest alone when there is no ``id``):
   ids by value, nulls first, strings byte-wise; digests byte-wise.
4. The fingerprint: SHA-256 over a header (``HEADER``, the canonical schema as JSON and
   the row count) followed by the 32-byte row digests in that order.

What it proves: the same rows (every value, compared as in 1) under the same logical
schema. Row order in a file or across partitions does not count, nor column order, nor
how a file was split or which engine wrote it. A changed value, an added, removed or
repeated row, and a changed column type all change it. It is a hash of a list of hashes,
so as collision resistant as SHA-256 (a sum or XOR of row digests would not be: such
multiset hashes fall to Wagner's generalised birthday attack).

Canonical types (``canonical_type``), so a file polars wrote and the same rows written
by Spark (no unsigned integers, ``string`` not ``large_string``) agree: every integer width
signed or not is ``integer``; ``float`` (32-bit) and ``double`` stay apart; ``String``,
``Categorical`` and ``Enum`` are ``string``; ``List`` and ``Array`` are ``array<T>``;
``Struct`` is ``struct<name:T,...>`` in field order; a zoned ``Datetime`` is ``timestamp``
and a naive one ``timestamp_ntz`` (any time unit); ``Decimal`` is ``decimal(p,s)``.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from polars.datatypes import DataTypeClass

from curation.core.errors import RunError

PolarsDataType = pl.DataType | DataTypeClass
HEADER = "tuneprep-fingerprint-v4"
BATCH_ROWS = 8192  # rows per batch read from a file and hashed at once (2 KB texts: ~16 MB a batch)
DIGEST_COLUMNS = ("_d0", "_d1", "_d2", "_d3")  # a 32-byte digest as four big-endian uint64 sort keys


# ---------------------------------------------------------------------------- canonical schema
def canonical_type(dtype: PolarsDataType) -> str:
    """The engine-independent name of a polars type (see the module docstring)."""
    if dtype.is_integer():
        return "integer"
    if dtype == pl.Float32:
        return "float"
    if dtype == pl.Float64:
        return "double"
    if isinstance(dtype, pl.List | pl.Array):
        return f"array<{canonical_type(dtype.inner)}>"
    if isinstance(dtype, pl.Struct):
        return "struct<" + ",".join(f"{f.name}:{canonical_type(f.dtype)}" for f in dtype.fields) + ">"
    if isinstance(dtype, pl.Datetime):
        return "timestamp" if dtype.time_zone else "timestamp_ntz"
    if isinstance(dtype, pl.Decimal):
        return f"decimal({dtype.precision},{dtype.scale})"
    simple = {pl.String: "string", pl.Categorical: "string", pl.Enum: "string", pl.Binary: "binary", pl.Boolean: "boolean"}
    for base, name in simple.items():
        if dtype == base or isinstance(dtype, base):
            return name
    return str(dtype.base_type()).lower()  # date, time, duration, null, ...


def header(columns: Mapping[str, str], rows: int) -> bytes:
    """The bytes hashed before the row digests: format, canonical schema (sorted by column) and row count."""
    return json.dumps({"format": HEADER, "columns": dict(sorted(columns.items())), "rows": rows}, separators=(",", ":")).encode()


# ---------------------------------------------------------------------------- row digests
def row_digests(frame: pl.DataFrame) -> bytes:
    """The rows' SHA-256 digests, 32 bytes each, concatenated in row order."""
    if frame.height == 0:
        return b""
    buf = io.BytesIO()
    _canonical_rows(frame).write_ndjson(buf)
    lines = buf.getvalue().split(b"\n")
    assert len(lines) == frame.height + 1 and not lines[-1], "one NDJSON line per row"
    sha = hashlib.sha256
    return b"".join([sha(line).digest() for line in lines[:-1]])


def _canonical_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """Columns sorted by name; floats as text, binary as hex, zoned timestamps in UTC."""
    frame = frame.select(sorted(frame.columns))
    exprs = []
    for name, dtype in frame.schema.items():
        if dtype == pl.Binary:
            exprs.append(pl.col(name).bin.encode("hex"))
        elif isinstance(dtype, pl.Datetime) and dtype.time_zone:
            exprs.append(pl.col(name).dt.convert_time_zone("UTC"))
        elif _floats_as_text(dtype) != dtype:
            exprs.append(pl.col(name).cast(_floats_as_text(dtype)))
    return frame.with_columns(exprs) if exprs else frame


def _floats_as_text(dtype: PolarsDataType) -> PolarsDataType:
    """``dtype`` with every float (nested in lists, arrays and structs too) replaced by String."""
    if dtype.is_float():
        return pl.String()
    if isinstance(dtype, pl.List | pl.Array):
        return pl.List(_floats_as_text(dtype.inner))
    if isinstance(dtype, pl.Struct):
        return pl.Struct([pl.Field(f.name, _floats_as_text(f.dtype)) for f in dtype.fields])
    return dtype


def ordered_digests(ids: pl.Series | None, digests: bytes) -> bytes:
    """The digests ordered by (id, digest), or by digest alone without ids, concatenated.

    Ties on the id only matter where ids repeat, so unique ids sort alone (one string sort).
    """
    words = np.frombuffer(digests, dtype=">u8").reshape(-1, 4)  # a digest as four big-endian words: byte order = word order
    if ids is None:
        order = _digest_order(words.astype(np.uint64))
    elif ids.n_unique() == ids.len():
        order = _as_sortable(ids).arg_sort().to_numpy()
    else:
        keys = pl.DataFrame({"id": _as_sortable(ids), **{c: words[:, i].astype(np.uint64) for i, c in enumerate(DIGEST_COLUMNS)}})
        order = keys.with_row_index("_row").sort(["id", *DIGEST_COLUMNS])["_row"].to_numpy()
    return words[order].tobytes()


def _as_sortable(ids: pl.Series) -> pl.Series:
    return ids.cast(pl.String) if isinstance(ids.dtype, pl.Categorical | pl.Enum) else ids


def _digest_order(words: np.ndarray) -> np.ndarray:
    """Row order by digest: by the first word, or all four where two first words are equal."""
    order = np.argsort(words[:, 0], kind="stable")
    first = words[order, 0]
    if len(first) > 1 and bool((first[1:] == first[:-1]).any()):
        order = np.lexsort((words[:, 3], words[:, 2], words[:, 1], words[:, 0]))
    return order


def combine(columns: Mapping[str, str], rows: int, ordered: Iterable[bytes]) -> str:
    """The fingerprint: SHA-256 over the header and then the ordered digests (any chunking)."""
    h = hashlib.sha256(header(columns, rows))
    for chunk in ordered:
        h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------- fingerprints
def frame_fingerprint(df: pl.DataFrame) -> str:
    """The v4 fingerprint of an in-memory frame (module docstring): rows and schema, not their order."""
    columns = {name: canonical_type(dtype) for name, dtype in df.schema.items()}
    digests = b"".join(row_digests(df.slice(start, BATCH_ROWS)) for start in range(0, df.height, BATCH_ROWS))
    ids = df.get_column("id") if "id" in df.columns else None
    return combine(columns, df.height, [ordered_digests(ids, digests)])


def file_fingerprint(path: Path) -> str:
    """The v4 fingerprint of a parquet file's rows (not its bytes, which vary by writer).

    Streams the file in record batches and keeps only each row's id and digest, so a file
    of long texts is never held whole. ``path`` may also be a folder of part files (as
    Spark writes them); its ``*.parquet`` files are one dataset. Equals ``frame_fingerprint``
    of the same rows.

    Raises:
        RunError: the file is not readable parquet.
    """
    path = Path(path)
    try:
        return _stream_fingerprint(path)
    except (OSError, pa.ArrowException, pl.exceptions.PolarsError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise RunError(
            f"'{path}' is not a readable parquet file ({first}); rerun `tuneprep run` on the run's config to rewrite it"
        ) from None


def _stream_fingerprint(path: Path) -> str:
    files = _parquet_parts(path)
    schema = pl.read_parquet_schema(files[0])
    columns = {name: canonical_type(dtype) for name, dtype in schema.items()}
    ids: list[pl.Series] = []
    digests: list[bytes] = []
    for frame in _batches(files):
        digests.append(row_digests(frame))
        if "id" in columns:
            ids.append(frame.get_column("id"))
    all_ids = pl.concat(ids) if ids else (pl.Series("id", [], dtype=schema["id"]) if "id" in columns else None)
    blob = b"".join(digests)
    return combine(columns, len(blob) // 32, [ordered_digests(all_ids, blob)])


def _parquet_parts(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    parts = sorted(p for p in path.glob("*.parquet") if not p.name.startswith((".", "_")))
    if not parts:
        raise OSError(f"no .parquet files in the folder '{path}'")
    return parts


def _batches(files: list[Path]) -> Iterator[pl.DataFrame]:
    for file in files:
        with pq.ParquetFile(file) as parquet:
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
                frame = pl.from_arrow(batch)
                assert isinstance(frame, pl.DataFrame)
                yield frame
