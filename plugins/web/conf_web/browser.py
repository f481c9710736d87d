"""A headless Chromium driven through the Chrome DevTools protocol, for tests of the web page.

Chromium talks DevTools over a pipe (``--remote-debugging-pipe``: commands on its fd 3, answers on its
fd 4, each message JSON ended by a NUL byte), so no debugging port is opened and the browser can run in
another network namespace (``prefix=["ip", "netns", "exec", NAME]``) while the test drives it from
outside. The browser is started and stopped by its PID.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

CHROMIUM = "/usr/bin/chromium"

_KEYS = {"Enter": (13, "\r"), "Escape": (27, ""), "Tab": (9, "")}  # key: (key code, text typed)

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--remote-debugging-pipe",
    "--window-size=1280,800",
)


def chromium_path() -> str | None:
    """Debian's chromium, if installed."""
    return CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")


class BrowserError(RuntimeError):
    """The browser failed, or a command it was given failed."""


class Browser:
    """One headless Chromium with an empty profile and one page."""

    def __init__(self, url: str, prefix: Sequence[str] = (), extra_flags: Sequence[str] = ()) -> None:
        path = chromium_path()
        if path is None:
            raise BrowserError("chromium is not installed (apt-get install chromium)")
        self.profile = tempfile.mkdtemp(prefix="conf-web-profile-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def remap() -> None:  # runs in the child: the pipe ends become fds 3 and 4, kept across exec
            reading, writing = os.dup(to_browser_r), os.dup(from_browser_w)  # out of 3 and 4's way
            os.dup2(reading, 3)
            os.dup2(writing, 4)

        self.process = subprocess.Popen(
            [*prefix, path, *FLAGS, *extra_flags, f"--user-data-dir={self.profile}", url],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=remap,
            close_fds=False,  # keep the dup2'ed 3 and 4; conf's own descriptors are not inheritable
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.stderr: list[str] = []
        self._answers: dict[int, queue.Queue[dict[str, Any]]] = {}
        self.console: list[str] = []
        self._next_id = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self.session = self._attach_page()

    @property
    def pid(self) -> int:
        return self.process.pid

    # -- the protocol ---------------------------------------------------------------------------------

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                for waiting in self._answers.values():
                    waiting.put({"error": {"message": "the browser exited"}})
                return
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "id" in message and message["id"] in self._answers:
                    self._answers[message["id"]].put(message)
                elif message.get("method") == "Runtime.consoleAPICalled":
                    args = message["params"].get("args", [])
                    self.console.append(" ".join(str(a.get("value", a.get("description"))) for a in args))

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line.decode(errors="replace").rstrip())

    def command(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 30,
    ) -> dict[str, Any]:
        """Send one DevTools command and wait for its result."""
        with self._lock:
            self._next_id += 1
            ident = self._next_id
        answer: queue.Queue[dict[str, Any]] = queue.Queue()
        self._answers[ident] = answer
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        try:
            reply = answer.get(timeout=timeout)
        except queue.Empty:
            raise BrowserError(f"the browser did not answer {method} within {timeout} s") from None
        finally:
            del self._answers[ident]
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def _attach_page(self) -> str:
        targets = self.command("Target.getTargets")["targetInfos"]
        pages = [t for t in targets if t["type"] == "page"]
        if not pages:
            raise BrowserError("the browser opened no page")
        session = self.command("Target.attachToTarget", {"targetId": pages[0]["targetId"], "flatten": True})
        session_id = str(session["sessionId"])
        self.command("Runtime.enable", session=session_id)
        return session_id

    # -- what tests use -------------------------------------------------------------------------------

    def evaluate(self, expression: str, timeout: float = 30) -> Any:
        """Evaluate JavaScript in the page (promises are awaited); return its JSON value."""
        result = self.command(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True, "userGesture": True},
            session=self.session,
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"page script failed: {text}")
        return result["result"].get("value")

    def navigate(self, url: str, timeout: float = 30) -> None:
        """Open ``url`` in the page and wait until it has loaded."""
        self.command("Page.navigate", {"url": url}, session=self.session, timeout=timeout)
        deadline = time.monotonic() + timeout
        while self.evaluate("document.readyState") != "complete" or self.evaluate("location.href") != url:
            if time.monotonic() > deadline:
                raise BrowserError(f"{url} did not load within {timeout} s")
            time.sleep(0.05)

    def wait_for(self, expression: str, timeout: float = 30) -> Any:
        """Evaluate ``expression`` until it is truthy; return its value.

        A script error counts as not yet (the page may still be loading) until the time is up.
        """
        deadline = time.monotonic() + timeout
        while True:
            value: Any
            try:
                value = self.evaluate(expression)
            except BrowserError as exc:
                if "page script failed" not in str(exc):
                    raise
                value = str(exc)
            else:
                if value:
                    return value
            if time.monotonic() > deadline:
                raise BrowserError(
                    f"{expression} stayed {value!r} for {timeout} s; console: {self.console[-5:]}"
                )
            time.sleep(0.1)

    def screenshot(self, clip: dict[str, float] | None = None) -> bytes:
        """A PNG of the page as it is shown (of the ``clip`` rectangle: x, y, width, height in CSS px)."""
        params: dict[str, Any] = {"format": "png"}
        if clip is not None:
            params["clip"] = {**clip, "scale": 1}
        data = self.command("Page.captureScreenshot", params, session=self.session)["data"]
        return base64.b64decode(data)

    def viewport(self, width: int, height: int, mobile: bool = False) -> None:
        """Lay the page out in a window of ``width`` x ``height`` CSS pixels (a phone's, with ``mobile``)."""
        self.command(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
            session=self.session,
        )

    def press(self, key: str) -> None:
        """Press and release one key (``Enter``, ``Escape``, ``Tab`` ...) in the page, as a person would."""
        code, text = _KEYS[key]
        for kind in ("keyDown", "keyUp"):
            event: dict[str, Any] = {"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code}
            if kind == "keyDown" and text:
                event["text"] = text
            self.command("Input.dispatchKeyEvent", event, session=self.session)

    def close(self) -> None:
        """Stop the browser by its PID and remove its profile."""
        if self.process.poll() is None:
            with contextlib.suppress(BrowserError, OSError):
                self.command("Browser.close", timeout=5)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait(5)
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)
