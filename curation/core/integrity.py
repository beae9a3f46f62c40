"""Tamper evidence and exclusive use of a run folder.

Signatures: an HMAC-SHA256 over canonical JSON, with a key taken from the environment
(``TUNEPREP_SIGNING_KEY``) or a key file (``TUNEPREP_SIGNING_KEY_FILE``), never from the
config, so whoever can edit a run folder cannot re-sign what they edited. Without a key
nothing is signed and nothing can be verified; ``check`` says so.

The run lock: ``RUN/.lock`` holds the pid, host and start time of the ``tuneprep run`` that
writes the folder, created with ``O_EXCL`` so two runs cannot both hold it. A lock whose
process is gone (killed) is stale and is taken over by the next run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from curation.core.errors import ConfigError, RunError

try:
    import fcntl
except ImportError:  # Windows: no flock; the O_EXCL lock file still guards the folder
    fcntl = None  # type: ignore[assignment]

KEY_ENV = "TUNEPREP_SIGNING_KEY"
KEY_FILE_ENV = "TUNEPREP_SIGNING_KEY_FILE"
MIN_KEY_BYTES = 16
LOCK = ".lock"
Status = Literal["valid", "invalid", "other_key", "unsigned", "no_key"]


# ---------------------------------------------------------------------------- signatures
def signing_key() -> bytes | None:
    """The signing key from the environment or the key file it names; None when neither is set.

    Raises:
        ConfigError: the key file cannot be read, or the key is shorter than 16 bytes.
    """
    key: bytes | None = None
    if os.environ.get(KEY_ENV):
        key = os.environ[KEY_ENV].encode("utf-8")
    elif os.environ.get(KEY_FILE_ENV):
        path = Path(os.environ[KEY_FILE_ENV])
        try:
            key = path.read_bytes().strip()
        except OSError as e:
            raise ConfigError(f"`{KEY_FILE_ENV}`: cannot read the key file '{path}' ({e.strerror}); point it at a readable file") from None
    if key is not None and len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"the signing key (`{KEY_ENV}` or `{KEY_FILE_ENV}`) must be at least {MIN_KEY_BYTES} bytes, got {len(key)}")
    return key


def key_id(key: bytes) -> str:
    """A short public name of a key, to tell "signed with another key" from "edited"."""
    return hashlib.sha256(b"tuneprep-key-id:" + key).hexdigest()[:16]


def _mac(data: dict[str, Any], key: bytes) -> str:
    body = {k: v for k, v in data.items() if k != "signature"}
    payload = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def signed(data: dict[str, Any], key: bytes | None) -> dict[str, Any]:
    """``data`` with a ``signature`` over everything else; without a key, with no signature."""
    body = {k: v for k, v in data.items() if k != "signature"}
    if key is None:
        return body
    return {**body, "signature": {"alg": "hmac-sha256", "key_id": key_id(key), "mac": _mac(body, key)}}


def signature_status(data: dict[str, Any], key: bytes | None) -> Status:
    """Whether ``data['signature']`` proves ``data`` unchanged since it was signed with ``key``."""
    if key is None:
        return "no_key"
    sig = data.get("signature")
    if not isinstance(sig, dict) or not isinstance(sig.get("mac"), str):
        return "unsigned"
    if sig.get("key_id") != key_id(key):
        return "other_key"
    return "valid" if hmac.compare_digest(sig["mac"], _mac(data, key)) else "invalid"


def unsigned_note() -> str | None:
    """One line for ``check`` when no key is set: the verdict it wrote is not tamper-evident."""
    if signing_key() is not None:
        return None
    return f"note: the verdict is unsigned; set `{KEY_ENV}` or `{KEY_FILE_ENV}` to make the manifest and verdict tamper-evident"


# ---------------------------------------------------------------------------- the run lock
def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return None if fields[0] == "Z" else fields[19]  # a zombie has exited


def process_alive(pid: int, host: str, proc_start: str | None = None) -> bool | None:
    """True/False for a process on this host; None when it runs elsewhere (cannot tell)."""
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process
    if Path("/proc").is_dir():
        now = _proc_start(pid)
        return now is not None and (proc_start is None or now == proc_start)
    return True


def this_process() -> dict[str, Any]:
    """What a lock or a ledger row records about the current process."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "proc_start": _proc_start(pid)}


@dataclass
class RunLock:
    """The held lock of a run folder; ``release`` removes it."""

    path: Path
    stale: dict[str, Any] | None  # the lock of a killed run this one took over, if any

    def release(self) -> None:
        try:
            if _read_lock(self.path).get("pid") == os.getpid():
                self.path.unlink()
        except OSError:
            pass


def _read_lock(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def lock_holder(run_dir: Path) -> dict[str, Any] | None:
    """The lock's content if a live process (or one on another host) holds ``run_dir``, else None."""
    held = _read_lock(Path(run_dir) / LOCK)
    if not isinstance(held.get("pid"), int) or not isinstance(held.get("host"), str):
        return None
    return held if process_alive(held["pid"], held["host"], held.get("proc_start")) is not False else None


def _holder_line(run_dir: Path, held: dict[str, Any]) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(held.get("started", 0)))
    return f"run folder '{run_dir}' is in use by another `tuneprep run` (pid {held['pid']} on {held['host']} since {since})"


def acquire_lock(run_dir: Path) -> RunLock:
    """Create ``RUN/.lock`` exclusively; take over a lock whose process is gone.

    Raises:
        RunError: a live process (or one on another host) holds the folder.
    """
    path = Path(run_dir) / LOCK
    mine = json.dumps({**this_process(), "started": time.time()}).encode("utf-8")
    fd = os.open(run_dir, os.O_RDONLY) if fcntl is not None else None
    try:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # serialises stale-lock takeovers; released on close or death
        stale = None
        if path.exists():
            held = lock_holder(run_dir)
            if held is not None:
                raise RunError(f"{_holder_line(run_dir, held)}; wait for it to finish or pass another `--out`")
            stale = _read_lock(path) or {"pid": None}
            path.unlink(missing_ok=True)
        try:
            lock_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:  # a process without the flock (an older tuneprep) won the race
            raise RunError(f"run folder '{run_dir}' is in use by another `tuneprep run`; pass another `--out`") from None
        with os.fdopen(lock_fd, "wb") as f:
            f.write(mine)
    finally:
        if fd is not None:
            os.close(fd)
    return RunLock(path, stale)


def require_unlocked(run_dir: Path, action: str) -> None:
    """Raise RunError if a live ``tuneprep run`` holds ``run_dir`` (``action`` names what waits)."""
    held = lock_holder(run_dir)
    if held is not None:
        raise RunError(f"{_holder_line(run_dir, held)}; {action} after it finishes")
