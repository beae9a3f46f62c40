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
from curation.core.fingerprint import file_fingerprint, frame_fingerprint  # noqa: F401  (the run directory's fingerprints, re-exported)
from curation.core.integrity import require_unlocked, signature_status, signed, signing_key
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


# ---------------------------------------------------------------------------- fingerprints (rows: curation.core.fingerprint)
def sha256_json(data: Any) -> str:
    """SHA-256 over canonical JSON (sorted keys, no whitespace)."""
    payload = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


def manifest_status(manifest: dict[str, Any]) -> str:
    """The manifest's signature under the current key: valid, invalid, other_key, unsigned or no_key."""
    return signature_status(manifest, signing_key())


def write_manifest(run_dir: Path, manifest: dict[str, Any], *, sign: bool) -> None:
    """Write ``manifest.json``; with ``sign`` and a key set, signed. Stale temporaries are listed as sensitive.

    Without ``sign`` an existing signature block is kept as it is (it no longer matches: the
    manifest reads as edited), so a rewrite never turns an unverified manifest into a signed one.
    """
    listed = [p for p in manifest.get("sensitive_paths", []) if not _is_temporary(p) or (Path(run_dir) / p).exists()]
    manifest = {**manifest, "sensitive_paths": [*listed, *(t for t in stale_temporaries(run_dir) if t not in listed)]}
    key = signing_key()
    write_json(Path(run_dir) / MANIFEST, signed(manifest, key) if sign and key else manifest)


def update_manifest(run_dir: Path, **sections: Any) -> dict[str, Any]:
    """Set top-level sections of the manifest (e.g. ``checks=...``) and rewrite it atomically.

    The result is re-signed only if the manifest read verified under the current key.
    """
    manifest = read_manifest(run_dir)
    status = manifest_status(manifest)
    manifest.update(sections)
    if status == "no_key":  # cannot re-sign: drop the stale signature, the manifest reads as unsigned
        manifest.pop("signature", None)
    write_manifest(run_dir, manifest, sign=status == "valid")
    return read_manifest(run_dir)


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


# ---------------------------------------------------------------------------- temporaries and clean
def _is_temporary(rel: str) -> bool:
    name = Path(rel).name
    return name.startswith(".") and (name.endswith(".tmp") or name.endswith(".old"))


def stale_temporaries(run_dir: Path, *, skip: tuple[str, ...] = ()) -> list[str]:
    """Temporary files and folders left by an interrupted atomic write (``.NAME.*.tmp``, ``.NAME.old``).

    They can hold whole raw-text parquet files; paths are relative to ``run_dir``.
    ``skip`` names top-level folders not to look into (e.g. ``training``).
    """
    run_dir = Path(run_dir)
    found: list[str] = []
    if not run_dir.is_dir():
        return found
    for root, dirs, files in os.walk(run_dir):
        here = Path(root)
        if here == run_dir:
            dirs[:] = [d for d in dirs if d not in skip]
        for name in [*dirs, *files]:
            if _is_temporary(name):
                found.append(str((here / name).relative_to(run_dir)))
        dirs[:] = [d for d in dirs if not _is_temporary(d)]
    return sorted(found)


def sweep_temporaries(run_dir: Path, *, skip: tuple[str, ...] = ()) -> list[str]:
    """Remove what ``stale_temporaries`` finds; returns the removed paths."""
    removed = stale_temporaries(run_dir, skip=skip)
    for rel in removed:
        _remove(Path(run_dir) / rel)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _stage_sensitive_files(run_dir: Path) -> list[str]:
    """What each stage folder's ``_SUCCESS`` marks sensitive; every parquet but findings where it cannot tell."""
    out: list[str] = []
    for stage in sorted((Path(run_dir) / "stages").glob("[0-9]*")):
        rel = f"stages/{stage.name}"
        try:
            listed = json.loads((stage / "_SUCCESS").read_text(encoding="utf-8"))["sensitive_files"]
            out += [f"{rel}/{f}" for f in listed if isinstance(f, str)]
        except (OSError, ValueError, KeyError, TypeError):
            out += [f"{rel}/{p.name}" for p in stage.glob("*.parquet") if p.name != "findings.parquet"]
    return out


def clean_sensitive(run_dir: Path) -> list[str]:
    """Delete the files the manifest and the stage markers mark sensitive, and stale temporaries.

    Works on a run killed before its manifest was written: then the curated set and its
    exports count as sensitive too. Records what was removed in the manifest if there is one.

    Raises:
        RunError: ``run_dir`` is not a run folder, or a live ``tuneprep run`` is writing it.
    """
    run_dir = Path(run_dir)
    require_unlocked(run_dir, "run `tuneprep clean`")
    has_manifest = (run_dir / MANIFEST).is_file()
    if not has_manifest and not (run_dir / "stages").is_dir():
        read_manifest(run_dir)  # raises the usual "not a run directory" error
    manifest = read_manifest(run_dir) if has_manifest else {}
    listed = manifest.get("sensitive_paths", []) if has_manifest else ["quarantine.parquet", str(DATASET), *export_files(run_dir)]
    removed = sweep_temporaries(run_dir)
    for rel in dict.fromkeys([*listed, *_stage_sensitive_files(run_dir)]):
        path = run_dir / rel
        if isinstance(rel, str) and path.is_file():
            path.unlink()
            removed.append(rel)
    if has_manifest:
        update_manifest(run_dir, cleaned={"removed": sorted(set(manifest.get("cleaned", {}).get("removed", [])) | set(removed))})
    return removed
