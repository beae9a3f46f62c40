"""Reading a run directory's JSON files defensively: a damaged file is one line, not a traceback.

A run directory is written by tuneprep, but it is a folder on disk: a file can be cut
short by a full disk, edited by hand or replaced. Every command reads its JSON files
through ``read_json_object`` and the manifest's shape through ``check_manifest``, so a
damaged run gives a ``RunError`` that names the file and says to rerun ``tuneprep run``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from curation.core.errors import RunError

_RERUN = "rerun `tuneprep run` on the run's config (with `--out` this run) to rewrite it"
# top-level manifest keys a command reads, and the JSON type each must have
_MANIFEST_TYPES: dict[str, tuple[type, ...]] = {
    "run_id": (str,),
    "kind": (str,),
    "stages": (list,),
    "dataset": (dict,),
    "config": (dict,),
    "inputs": (list,),
    "quarantine": (dict,),
    "sensitive_paths": (list,),
    "checks": (dict,),
    "training": (dict, list),
}
_REQUIRED = ("kind", "stages", "dataset")
_STAGE_TYPES: dict[str, tuple[type, ...]] = {"name": (str,), "dir": (str,), "index": (int,), "books": (dict,)}
_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer"}


def read_json_object(path: Path, *, missing_ok: bool = False) -> dict[str, Any]:
    """A run file that must hold a JSON object; ``{}`` for a missing file when ``missing_ok``.

    Raises:
        RunError: the file is missing (unless ``missing_ok``), unreadable, not JSON or not an object.
    """
    if not path.is_file():
        if missing_ok:
            return {}
        raise RunError(f"'{path}' is missing; {_RERUN}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise RunError(f"'{path}' is not valid JSON ({type(e).__name__}); {_RERUN}") from None
    except OSError as e:
        raise RunError(f"'{path}' cannot be read ({e.strerror}); check its permissions") from None
    if not isinstance(data, dict):
        raise RunError(f"'{path}' does not hold a JSON object; {_RERUN}")
    return data


def check_manifest(manifest: dict[str, Any], path: Path) -> dict[str, Any]:
    """``manifest`` when the keys commands read have their types, else a one-line RunError."""
    problems = [f"no `{k}`" for k in _REQUIRED if k not in manifest]
    problems += [
        f"`{k}` is not {_NAMES[types[0]]}" for k, types in _MANIFEST_TYPES.items() if k in manifest and not isinstance(manifest[k], types)
    ]
    stages = manifest.get("stages")
    if isinstance(stages, list):
        for i, entry in enumerate(stages):
            bad = not isinstance(entry, dict) or any(not isinstance(entry.get(k), t) for k, t in _STAGE_TYPES.items())
            if bad:
                problems.append(f"`stages[{i}]` is not a stage entry with `name`, `dir`, `index` and `books`")
                break
    if isinstance(manifest.get("sensitive_paths"), list) and not all(isinstance(p, str) for p in manifest["sensitive_paths"]):
        problems.append("`sensitive_paths` is not a list of paths")
    if problems:
        raise RunError(f"'{path}' is damaged ({'; '.join(problems)}); {_RERUN}")
    return manifest


_STATS_TYPES: dict[str, type] = {"books": dict, "dropped_by_reason": dict, "config": dict, "metrics": dict}


def read_stats(path: Path, *, missing_ok: bool = False) -> dict[str, Any]:
    """A stage's ``stats.json``: an object whose ``books``, ``dropped_by_reason``, ``config`` and ``metrics`` are objects.

    Raises:
        RunError: the file is damaged (see ``read_json_object``) or a section has the wrong type.
    """
    stats = read_json_object(path, missing_ok=missing_ok)
    bad = [k for k, t in _STATS_TYPES.items() if k in stats and not isinstance(stats[k], t)]
    books = stats.get("books")
    if isinstance(books, dict) and not all(isinstance(v, int) for v in books.values()):
        bad.append("books")
    if bad:
        raise RunError(f"'{path}' is damaged (`{'`, `'.join(bad)}` has the wrong type); {_RERUN}")
    return stats
