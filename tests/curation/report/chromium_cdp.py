"""Drive headless Chromium over the DevTools protocol on a pipe (no port, no websocket).

``--remote-debugging-pipe`` makes Chromium read NUL-terminated JSON commands on fd 3
and write responses and events on fd 4. Opening a page with the Network, Runtime and
Log domains enabled records every request the page makes, every console message and
every uncaught exception, which is what the report tests assert on.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--remote-debugging-pipe",
]


def chromium_path() -> str | None:
    return CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")


@dataclass
class PageLoad:
    """What happened while a page loaded."""

    requests: list[str] = field(default_factory=list)  # every URL the page requested
    console: list[dict[str, Any]] = field(default_factory=list)  # console API calls and log entries
    exceptions: list[str] = field(default_factory=list)
    screenshot: bytes = b""
    print_screenshot: bytes = b""
    pdf: bytes = b""


class Browser:
    """A headless Chromium with one page, driven through the DevTools pipe."""

    def __init__(self, user_data_dir: Path) -> None:
        exe = chromium_path()
        assert exe, "chromium is not installed; `make test` installs it (apt-get install chromium)"
        self._to_chrome_r, self._to_chrome_w = os.pipe()
        self._from_chrome_r, self._from_chrome_w = os.pipe()
        r, w = self._to_chrome_r, self._from_chrome_w

        def fds() -> None:  # the child reads commands on fd 3 and writes answers on fd 4
            high_r, high_w = fcntl.fcntl(r, fcntl.F_DUPFD, 10), fcntl.fcntl(w, fcntl.F_DUPFD, 10)  # r or w may be 3 or 4 already
            os.dup2(high_r, 3)  # dup2 makes the new fd inheritable across exec
            os.dup2(high_w, 4)

        self.proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
            preexec_fn=fds,  # the child only dups two fds before exec
            close_fds=False,  # keep the dup'ed fds 3 and 4; every other fd of ours is non-inheritable
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(r)
        os.close(w)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None, timeout: float = 30) -> dict[str, Any]:
        """Send one command and wait for its answer, keeping events seen meanwhile."""
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self._read()
            if reply.get("id") == self._next_id:
                assert "error" not in reply, f"{method}: {reply['error']}"
                return reply.get("result", {})
            self.events.append(reply)
        raise TimeoutError(f"no answer to {method} within {timeout}s")

    def wait_for(self, method: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((e for e in self.events if e.get("method") == method), None)
            if found:
                return found
            self.events.append(self._read())
        raise TimeoutError(f"no {method} event within {timeout}s")

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buf:
            chunk = os.read(self._from_chrome_r, 1 << 20)
            if not chunk:
                raise ConnectionError("chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)  # type: ignore[no-any-return]

    def close(self) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError, OSError, AssertionError):
            self.send("Browser.close", timeout=5)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome_w)
        os.close(self._from_chrome_r)


def load_page(url: str, user_data_dir: Path, *, width: int = 1200) -> PageLoad:
    """Open ``url`` in a fresh headless Chromium; record requests, console output, screenshots."""
    b = Browser(user_data_dir)
    try:
        target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            b.send(f"{domain}.enable", session=session)
        b.send(
            "Emulation.setDeviceMetricsOverride", {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session
        )
        b.events.clear()
        b.send("Page.navigate", {"url": url}, session=session)
        b.wait_for("Page.loadEventFired")
        out = PageLoad()
        out.screenshot = _full_page(b, session)
        b.send("Emulation.setEmulatedMedia", {"media": "print"}, session=session)
        out.print_screenshot = _full_page(b, session)
        out.pdf = base64.b64decode(
            b.send("Page.printToPDF", {"printBackground": True, "preferCSSPageSize": True}, session=session, timeout=60)["data"]
        )
        _collect(b.events, out)
        return out
    finally:
        b.close()


def _full_page(b: Browser, session: str) -> bytes:
    metrics = b.send("Page.getLayoutMetrics", session=session)
    size = metrics["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = b.send("Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True}, session=session, timeout=60)
    return base64.b64decode(shot["data"])


def _collect(events: list[dict[str, Any]], out: PageLoad) -> None:
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Network.requestWillBeSent":
            out.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled":
            out.console.append(
                {
                    "level": params.get("type"),
                    "text": " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])),
                }
            )
        elif method == "Log.entryAdded":
            out.console.append({"level": params["entry"].get("level"), "text": params["entry"].get("text")})
        elif method == "Runtime.exceptionThrown":
            out.exceptions.append(str(params.get("exceptionDetails", {}).get("text")))
