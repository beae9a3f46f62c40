"""The Spark session a run uses, and frames to and from it as Arrow.

A session comes from, in order: ``--spark-remote`` (Spark Connect), ``--spark-master``,
``SPARK_REMOTE`` in the environment, the session ``spark-submit`` or a notebook started,
else ``local[*]``. Python workers run this interpreter (``PYSPARK_PYTHON``) unless the
cluster says otherwise, so they see the same polars and pyarrow.
"""

from __future__ import annotations

import io
import os
import re
import socket
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import polars as pl
import pyarrow as pa

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def open_session(*, master: str | None = None, remote: str | None = None) -> tuple[SparkSession, bool]:
    """The session to run on, and whether it was started here (then the engine stops it)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and not (master or remote):
        return active, False
    builder: Any = SparkSession.builder.appName("tuneprep")
    if not (remote or master) and (os.environ.get("SPARK_REMOTE") or os.environ.get("PYSPARK_GATEWAY_PORT")):
        return builder.getOrCreate(), True  # spark-submit's master, or the Connect server in SPARK_REMOTE
    where = remote or master or "local[*]"
    if where.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # on one machine, workers run this interpreter
    if remote:
        _reachable(remote)
        spark = builder.remote(remote).getOrCreate()
        spark.version  # noqa: B018  (Connect connects lazily: reach the server now, not mid-stage)
        return _sized(spark, where), True
    builder = builder.master(where)
    if where.startswith("local"):
        builder = builder.config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
    return _sized(builder.getOrCreate(), where), True


def _reachable(remote: str) -> None:
    """Fail fast on a Connect server nobody answers at (the client would retry for minutes)."""
    url = urlparse(remote.split("/;")[0])
    if url.scheme != "sc":
        return
    try:
        socket.create_connection((url.hostname or "localhost", url.port or 15002), timeout=10).close()
    except OSError as e:
        raise ConnectionError(f"no Spark Connect server answers at {url.hostname}:{url.port or 15002} ({e.strerror or e})") from None


def _sized(spark: SparkSession, where: str) -> SparkSession:
    """On one machine (``local[N]``), shuffles in 2N partitions, not a cluster's default 200 (a runtime conf: Connect allows it)."""
    cores = re.fullmatch(r"local\[(\d+)(,\d+)?\]", where)
    if where.startswith("local"):
        n = int(cores.group(1)) if cores else (os.cpu_count() or 1)
        spark.conf.set("spark.sql.shuffle.partitions", str(2 * n))
    return spark


BLOB_ROWS = 5000  # rows per shipped Arrow IPC blob: the unit of work of a per-row stage's task


def ship(spark: SparkSession, df: pl.DataFrame, *, rows: int = BLOB_ROWS) -> DataFrame:
    """``df`` on the cluster as one ``data`` (Arrow IPC) blob per ``rows`` rows, spread over the cluster.

    Blobs keep every polars type exactly and need only ``createDataFrame`` of binary
    values, which every PySpark >= 3.5 has, classic and Connect alike.
    """
    blobs = [(ipc_bytes(df.slice(start, rows)),) for start in range(0, df.height, rows)]
    sdf = spark.createDataFrame(blobs, "data binary")
    return sdf.repartition(len(blobs)) if len(blobs) > 1 else sdf


def unpack(blobs: DataFrame, schema: str) -> DataFrame:
    """Shipped blobs back into Spark columns (``schema``: their DDL, e.g. ``"rank long, key string"``)."""
    return blobs.mapInArrow(_unpack_kernel, schema)


def _unpack_kernel(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        for blob in batch.column(0).to_pylist():
            yield from arrow_batches(pl.read_ipc(io.BytesIO(blob)))


def arrow_batches(frame: pl.DataFrame) -> Iterator[pa.RecordBatch]:
    """A polars frame as Arrow batches of the types Spark reads (``string``, ``binary``: not their large forms)."""
    table = frame.to_arrow(compat_level=pl.CompatLevel.oldest())
    small = {pa.large_string(): pa.string(), pa.large_binary(): pa.binary()}
    yield from table.cast(pa.schema([pa.field(f.name, small.get(f.type, f.type)) for f in table.schema])).to_batches()


def ipc_bytes(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.write_ipc(buf)
    return buf.getvalue()


_POLARS = {"bigint": pl.Int64, "int": pl.Int32, "double": pl.Float64, "binary": pl.Binary, "string": pl.String, "boolean": pl.Boolean}


def to_polars(sdf: DataFrame) -> pl.DataFrame:
    """Collect ``sdf`` (flat columns) to this process: as Arrow on PySpark 4, as rows before."""
    if hasattr(sdf, "toArrow"):
        out = pl.from_arrow(sdf.toArrow())
        assert isinstance(out, pl.DataFrame)
        return out
    schema = {f.name: _POLARS[f.dataType.simpleString()] for f in sdf.schema.fields}
    rows = sdf.collect()
    cell = lambda v: bytes(v) if isinstance(v, bytearray) else v  # noqa: E731  (PySpark 3.5 gives binary as bytearray)
    return pl.DataFrame({name: [cell(row[i]) for row in rows] for i, name in enumerate(schema)}, schema=schema)
