"""Helpers for driving real ``conf`` processes in machine mode, for tests of conf and of its plugins.

A third-party plugin's test suite can use these as conf's own does: start a server with
:func:`start_server`, then clients with :func:`start_client`, and read their JSON events.

Every process started here runs with ``CONF_HOME`` in a temporary folder (:func:`test_home`, one per
test process, unless the caller's ``env`` names another), so a server's identity key and a client's
pinned keys never touch the user's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]
DEFAULT_TIMEOUT = 15.0
MAX_TIMELINE = 10_000  # events kept with their arrival time (ConfProcess.timeline)


_home: str | None = None


def test_home() -> str:
    """A temporary ``CONF_HOME`` for the processes this test process starts (removed at exit)."""
    global _home
    if _home is None:
        folder = tempfile.TemporaryDirectory(prefix="conf-home-")
        _keep.append(folder)
        _home = folder.name
    return _home


_keep: list[tempfile.TemporaryDirectory[str]] = []


def conf_command() -> list[str]:
    """How to run conf from this interpreter."""
    return [sys.executable, "-m", "conf_cli"]


@dataclass
class ConfProcess:
    """A running ``conf`` process whose stdout lines are JSON events."""

    process: subprocess.Popen[str]
    events: queue.Queue[Event | None] = field(default_factory=queue.Queue)
    seen: list[Event] = field(default_factory=list)
    stderr_lines: list[str] = field(default_factory=list)
    timeline: list[tuple[float, Event]] = field(default_factory=list)
    """Every event with the wall-clock time (``time.time()``) its line was read, for timing tests."""

    def __post_init__(self) -> None:
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"type": "_text", "text": line}
            self.timeline.append((time.time(), event))
            del self.timeline[:-MAX_TIMELINE]
            self.events.put(event)
        self.events.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr_lines.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, line: str) -> None:
        """Type a line (a command or chat) into the client."""
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def expect(
        self, kind: str, where: Callable[[Event], bool] | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> Event:
        """Wait for the next event of ``kind`` (matching ``where``); earlier events are kept in ``seen``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {kind!r} event within {timeout} s; saw {self.seen[-10:]}")
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            if event is None:
                self.events.put(None)
                raise AssertionError(
                    f"process exited before a {kind!r} event; saw {self.seen[-10:]}; "
                    f"stderr {self.stderr_lines[-5:]}"
                )
            self.seen.append(event)
            if event.get("type") == kind and (where is None or where(event)):
                return event

    def latest(
        self, kind: str, where: Callable[[Event], bool] | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> Event:
        """The newest event of ``kind`` (matching ``where``) already seen, else the next one to come."""
        for event in reversed(self.seen):
            if event.get("type") == kind and (where is None or where(event)):
                return event
        return self.expect(kind, where, timeout)

    def drain(self, seconds: float) -> list[Event]:
        """Collect every event for ``seconds``."""
        got: list[Event] = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                break
            if event is None:
                self.events.put(None)
                break
            self.seen.append(event)
            got.append(event)
        return got

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        """Stop the process by its PID (SIGTERM, then SIGKILL)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def drain_together(*processes: ConfProcess, seconds: float) -> list[list[Event]]:
    """What each of ``processes`` said in the same ``seconds`` from now (and had not been read before):
    the first is read for that long while the others' events wait in their queues, then read at once."""
    return [processes[0].drain(seconds), *(process.drain(0.05) for process in processes[1:])]


def spawn(args: Sequence[str], env: dict[str, str] | None = None) -> ConfProcess:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "CONF_HOME": test_home(), **(env or {})}
    process = subprocess.Popen(
        [*conf_command(), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )
    return ConfProcess(process)


def start_server(
    *extra: str,
    transport: str = "tcp",
    env: dict[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> tuple[ConfProcess, str]:
    """Start ``conf server`` on a free loopback port; return it and its URL (its ``server_started`` is
    ``server.latest("server_started")``)."""
    server = spawn(
        ["server", "--json", "--host", "127.0.0.1", "--port", "0", "--transport", transport, *extra], env
    )
    started = server.expect("server_started", timeout=timeout)
    return server, started["urls"][0]


def start_client(
    url: str,
    name: str,
    meeting: str | None = None,
    passcode: str | None = None,
    *extra: str,
    env: dict[str, str] | None = None,
) -> ConfProcess:
    """``conf create`` (no meeting) or ``conf join MEETING`` in machine mode."""
    args = ["create"] if meeting is None else ["join", meeting]
    args += ["--json", "--server", url, "--name", name]
    if passcode is not None:
        args += ["--passcode", passcode]
    return spawn([*args, *extra], env)


def has_packets(kind: str) -> Callable[[Event], bool]:
    """For :meth:`ConfProcess.expect`: a ``track_stats`` of a ``kind`` track (audio, video) that has
    received packets."""
    return lambda e: e.get("kind") == kind and int(e.get("packets", 0)) > 0


def chat_from(name: str, text: str) -> Callable[[Event], bool]:
    """For :meth:`ConfProcess.expect`: a ``chat`` from ``name`` saying ``text``."""
    return lambda e: e.get("from") == name and e.get("text") == text


def run_conf(*args: str, timeout: float = 30.0, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run a conf command to completion."""
    return subprocess.run(
        [*conf_command(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "CONF_HOME": test_home()},
    )


class ClientPool:
    """Starts conf clients against one server and stops every one of them by PID at the end.

    Each method takes ``url=`` for a client that goes to another of the server's URLs (a worker's, a
    cluster node's); ``env`` is added to every client's environment (a ``CONF_HOME`` of its own, say)."""

    def __init__(
        self,
        url: str,
        passcode: str = "pass-123",
        extra: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.passcode = passcode
        self.extra = tuple(extra)
        """Arguments every client gets (``--encryption none`` for a plaintext server, say)."""
        self.env = env
        self.started: list[ConfProcess] = []

    def client(
        self, name: str, meeting: str | None = None, *extra: str, url: str | None = None
    ) -> ConfProcess:
        """Start ``conf create`` (no meeting) or ``conf join MEETING`` as ``name``; the caller waits for
        its events."""
        return self.adopt(
            start_client(url or self.url, name, meeting, self.passcode, *self.extra, *extra, env=self.env)
        )

    def create(self, name: str, *extra: str) -> tuple[ConfProcess, str]:
        """Create a meeting as ``name``; wait until it is joined; return the client and the meeting ID."""
        client = self.client(name, None, *extra)
        created = client.expect("meeting_created")
        client.expect("joined")
        return client, created["meeting"]

    def join(self, meeting: str, name: str, *extra: str, passcode: str | None = None) -> ConfProcess:
        """Start joining; the caller waits for ``joined`` (or an exit) itself."""
        client = start_client(
            self.url, name, meeting, passcode or self.passcode, *self.extra, *extra, env=self.env
        )
        return self.adopt(client)

    def joined(self, meeting: str, name: str, *extra: str) -> ConfProcess:
        """Join and wait until in the meeting."""
        client = self.join(meeting, name, *extra)
        client.expect("joined", lambda e: e["name"] == name)
        return client

    def share(self, meeting: str, name: str, kind: str, *extra: str, url: str | None = None) -> ConfProcess:
        """``conf share KIND`` into ``meeting`` as ``name`` in machine mode; the caller waits for events."""
        args = ["share", kind, "--meeting", meeting, "--server", url or self.url, "--name", name]
        return self.adopt(
            spawn([*args, "--passcode", self.passcode, "--json", *self.extra, *extra], self.env)
        )

    def adopt(self, client: ConfProcess) -> ConfProcess:
        """Stop ``client`` (started some other way) with the others at the end."""
        self.started.append(client)
        return client

    def stop_all(self) -> None:
        for client in self.started:
            client.stop()


@contextlib.contextmanager
def serving(*extra: str, transport: str = "tcp", env: dict[str, str] | None = None) -> Iterator[ClientPool]:
    """``conf server`` (:func:`start_server`, with ``extra`` arguments) and a :class:`ClientPool` for it;
    the clients and the server are stopped by PID at the end."""
    server, url = start_server(*extra, transport=transport, env=env)
    clients = ClientPool(url)
    try:
        yield clients
    finally:
        clients.stop_all()
        server.stop()


@dataclass
class ThreadLoop:
    """An event loop running in a daemon thread of its own: what a test's helper server (the impairment
    relay, a control tap) runs on, beside the test's own code."""

    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    def stop(self, closing: Coroutine[Any, Any, object], timeout: float = 5.0) -> None:
        """Run ``closing`` on the loop (waiting up to ``timeout``), then stop the loop and its thread."""
        future = asyncio.run_coroutine_threadsafe(closing, self.loop)
        with contextlib.suppress(Exception):
            future.result(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)


def start_thread_loop(starting: Coroutine[Any, Any, object], name: str, timeout: float = 10.0) -> ThreadLoop:
    """Start a thread running a new event loop, run ``starting`` on it first, and return once it is done;
    if it raises or takes over ``timeout`` seconds, raise RuntimeError naming ``name``."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(starting)
        except BaseException as exc:
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    if not started.wait(timeout) or failure:
        raise RuntimeError(f"the {name} did not start: {failure[0] if failure else 'timeout'}")
    return ThreadLoop(loop, thread)
