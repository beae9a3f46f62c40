"""The Spark session a run uses, and frames to and from it as Arrow.

A session comes from, in order: ``--spark-remote`` (Spark Connect), ``--spark-master``,
``SPARK_REMOTE`` in the environment, the session ``spark-submit`` or a notebook started,
else ``local[*]``. Python workers run this interpreter (``PYSPARK_PYTHON``) unless the
cluster says otherwise, so they see the same polars and pyarrow.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import polars as pl

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


def to_spark(spark: SparkSession, df: pl.DataFrame) -> DataFrame:
    """A Spark DataFrame of ``df`` (shipped from this process as Arrow)."""
    return spark.createDataFrame(df.to_arrow(compat_level=pl.CompatLevel.oldest()))


def to_polars(sdf: DataFrame) -> pl.DataFrame:
    """Collect ``sdf`` to this process as a polars frame."""
    out = pl.from_arrow(sdf.toArrow())
    assert isinstance(out, pl.DataFrame)
    return out
