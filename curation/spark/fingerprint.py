"""The v4 dataset fingerprint of a Spark DataFrame, without the driver holding the rows.

The row digests come from the local engine's own kernel (``curation.core.fingerprint``)
in ``mapInArrow``: each Arrow batch as polars, the same canonical NDJSON lines, one
SHA-256 each. The cluster orders them by (``id``, digest) and packs each ordered batch
into one blob; the driver streams the blobs in order with ``toLocalIterator`` into the
SHA-256 after the header, so it holds one blob at a time. The header's schema comes
from the DataFrame's Spark types under the same canonical names. DataFrame API only,
so it runs over Spark Connect too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from curation.core.errors import RunError
from curation.core.fingerprint import combine, row_digests

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def spark_fingerprint(sdf: DataFrame) -> str:
    """The fingerprint ``file_fingerprint`` gives the same rows (``curation.core.fingerprint``).

    ``sdf`` is evaluated more than once (its ``count``, the sort's sampling, the pass that
    hashes it): give it a DataFrame read from files (as a stage's written output is), not
    an expensive plan.

    Raises:
        RunError: the DataFrame gave a different number of rows on a second evaluation
            (a non-deterministic plan: fingerprint a written copy instead).
    """
    from pyspark.sql.types import BinaryType, LongType, StructField, StructType

    columns = {f.name: spark_type(f.dataType) for f in sdf.schema.fields}
    has_id = "id" in columns
    keys = [sdf.schema["id"]] if has_id else []
    digests = sdf.mapInArrow(_digest_kernel, StructType([*keys, StructField("digest", BinaryType())]))
    ordered = digests.orderBy(*(["id"] if has_id else []), "digest").select("digest")
    packed = ordered.mapInArrow(_pack_kernel, StructType([StructField("rows", LongType()), StructField("blob", BinaryType())]))
    rows = sdf.count()
    seen = 0

    def blobs() -> Iterator[bytes]:
        nonlocal seen
        for row in packed.toLocalIterator():
            seen += row["rows"]
            yield bytes(row["blob"])

    fingerprint = combine(columns, rows, blobs())
    if seen != rows:
        raise RunError(f"the Spark DataFrame gave {rows} rows, then {seen} when fingerprinted; fingerprint a written copy of it")
    return fingerprint


def _digest_kernel(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: each row's digest, beside its id when there is one."""
    for batch in batches:
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        blob = row_digests(frame)
        digests = pa.FixedSizeBinaryArray.from_buffers(pa.binary(32), batch.num_rows, [None, pa.py_buffer(blob)]).cast(pa.binary())
        ids = [batch.column(batch.schema.get_field_index("id"))] if "id" in batch.schema.names else []
        yield pa.RecordBatch.from_arrays([*ids, digests], names=[*(["id"] if ids else []), "digest"])


def _pack_kernel(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: a batch of ordered digests as one blob (order kept: the step is narrow)."""
    for batch in batches:
        blob = b"".join(batch.column(0).to_pylist())
        yield pa.RecordBatch.from_pylist([{"rows": batch.num_rows, "blob": blob}])


def spark_type(dtype: Any) -> str:
    """The canonical name (``curation.core.fingerprint.canonical_type``) of a Spark SQL type."""
    from pyspark.sql import types as T

    if isinstance(dtype, T.ByteType | T.ShortType | T.IntegerType | T.LongType):
        return "integer"
    if isinstance(dtype, T.ArrayType):
        return f"array<{spark_type(dtype.elementType)}>"
    if isinstance(dtype, T.StructType):
        return "struct<" + ",".join(f"{f.name}:{spark_type(f.dataType)}" for f in dtype.fields) + ">"
    if isinstance(dtype, T.MapType):  # polars reads a map as a list of key/value structs
        return f"array<struct<key:{spark_type(dtype.keyType)},value:{spark_type(dtype.valueType)}>>"
    if isinstance(dtype, T.DecimalType):
        return f"decimal({dtype.precision},{dtype.scale})"
    if isinstance(dtype, T.DayTimeIntervalType):
        return "duration"
    simple = {T.StringType: "string", T.BinaryType: "binary", T.BooleanType: "boolean", T.FloatType: "float", T.DoubleType: "double"}
    simple |= {T.DateType: "date", T.TimestampType: "timestamp", T.TimestampNTZType: "timestamp_ntz", T.NullType: "null"}
    for base, name in simple.items():
        if isinstance(dtype, base):
            return name
    if type(dtype).__name__ in ("VarcharType", "CharType"):
        return "string"
    return str(dtype.simpleString())
