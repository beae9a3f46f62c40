"""Inputs on a cluster filesystem (``s3://``, ``hdfs://``, ``gs://``, ``abfss://``, ``file://``), read by Spark.

Spark's ``binaryFile`` source reads each matched file whole, through the filesystems the
cluster is configured for (S3A, HDFS, GCS, ABFS), and the bytes come to the driver. There
each file is written to a private temporary folder and goes through the local ingest
unchanged: the same JSONL/JSON/CSV/Parquet readers, the same validation, the same
quarantine entries with the same errors and line numbers. A local copy names itself by
its URI (``str``), so sources, manifests and the input fingerprint name the URI.

Limits of this version: the files are collected to the driver (each under 2 GB, Spark's
limit for one binary value), and the copies live in a private (0700) folder of the system
temporary folder until the process exits. A killed process cannot remove its folder: the
next run that fetches inputs removes every such folder whose process is gone
(``sweep_stale_copies``), so raw input does not linger.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from curation.core.errors import InputError
from curation.core.masking import mask_path

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


PREFIX = "tuneprep-inputs-"


def sweep_stale_copies(root: Path | None = None) -> list[Path]:
    """Remove the input copies of processes that are gone (killed before their exit hook ran)."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        pid = folder.name[len(PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


class FetchedFile(type(Path())):  # type: ignore[misc]
    """A local copy of a remote input: opened and read here, named by its URI."""

    uri: str

    def __str__(self) -> str:
        return self.uri

    def __fspath__(self) -> str:
        return super().__str__()


def fetch_inputs(spark: SparkSession, uri: str, *, show_paths: bool = False) -> list[Path]:
    """The files ``uri`` (a file, folder or glob) matches, read by Spark, as local copies sorted by URI.

    Raises:
        InputError: nothing matches, or Spark cannot read the files (one line).
    """
    from curation.spark.session import to_polars

    shown = uri if show_paths else mask_path(uri)
    try:
        files = to_polars(spark.read.format("binaryFile").load(uri).select("path", "content")).sort("path")
    except Exception as e:  # a missing path, a filesystem Spark is not configured for, no credentials
        why = re.search(r"\[([A-Z_.]+)\]", str(e))  # Spark's error class; its message would repeat the path
        raise InputError(
            f"`input.path` '{shown}' cannot be read by Spark ({why.group(1) if why else type(e).__name__}); "
            "check the URI and the cluster's access to it"
        ) from None
    if files.is_empty():
        raise InputError(f"`input.path` '{shown}' matches no file; check the URI (a file, a folder or a glob)")
    sweep_stale_copies()
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    out: list[Path] = []
    for i, (path, content) in enumerate(files.iter_rows()):
        local = folder / f"{i:05d}" / path.rsplit("/", 1)[-1]
        local.parent.mkdir()
        local.write_bytes(content)
        fetched = FetchedFile(local)
        fetched.uri = path
        out.append(fetched)
    return out
