"""Reading raw inputs into canonical rows, with every malformed row quarantined.

JSONL/NDJSON, JSON (an array of objects), Parquet and CSV, one file or a glob, or a
Hugging Face dataset saved with ``save_to_disk`` (a folder with ``state.json``).
Files are streamed (JSONL/CSV line by line, Parquet in row-group batches); each record
passes one small validation helper that renames fields, checks required columns and
types for the record kind, and gives it a stable ``id``. Rows that fail go to the
quarantine with the source file, line number and a readable error: never silently.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from curation.core.errors import ConfigError, InputError
from curation.core.fields import Fields, apply_fields, check_sources, columns_list, unused_text_columns
from curation.core.masking import is_masked_path, mask_path, mask_text, mask_value
from curation.core.schema import FORMS, MESSAGE, NON_EMPTY, Form, Kind

SUPPORTED = (".jsonl", ".ndjson", ".json", ".parquet", ".csv")
QUARANTINE_SCHEMA = {"stage": pl.String, "source": pl.String, "line": pl.Int64, "id": pl.String, "error": pl.String, "raw": pl.String}
_RAW_LIMIT = 2000  # characters of a bad line kept for debugging (the quarantine is sensitive)
_BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark, written by some editors and Excel; not part of the data


@dataclass(frozen=True)
class InputFile:
    path: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Ingested:
    rows: pl.DataFrame
    quarantine: pl.DataFrame
    files: list[InputFile]
    form: Form
    rows_read: int
    warnings: list[str] = field(default_factory=list)  # one line each, for the run's log; never raw values


def resolve_inputs(pattern: str, base_dir: Path, *, show_paths: bool = False) -> list[Path]:
    """The files ``input.path`` names, sorted, each file once; raises InputError when there are none.

    Messages name files by ``curation.core.masking.mask_path`` unless ``show_paths``. A URI
    (``s3://``, ``hdfs://``...) is read by the Spark session a Spark engine started
    (``curation.spark.inputs``); without one it is a ConfigError.
    """
    if is_uri(pattern):
        return _remote_inputs(pattern, show_paths=show_paths)
    p = Path(pattern).expanduser()
    full = p if p.is_absolute() else base_dir / p
    shown = _shown(show_paths)
    pattern, full_shown = shown(pattern), shown(full)
    if any(ch in str(p) for ch in "*?["):
        paths = _unique_files(glob.glob(str(full), recursive=True))
        if not paths:
            raise InputError(
                f"`input.path` pattern '{pattern}' matches no file under {shown(full.parent)}; check the glob (relative paths start at the config file's folder)"
            )
    elif is_hf_dataset_dir(full):
        return [full]
    elif full.is_dir():
        raise InputError(
            f"`input.path` '{pattern}' is a folder but not a saved Hugging Face dataset (no state.json); point it to a file, a glob such as '{pattern.rstrip('/')}/*.jsonl', or a folder written by `Dataset.save_to_disk`"
        )
    else:
        if not full.is_file():
            if is_masked_path(p.name):  # the run's config.yaml copy: it names the input by a hash
                raise InputError(
                    f"input file '{full_shown}' not found: this looks like a run's config.yaml, which names its input by a hash; rerun with your own config (or set `report.show_paths: true`)"
                )
            raise InputError(f"input file '{full_shown}' not found; fix `input.path` (relative paths start at the config file's folder)")
        paths = [full]
    return _usable(paths, shown)


def _usable(paths: list[Path], shown: Callable[[str | Path], str]) -> list[Path]:
    """``paths``, if each has a supported extension, is not empty and can be read; else InputError."""
    for path in paths:
        if path.suffix.lower() not in SUPPORTED:
            raise InputError(f"'{shown(path.name)}' has unsupported extension '{path.suffix}'; use one of {', '.join(SUPPORTED)}")
        if path.stat().st_size == 0:
            raise InputError(f"input file '{shown(path)}' is empty; remove it from `input.path` or point to a file with records")
        if not os.access(path, os.R_OK):
            raise InputError(f"input file '{shown(path)}' cannot be read (permission denied); give the user running tuneprep read access")
    return paths


URI_SCHEMES = ("s3", "s3a", "s3n", "hdfs", "gs", "abfs", "abfss", "wasbs", "file")


def is_uri(path: str) -> bool:
    """Whether ``input.path`` names files on a cluster filesystem, which only the Spark engine reads."""
    scheme, sep, _ = path.partition("://")
    return bool(sep) and scheme.lower() in URI_SCHEMES


def uri_needs_spark(path: str, *, show_paths: bool = False) -> ConfigError:
    scheme = path.partition("://")[0]
    return ConfigError(
        f"`input.path` '{mask_path(path, show=show_paths)}' is a {scheme}:// URI, which only the Spark engine reads; "
        "run with `--engine spark` (or `run.engine: spark`), or copy the files to a local path"
    )


def _remote_inputs(pattern: str, *, show_paths: bool) -> list[Path]:
    """The files of a URI ``input.path``, read by the active Spark session (a Spark engine's)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise uri_needs_spark(pattern, show_paths=show_paths) from None
    spark = SparkSession.getActiveSession()
    if spark is None:
        raise uri_needs_spark(pattern, show_paths=show_paths)
    from curation.spark.inputs import fetch_inputs

    return _usable(fetch_inputs(spark, pattern, show_paths=show_paths), _shown(show_paths))


def _shown(show_paths: bool) -> Callable[[str | Path], str]:
    return lambda path: mask_path(path, show=show_paths)


def _unique_files(matches: list[str]) -> list[Path]:
    """Matched files, sorted, each real file once: a recursive glob through a symlink loop finds one file many times."""
    seen: set[str] = set()
    paths = []
    for m in sorted(matches):
        real = os.path.realpath(m)
        if Path(m).is_file() and real not in seen:
            seen.add(real)
            paths.append(Path(m))
    return paths


def is_hf_dataset_dir(path: Path) -> bool:
    return path.is_dir() and (path / "state.json").is_file()


def _hf_arrow_files(path: Path) -> list[Path]:
    state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    return [path / f["filename"] for f in state.get("_data_files", [])]


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (of its arrow shards, in order, for a saved HF dataset).

    Raises:
        InputError: the file cannot be read (permissions, a vanished file, an I/O error).
    """
    h = hashlib.sha256()
    try:
        for part in _hf_arrow_files(path) if is_hf_dataset_dir(path) else [path]:
            with part.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    except OSError as e:
        raise InputError(f"input file '{mask_path(path)}' cannot be read ({e.strerror}); check it exists and is readable") from None
    return h.hexdigest()


def input_size(path: Path) -> int:
    return sum(p.stat().st_size for p in _hf_arrow_files(path)) if is_hf_dataset_dir(path) else path.stat().st_size


# ---------------------------------------------------------------------------- readers
# Each reader yields (line_number, record_or_None, error_or_None, raw_text_or_None).
Item = tuple[int, dict[str, Any] | None, str | None, str | None]


def _read_jsonl(path: Path, name: str) -> Iterator[Item]:
    # universal newlines: \n, \r\n and a lone \r (old Mac files) all end a line; bytes
    # that are not UTF-8 come through as lone surrogates, found per line below
    with path.open("r", encoding="utf-8", errors="surrogateescape", newline=None) as f:
        for n, line in enumerate(f, start=1):
            if n == 1:
                line = line.removeprefix("\ufeff")
            if not line.strip():
                continue
            bad = _first_surrogate(line)
            if bad is not None:
                yield (
                    n,
                    None,
                    f"line is not valid UTF-8 (byte 0x{ord(line[bad]) - 0xDC00:02x} at column {bad + 1}); re-encode the file as UTF-8",
                    line.encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
                )
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                yield n, None, f"invalid JSON: {_json_problem(e)} at column {e.colno}", line
                continue
            except RecursionError:
                yield n, None, "invalid JSON: nested too deeply to read; flatten the record", line[:_RAW_LIMIT]
                continue
            except ValueError:
                yield n, None, f"invalid JSON: {_TOO_MANY_DIGITS}", line
                continue
            if not isinstance(rec, dict):
                yield n, None, f"expected a JSON object per line, got {type(rec).__name__}", line
                continue
            yield n, rec, None, None


def _first_surrogate(line: str) -> int | None:
    """Index of the first undecodable byte (a lone surrogate from ``surrogateescape``), or None."""
    if line.isascii():
        return None
    try:
        line.encode("utf-8")
    except UnicodeEncodeError as e:
        return e.start
    return None


# json.loads raises a plain ValueError (not JSONDecodeError) for integers longer than this.
_TOO_MANY_DIGITS = f"a number has more than {sys.get_int_max_str_digits()} digits"


def _json_problem(e: json.JSONDecodeError) -> str:
    # Some of json's messages end in "at" ("invalid control character at"), ready for a position.
    return e.msg.lower().removesuffix(" at")


def _read_json(path: Path, name: str) -> Iterator[Item]:
    text = path.read_bytes().removeprefix(_BOM).decode("utf-8", "surrogateescape")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        hint = "; if it holds one object per line, name it .jsonl" if e.msg == "Extra data" else ""
        raise InputError(f"'{name}' is not valid JSON ({_json_problem(e)} at line {e.lineno}){hint}") from None
    except RecursionError:
        raise InputError(f"'{name}' is nested too deeply to read as JSON; flatten the records") from None
    except ValueError:
        raise InputError(f"'{name}' is not valid JSON ({_TOO_MANY_DIGITS})") from None
    keyed = isinstance(data, dict) and isinstance(data.get("data"), list)
    if keyed:
        data = data["data"]
    if not isinstance(data, list):
        raise InputError(f"'{name}' must hold a JSON array of records (or {{\"data\": [...]}}), got {type(data).__name__}")
    for n, rec in zip(_element_lines(text, keyed=keyed), data, strict=True):
        if isinstance(rec, dict):
            yield n, rec, None, None
        else:
            yield n, None, f"expected a JSON object, got {type(rec).__name__}", str(rec)[:_RAW_LIMIT]


def _element_lines(text: str, *, keyed: bool) -> Iterator[int]:
    """The file line on which each element of the (already validated) records array starts."""
    decoder, ws = json.JSONDecoder(), " \t\n\r"

    def skip(i: int) -> int:
        while i < len(text) and text[i] in ws:
            i += 1
        return i

    i = skip(0)
    if keyed:  # {"data": [...]}: walk the object's members to the last "data" (json.loads keeps the last)
        start, i = -1, skip(i + 1)
        while text[i] != "}":
            key, i = decoder.raw_decode(text, i)
            i = skip(skip(i) + 1)  # past ':'
            start = i if key == "data" else start
            i = skip(decoder.raw_decode(text, i)[1])
            i = skip(i + 1) if text[i] == "," else i
        i = start
    line, counted, i = 1, 0, skip(i + 1)  # past '['
    while text[i] != "]":
        line, counted = line + text.count("\n", counted, i), i
        yield line
        i = skip(decoder.raw_decode(text, i)[1])
        i = skip(i + 1) if text[i] == "," else i


def _read_csv(path: Path, name: str) -> Iterator[Item]:
    with path.open("r", encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames:
            raise InputError(f"'{name}' has no header row; CSV inputs need column names on the first line")
        repeated = next((c for i, c in enumerate(reader.fieldnames) if c in reader.fieldnames[:i]), None)
        if repeated is not None:  # DictReader would keep the last column of that name and drop the other silently
            raise InputError(f"'{name}' names the column `{mask_value(repeated)}` twice in its header; rename one of them")
        for row in reader:
            rest = row.pop(None, None)  # type: ignore[call-overload]
            if rest:
                yield (
                    reader.line_num,
                    None,
                    f"row has {len(reader.fieldnames) + len(rest)} fields, header has {len(reader.fieldnames)}; quote fields that contain commas",
                    ",".join(str(v) for v in row.values()),
                )
                continue
            yield reader.line_num, {k: (None if v == "" else v) for k, v in row.items()}, None, None


def _read_parquet(path: Path, name: str) -> Iterator[Item]:
    try:
        lf = pl.scan_parquet(path)
        n = 0
        for batch in lf.collect_batches():
            for rec in batch.to_dicts():
                n += 1
                yield n, rec, None, None
    except (pl.exceptions.ComputeError, OSError) as e:
        raise InputError(f"'{name}' cannot be read as Parquet ({str(e).splitlines()[0][:120]}); check that the file is complete") from None


def _read_hf_dir(path: Path, name: str) -> Iterator[Item]:
    import pyarrow as pa

    n = 0
    for shard in _hf_arrow_files(path):
        with pa.memory_map(str(shard)) as source:
            for batch in pa.ipc.open_stream(source):
                for rec in batch.to_pylist():
                    n += 1
                    yield n, rec, None, None


READERS: dict[str, Callable[[Path, str], Iterator[Item]]] = {
    ".jsonl": _read_jsonl,
    ".ndjson": _read_jsonl,
    ".json": _read_json,
    ".csv": _read_csv,
    ".parquet": _read_parquet,
    "<hf>": _read_hf_dir,
}


def _reader(path: Path) -> Callable[[Path, str], Iterator[Item]]:
    return READERS["<hf>" if is_hf_dataset_dir(path) else path.suffix.lower()]


# ---------------------------------------------------------------------------- validation
def _has_surrogates(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _as_text(name: str, value: Any) -> str:
    if name == "label" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise ValueError(f"field `{name}` must be a string, got {_type_name(value)}")
    if _has_surrogates(value):
        raise ValueError(f"field `{name}` is not valid UTF-8; re-encode the file as UTF-8")
    return value


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"field `{name}` must be a number, got '{value[:20]}'") from None
        if not math.isfinite(number):
            raise ValueError(f"field `{name}` must be a finite number, got the string '{value[:20]}'")
        return number
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"field `{name}` must be a number, got {_type_name(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the float range
        raise ValueError(f"field `{name}` must be a finite number, got an integer too large to hold") from None
    if not math.isfinite(number):  # JSON's NaN/Infinity literals, NaN in Parquet: later stages cannot rank or weigh them
        raise ValueError(f"field `{name}` must be a finite number, got {_JSON_SPELLING.get(str(number), str(number))}")
    return number


_JSON_SPELLING = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _as_messages(value: Any) -> list[dict[str, str]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("field `messages` must be a list of {role, content} objects, got a non-JSON string") from None
    if not isinstance(value, list) or not value:
        raise ValueError("field `messages` must be a non-empty list of {role, content} objects")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ValueError(f"`messages[{i}]` must be an object with string `role` and `content`")
        if m["role"] not in ("system", "user", "assistant"):
            raise ValueError(f"`messages[{i}].role` must be system, user or assistant, got '{m['role'][:20]}'")
        if _has_surrogates(m["content"]):
            raise ValueError(f"`messages[{i}].content` is not valid UTF-8; re-encode the file as UTF-8")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _type_name(value: Any) -> str:
    return {
        "str": "string",
        "int": "number",
        "float": "number",
        "bool": "boolean",
        "NoneType": "null",
        "list": "list",
        "dict": "object",
    }.get(type(value).__name__, type(value).__name__)


def _extra(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    except RecursionError:
        raise ValueError("a metadata value is nested too deeply; flatten it") from None
    except TypeError:  # a key that is not a string (Parquet maps): keys sort as strings
        return json.dumps(value, ensure_ascii=False, default=str)


def _as_int(name: str, value: Any) -> int:
    return int(_as_float(name, value))


def _as_nonempty_text(name: str, value: Any) -> str:
    text = _as_text(name, value)
    if not text.strip():
        raise ValueError(f"field `{name}` is empty")
    return text


_CONVERTERS: dict[str, list[tuple[str, Callable[[str, Any], Any], bool]]] = {}


def _converters(form: Form) -> list[tuple[str, Callable[[str, Any], Any], bool]]:
    """(column, converter, required) per column of ``form``, built once per form."""
    if form.name not in _CONVERTERS:
        table = []
        for name, dtype in form.columns.items():
            if dtype == pl.List(MESSAGE):
                conv: Callable[[str, Any], Any] = lambda _n, v: _as_messages(v)  # noqa: E731
            elif dtype == pl.String():
                conv = _as_nonempty_text if name in NON_EMPTY else _as_text
            else:
                conv = _as_float if dtype == pl.Float64() else _as_int
            table.append((name, conv, name in form.required))
        _CONVERTERS[form.name] = table
    return _CONVERTERS[form.name]


def validate_record(rec: dict[str, Any], form: Form, fields: Fields, *, separator: str = "\n\n") -> dict[str, Any]:
    """One raw record -> one canonical row (``id`` may be None). Raises ValueError with a readable message."""
    return _validate(apply_fields(rec, fields, separator), form, fields)


def _validate(rec: dict[str, Any], form: Form, fields: Fields) -> dict[str, Any]:
    """``validate_record`` on a record ``apply_fields`` already renamed (it is consumed)."""
    row: dict[str, Any] = {}
    for name, conv, required in _converters(form):
        present = name in rec
        value = rec.pop(name, None)
        if value is not None:
            row[name] = conv(name, value)
        elif required:
            raise ValueError(_no_value(name, fields, null=present))
        else:
            row[name] = None
    if form.name == "scores" and row["score"] is None and row["rank"] is None:
        raise ValueError("ratings rows need a `score` or a `rank`")
    if form.name == "pairwise" and row["winner"] not in ("a", "b", "tie"):
        raise ValueError(f"field `winner` must be 'a', 'b' or 'tie', got '{str(row['winner'])[:20]}'")
    given = rec.pop("id", None)
    if (given is not None and not isinstance(given, str | int)) or isinstance(given, bool):
        raise ValueError(f"field `id` must be a string or integer, got {_type_name(given)}")
    row["id"] = _as_text("id", str(given)) if given not in (None, "") else None
    for key, value in rec.items():
        name = str(key)
        if _has_surrogates(name):
            raise ValueError(f"a field name (`{mask_value(name)}`) is not valid UTF-8; re-encode the file as UTF-8")
        row[name] = _extra(value)
        if row[name] is not None and _has_surrogates(row[name]):
            raise ValueError(f"field `{mask_value(name)}` is not valid UTF-8; re-encode the file as UTF-8")
    return row


def _no_value(name: str, fields: Fields, *, null: bool) -> str:
    """The error for a required field that is null or absent."""
    source = fields.get(name)
    mapped = f" (mapped from `{source}`)" if isinstance(source, str) else ""
    if isinstance(source, list):
        return f"field `{name}` (joined from {columns_list(source)}) is empty in this row; give every row a `{name}`"
    if null:
        return f"field `{name}`{mapped} is null; give every row a `{name}`"
    return f"missing required field `{name}`{mapped or '; map a source column onto it with `input.fields`'}"


def _given_id(rec: dict[str, Any] | None, fields: Fields) -> str | None:
    """The record's own ``id`` when it is a usable string or integer, so a quarantined row can be traced."""
    source = fields.get("id", "id")
    value = None if rec is None or not isinstance(source, str) else rec.get(source)
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    return _valid_utf8(str(value))


def _valid_utf8(text: str) -> str:
    """``text`` with undecodable bytes (lone surrogates) replaced, so that it can be stored."""
    return text.encode("utf-8", "replace").decode("utf-8") if _has_surrogates(text) else text


def content_id(row: dict[str, Any], columns: list[str]) -> str:
    """A stable id from the canonical content: the first 16 hex digits of a SHA-256."""
    payload = json.dumps([row.get(c) for c in columns], ensure_ascii=False, separators=(",", ":"), check_circular=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------------------- ingest
CHUNK_ROWS = 50_000  # validated rows held as Python dicts before they become a compact frame chunk


@dataclass
class _FormRows:
    """The valid rows of one form, in input order; given ids are unique among them.

    Rows are held as Python dicts only ``CHUNK_ROWS`` at a time, then become a polars chunk
    (a dict costs several times its values), so reading 20M rows needs about the memory of
    the final frame, not of 20M dicts. Rows without a given id get their content id as they
    arrive (``content_id``; repeats of the same content get -2, -3, ... in input order).
    """

    form: Form
    several: bool = False  # the kind has other forms: remember where each row came from
    rows: list[dict[str, Any]] = field(default_factory=list)  # the chunk being filled
    chunks: list[pl.DataFrame] = field(default_factory=list)
    count: int = 0
    present: set[str] = field(default_factory=set)  # columns some row gives a non-null value
    # (file index, line) per row, to quarantine them if another form wins (re-read then)
    where: list[tuple[int, int]] = field(default_factory=list)
    first_seen: dict[str, str] = field(default_factory=dict)  # given id -> "file:line"
    content_seen: dict[str, int] = field(default_factory=dict)  # content id -> times seen

    def add(self, row: dict[str, Any], path: Path, file_index: int, line: int) -> str | None:
        """Keep ``row``, or say why not: its given id was seen before in this form."""
        given = row["id"]
        if given is not None:
            if given in self.first_seen:
                return f"duplicate `id` '{mask_value(given)}' (first seen at {self.first_seen[given]}); ids must be unique"
            self.first_seen[given] = f"{mask_path(path.name)}:{line}"
        else:
            base = content_id(row, list(self.form.columns))
            seen = self.content_seen[base] = self.content_seen.get(base, 0) + 1
            row["id"] = base if seen == 1 else f"{base}-{seen}"
        self.rows.append(row)
        self.count += 1
        if self.several:
            self.where.append((file_index, line))
        if len(self.rows) >= CHUNK_ROWS:
            self._flush()
        return None

    def _flush(self) -> None:
        if not self.rows:
            return
        present = {k for r in self.rows for k, v in r.items() if v is not None}
        self.present |= present
        extras = sorted(present - set(self.form.columns) - {"id"})
        schema = {"id": pl.String(), **self.form.columns, **{k: pl.String() for k in extras}}
        self.chunks.append(pl.DataFrame(self.rows, schema=schema))
        self.rows = []

    def frame(self) -> pl.DataFrame:
        """All rows as one frame: optional columns only when some row gives them, extra columns as text, sorted by name."""
        self._flush()
        extras = sorted(self.present - set(self.form.columns) - {"id"})
        columns = {k: t for k, t in self.form.columns.items() if k in self.form.required or k in self.present}
        schema = {"id": pl.String(), **columns, **{k: pl.String() for k in extras}}
        chunks, self.chunks = self.chunks, []
        aligned = [
            chunk.select(pl.col(c) if c in chunk.columns else pl.lit(None, t).alias(c) for c, t in schema.items()) for chunk in chunks
        ]
        return pl.concat(aligned, how="vertical", rechunk=False) if aligned else pl.DataFrame(schema=schema)


def ingest(
    paths: list[Path],
    kind: Kind,
    fields: Fields,
    *,
    separator: str = "\n\n",
    advance: Callable[[int], None] | None = None,
    show_paths: bool = False,
) -> Ingested:
    """Read every file, validate every record in its own form, and give each row a unique stable id.

    A dataset has one form: it keeps the form most valid rows are in (the first in
    ``schema.FORMS`` on a tie), and valid rows of another form are quarantined.
    ``fields`` renames source columns or joins several with ``separator``.

    Raises:
        InputError: a file cannot be read at all, the input holds no records, or
            ``fields`` names a column no record has.
    """
    several = len(FORMS[kind]) > 1
    by_form = {form.name: _FormRows(form, several=several) for form in FORMS[kind]}
    bad: list[dict[str, Any]] = []
    files: list[InputFile] = []
    seen: dict[str, None] = {}  # every column any record has, in first-seen order
    read = 0
    shown = _shown(show_paths)
    for file_index, path in enumerate(paths):
        files.append(InputFile(_valid_utf8(str(path)), file_sha256(path), input_size(path)))
        _refuse_utf16(path, shown(path.name))
        for line, rec, error, raw in _reader(path)(path, shown(path.name)):
            read += 1
            if advance is not None and read % 1000 == 0:
                advance(1000)
            if rec is not None:
                seen.update(dict.fromkeys(rec))
                error = _accept(rec, kind, fields, separator, by_form, path, file_index, line)
                if error is None:
                    continue
                raw = _raw(rec)
            bad.append(_quarantined(str(path), line, _given_id(rec, fields), error, raw))
    if read == 0:
        raise InputError(_no_rows(paths, shown))
    check_sources(fields, list(seen))
    kept = max(by_form.values(), key=lambda f: f.count)  # max keeps the first of equals
    bad += _other_forms(paths, by_form.values(), kept, fields)
    order = {str(p): i for i, p in enumerate(paths)}
    bad.sort(key=lambda b: (order[b["source"]], b["line"]))
    rows = kept.frame()
    warnings = unused_text_columns(rows, kept.form, fields)
    return Ingested(rows, pl.DataFrame(bad, schema=QUARANTINE_SCHEMA), files, kept.form, read, warnings)


def _accept(
    rec: dict[str, Any],
    kind: Kind,
    fields: Fields,
    separator: str,
    by_form: dict[str, _FormRows],
    path: Path,
    file_index: int,
    line: int,
) -> str | None:
    """Validate ``rec`` in its own form and keep it there; the error when it cannot be kept."""
    try:
        renamed = apply_fields(rec, fields, separator)
        form = _row_form(renamed, kind)
        row = _validate(renamed, form, fields)
    except ValueError as e:
        return str(e)
    return by_form[form.name].add(row, path, file_index, line)


def _row_form(rec: dict[str, Any], kind: Kind) -> Form:
    """The form of ``kind`` whose required fields ``rec`` (renamed by ``fields``) fills.

    With none filled, the form it fills most (then has most of, null or not), so that the
    error names what is missing. Raises ValueError when it fills two: which one's text
    to curate is unclear.
    """
    forms = FORMS[kind]
    if len(forms) == 1:
        return forms[0]
    present = set(rec)
    filled = {k for k, v in rec.items() if v is not None}
    full = [form for form in forms if set(form.required) <= filled]
    if len(full) > 1:
        names = ", ".join(f"`{form.name}`" for form in full)
        raise ValueError(f"row has the fields of more than one form ({names}); give each row the fields of one form")
    return full[0] if full else max(forms, key=lambda f: (len(set(f.required) & filled), len(set(f.required) & present)))


def _other_forms(paths: list[Path], groups: Iterable[_FormRows], kept: _FormRows, fields: Fields) -> list[dict[str, Any]]:
    """Quarantine entries for the valid rows of the forms the dataset does not keep.

    Those rows are read again from their files (only their places were kept): a mixed-form
    input pays a second read, a one-form input nothing.
    """
    error = "row is in the `{}` form, but the dataset keeps the `{}` form ({} rows); convert this row or curate it in a separate run"
    wanted: dict[int, dict[int, _FormRows]] = {}
    for group in groups:
        if group is not kept:
            for file_index, line in group.where:
                wanted.setdefault(file_index, {})[line] = group
    out = []
    for file_index, lines in sorted(wanted.items()):
        path = paths[file_index]
        for line, rec, _error, _raw_line in _reader(path)(path, path.name):
            other = lines.get(line)
            if other is not None and rec is not None:
                out.append(
                    _quarantined(
                        str(path),
                        line,
                        _given_id(rec, fields),
                        error.format(other.form.name, kept.form.name, kept.count),
                        json.dumps(rec, ensure_ascii=False, default=str),
                    )
                )
    return out


def _refuse_utf16(path: Path, name: str) -> None:
    """A text input with a UTF-16/32 byte order mark would be quarantined line by line: say why once instead."""
    if path.suffix.lower() not in (".jsonl", ".ndjson", ".json", ".csv"):
        return
    with path.open("rb") as f:
        head = f.read(4)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or head in (b"\x00\x00\xfe\xff",):
        raise InputError(
            f"'{name}' is encoded as UTF-16 or UTF-32 (byte order mark); re-encode it as UTF-8 (e.g. `iconv -f UTF-16 -t UTF-8`)"
        )


def _raw(rec: dict[str, Any]) -> str:
    """A quarantined record as text for the (sensitive) quarantine file, whatever it holds."""
    try:
        return json.dumps(rec, ensure_ascii=False, default=str)[:_RAW_LIMIT]
    except (RecursionError, ValueError):
        return str(rec)[:_RAW_LIMIT]


def quarantine_reason(quarantine: pl.DataFrame) -> str:
    """The most common quarantine error with its count, masked, for a one-line message."""
    if quarantine.is_empty() or "error" not in quarantine.columns:
        return "no error recorded"
    error, n = quarantine.group_by("error").len().sort(["len", "error"], descending=[True, False]).row(0)
    return f"{n} of them: {mask_text(str(error), limit=200)}"


def _quarantined(source: str, line: int, given_id: str | None, error: str | None, raw: str | None) -> dict[str, Any]:
    clean_raw = _valid_utf8((raw or "")[:_RAW_LIMIT])
    return {"stage": "ingest", "source": _valid_utf8(source), "line": line, "id": given_id, "error": error, "raw": clean_raw}


def _no_rows(paths: list[Path], shown: Callable[[str | Path], str]) -> str:
    if len(paths) > 1:
        return f"input has no rows: none of the {len(paths)} input files holds a record; point `input.path` to files with records"
    what = "only a header row" if paths[0].suffix.lower() == ".csv" else "no records"
    return f"input has no rows: '{shown(paths[0].name)}' holds {what}; point `input.path` to a file with records"


def read_any(path: Path) -> pl.DataFrame:
    """Read a tabular file whole (used for small side inputs such as reference samples)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pl.read_parquet(path)
    if suffix == ".csv":
        return pl.read_csv(path, infer_schema=False)
    if suffix in (".jsonl", ".ndjson"):
        return pl.read_ndjson(io.BytesIO(path.read_bytes().removeprefix(_BOM)))
    if suffix == ".json":
        return pl.DataFrame(json.loads(path.read_text(encoding="utf-8-sig")))
    raise InputError(f"'{mask_path(path.name)}' has unsupported extension '{suffix}'; use one of {', '.join(SUPPORTED)}")
