"""The run directory: atomic writes, fingerprints and the manifest.

Layout (design.md): ``config.yaml``, ``quarantine.parquet``, ``stages/NN-<stage>/``,
``dataset/``, ``checks/``, ``report/``, ``manifest.json``. Every file is written to a
temporary name and renamed into place, so no partial file is ever visible under its
final name; a stage directory is assembled under a temporary name and renamed whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from curation.core.errors import RunError
from curation.core.runfiles import check_manifest

DATASET = Path("dataset") / "data.parquet"
MANIFEST = "manifest.json"


# ---------------------------------------------------------------------------- atomic writes
@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: Path, data: Any) -> None:
    write_bytes(path, (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode("utf-8"))


def write_parquet(path: Path, df: pl.DataFrame) -> None:
    with atomic_path(path) as tmp:
        df.write_parquet(tmp, statistics=False)


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Build a directory under a temporary name; on success replace ``path`` with it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            shutil.rmtree(old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------- fingerprints
def sha256_json(data: Any) -> str:
    """SHA-256 over canonical JSON (sorted keys, no whitespace)."""
    payload = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def frame_fingerprint(df: pl.DataFrame) -> str:
    """SHA-256 over a canonical serialisation: the schema, then the rows as NDJSON.

    Row order counts; column order does not (columns are sorted by name).
    """
    df = df.select(sorted(df.columns))
    h = hashlib.sha256(json.dumps({k: str(v) for k, v in df.schema.items()}, sort_keys=True).encode())
    for start in range(0, max(df.height, 1), 200_000):
        h.update(df.slice(start, 200_000).write_ndjson().encode("utf-8"))
    return h.hexdigest()


def file_fingerprint(path: Path) -> str:
    """The fingerprint of a parquet file's rows (not its bytes, which vary by writer)."""
    return frame_fingerprint(read_run_parquet(path))


# ---------------------------------------------------------------------------- manifest
def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        raise RunError(f"'{run_dir}' is not a tuneprep run directory (no {MANIFEST}); pass a folder made by `tuneprep run`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"'{path}' is not valid JSON ({_reason(e)}); rerun `tuneprep run` on the run's config to rewrite it") from None
    if not isinstance(manifest, dict):
        raise RunError(
            f"'{path}' is not a tuneprep manifest (expected a JSON object); rerun `tuneprep run` on the run's config to rewrite it"
        )
    return check_manifest(manifest, path)


def update_manifest(run_dir: Path, **sections: Any) -> dict[str, Any]:
    """Set top-level sections of the manifest (e.g. ``checks=...``) and rewrite it atomically."""
    manifest = read_manifest(run_dir)
    manifest.update(sections)
    write_json(Path(run_dir) / MANIFEST, manifest)
    return manifest


def load_dataset(run_dir: Path) -> pl.DataFrame:
    path = Path(run_dir) / DATASET
    if not path.is_file():
        raise RunError(f"'{run_dir}' has no curated dataset ({DATASET}); rerun `tuneprep run` on its config")
    return read_run_parquet(path)


def read_run_parquet(path: Path) -> pl.DataFrame:
    """Read a parquet file of a run directory; a damaged one is a RunError that says how to remake it."""
    try:
        return pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as e:
        raise RunError(
            f"'{path}' is not a readable parquet file ({_reason(e)}); rerun `tuneprep run` on the run's config to rewrite it"
        ) from None


def _reason(e: Exception) -> str:
    """The first line of an exception's message, for a one-line error."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def export_files(run_dir: Path) -> list[str]:
    """The files under ``dataset/exports/``, relative to the run directory."""
    exports = Path(run_dir) / "dataset" / "exports"
    return sorted(str(p.relative_to(run_dir)) for p in exports.rglob("*") if p.is_file()) if exports.is_dir() else []


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    names = [
        "tuneprep",
        "polars",
        "datasketch",
        "presidio-analyzer",
        "presidio-anonymizer",
        "spacy",
        "great-expectations",
        "transformers",
        "torch",
        "peft",
        "scikit-learn",
        "sentence-transformers",
    ]
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    import platform

    out["python"] = platform.python_version()
    return out


def clean_sensitive(run_dir: Path) -> list[str]:
    """Delete the files the manifest marks sensitive; record that in the manifest."""
    manifest = read_manifest(run_dir)
    removed = []
    for rel in manifest.get("sensitive_paths", []):
        path = Path(run_dir) / rel
        if path.is_file():
            path.unlink()
            removed.append(rel)
    update_manifest(run_dir, cleaned={"removed": sorted(set(manifest.get("cleaned", {}).get("removed", [])) | set(removed))})
    return removed
