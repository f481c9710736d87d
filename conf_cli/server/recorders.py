"""The recorder processes the admin API starts: ``conf record`` run by the server, one per recorded
meeting (the asyncio edge of :mod:`conf_cli.server.recordings`).

Each recorder is ``python -m conf_cli record MEETING`` (the interpreter the server runs under) joining
the server's own listener over loopback with an access token the server signs for it (its token key),
so it needs no passcode and is named ``server admin (recorder)``; everyone in the meeting is told it
records, and the host's ``/forbid record`` removes it like any recorder. It writes into ``recordings/``
in the server's folder. The server reads its ``--json`` events (in the meeting, waiting, what it wrote,
why it left), stops it with SIGTERM (it leaves and finishes the file; SIGKILL if it does not within
:data:`~conf_cli.server.recordings.STOP_TIMEOUT`), and, once it has exited, however that happened, sends
the ``recording_finished`` webhook. Processes are stopped by their PID when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from conf_cli.errors import RequestRefused
from conf_cli.server.people import OPERATOR_NAME, Role
from conf_cli.server.recordings import FOLDER, STOP_TIMEOUT, Recording, Recordings

if TYPE_CHECKING:
    from conf_cli.server.edge import Server

log = logging.getLogger("conf.recorders")

TOKEN_TTL = 3600.0
"""Seconds the recorder's access token admits it (it joins once; a reconnection resumes its seat)."""
MAX_LINE = 64 * 1024
TICK = 0.5


def recorder_command() -> list[str]:
    """How the server runs a recorder: this interpreter, conf's own entry point."""
    return [sys.executable, "-m", "conf_cli"]


def loopback_url(urls: Sequence[str]) -> str:
    """Of the server's listener URLs, the one a process on this machine joins (tcp:// first), with a
    wildcard host replaced by loopback."""
    if not urls:
        raise ValueError("the server listens nowhere")
    chosen = next((url for url in urls if url.startswith("tcp://")), urls[0])
    parts = urlsplit(chosen)
    host = parts.hostname or ""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    shown = f"[{host}]" if ":" in host else host
    return urlunsplit((parts.scheme, f"{shown}:{parts.port}", parts.path, parts.query, ""))


@dataclass
class _Running:
    recording: Recording
    process: asyncio.subprocess.Process
    in_meeting: asyncio.Future[None]
    done: asyncio.Future[dict[str, Any]]
    stderr: deque[str] = field(default_factory=lambda: deque(maxlen=5))
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    kill_timer: asyncio.TimerHandle | None = None


class Recorders:
    """The recorder processes of one server."""

    def __init__(
        self,
        server: Server,
        folder: Path,
        *,
        url: str,
        fingerprint: str | None,
        encryption: str = "on",
        registry: Recordings | None = None,
        command: Sequence[str] | None = None,
        stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        self.server = server
        self.folder = folder / FOLDER
        self.url = url
        self.fingerprint = fingerprint
        self.encryption = encryption
        self.registry = registry or Recordings()
        self.command = list(command or recorder_command())
        self.stop_timeout = stop_timeout
        self.running: dict[str, _Running] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # -- start --------------------------------------------------------------------------------------

    async def start(
        self, meeting: str, *, fmt: str = "mp4", layout: str = "grid", chosen: str | None = None
    ) -> tuple[bool, dict[str, Any]]:
        """Start recording ``meeting``; once its recorder is in (True) or waits for the host's admission
        (False), what the recording is. RequestRefused when it may not start or did not get in."""
        key = self.server.hub.token_key
        if key is None:
            raise RequestRefused("not_available", "this server has no token key to admit its recorder with")
        loop = asyncio.get_running_loop()
        now_utc = datetime.datetime.now(datetime.UTC)
        recording = self.registry.begin(meeting, loop.time(), now_utc, fmt=fmt, layout=layout, chosen=chosen)
        path = self.folder / recording.file
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if path.exists():
                raise RequestRefused("file_exists", f"{FOLDER}/{recording.file} exists; choose another file")
            process = await self._spawn(meeting, recording, path, key)
        except OSError as exc:  # the folder cannot be made, the interpreter cannot be run ...
            self.registry.active.pop(meeting, None)
            why = exc.strerror or str(exc)
            raise RequestRefused("recorder_failed", f"cannot start a recorder: {why}") from None
        except BaseException:
            self.registry.active.pop(meeting, None)
            raise
        running = _Running(recording, process, loop.create_future(), loop.create_future())
        self.running[meeting] = running
        running.tasks = [
            asyncio.create_task(self._read_events(running), name=f"recorder {meeting} events"),
            asyncio.create_task(self._read_errors(running), name=f"recorder {meeting} stderr"),
        ]
        running.tasks.append(asyncio.create_task(self._watch(running), name=f"recorder {meeting}"))
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(self._tick(), name="recorders' clock")
        log.info("recording meeting %s into %s (recorder PID %d)", meeting, path, process.pid)

        await asyncio.shield(running.in_meeting)
        if recording.state in ("recording", "waiting"):
            recording.answered = True
            return recording.state == "recording", {**recording.view(), "pid": process.pid}
        fields = await asyncio.shield(running.done)
        reason = fields["reason"]
        detail = fields.get("error") or (
            running.stderr[-1] if running.stderr else f"exit code {process.returncode}"
        )
        if reason == "start_timeout":
            raise RequestRefused(
                "recorder_timeout",
                f"the recorder was not in meeting {meeting} within {self.registry.start_timeout:g} s "
                f"and was stopped ({detail})",
            )
        if reason == "recording_forbidden":
            raise RequestRefused("forbidden", f"the meeting refused the recorder: {detail}")
        raise RequestRefused("recorder_failed", f"the recorder could not join meeting {meeting}: {detail}")

    async def _spawn(
        self, meeting: str, recording: Recording, path: Path, key: Any
    ) -> asyncio.subprocess.Process:
        from conf_cli.server.tokens import issue

        token = issue(
            key,
            name=OPERATOR_NAME,
            meeting=meeting,
            role=Role.MEMBER,
            can_publish=(),
            ttl=TOKEN_TTL,
            now=time.time(),
        )
        args = [
            *self.command,
            "record",
            meeting,
            "--server",
            self.url,
            "--json",
            "--layout",
            recording.layout,
        ]
        args += ["--out" if recording.format == "mp4" else "--hls", str(path)]
        if self.fingerprint is not None:
            args += ["--fingerprint", self.fingerprint]
        if self.encryption == "none":
            args += ["--encryption", "none"]
        # the token in the environment, which other users of the machine cannot read (unlike arguments)
        env = {**os.environ, "CONF_TOKEN": token, "PYTHONUNBUFFERED": "1"}
        return await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,  # kept open: at its end (the server gone) the recorder leaves
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            limit=MAX_LINE,
        )

    # -- the recorder's output ----------------------------------------------------------------------

    async def _read_events(self, running: _Running) -> None:
        stream = running.process.stdout
        assert stream is not None
        meeting = running.recording.meeting
        loop = asyncio.get_running_loop()
        while True:
            try:
                line = await stream.readline()
            except (ValueError, asyncio.LimitOverrunError):  # a line beyond MAX_LINE: skip it
                await stream.read(MAX_LINE)
                continue
            if not line:
                return
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            self.registry.event(meeting, event, loop.time())
            if running.recording.state in ("recording", "waiting") and not running.in_meeting.done():
                running.in_meeting.set_result(None)

    async def _read_errors(self, running: _Running) -> None:
        stream = running.process.stderr
        assert stream is not None
        while True:
            try:
                line = await stream.readline()
            except (ValueError, asyncio.LimitOverrunError):
                await stream.read(MAX_LINE)
                continue
            if not line:
                return
            text = line.decode("utf-8", "replace").strip()
            if text:
                running.stderr.append(text.removeprefix("conf: ")[:300])

    async def _watch(self, running: _Running) -> None:
        process, recording = running.process, running.recording
        code = await process.wait()
        for task in running.tasks[:2]:  # what it said last (why it left, what it wrote)
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), 5.0)
        if running.kill_timer is not None:
            running.kill_timer.cancel()
        size = await asyncio.to_thread(_size, self.folder / recording.file)
        if not recording.errors and running.stderr and code:
            recording.errors.append(running.stderr[-1])
        fields = self.registry.finished(recording.meeting, code, size, asyncio.get_running_loop().time())
        self.running.pop(recording.meeting, None)
        log.info(
            "recording of meeting %s finished: %s, %d bytes, %.1f s (%s)",
            recording.meeting,
            fields["file"],
            fields["bytes"],
            fields["duration_s"],
            fields["reason"],
        )
        if recording.answered:
            self.server.hub.journal.note("recording_finished", recording.meeting, **fields)
            self.server.apply([])  # hands the journal to the webhooks
        if not running.in_meeting.done():
            running.in_meeting.set_result(None)
        running.done.set_result({"meeting": recording.meeting, **fields})

    # -- stop ---------------------------------------------------------------------------------------

    async def stop(self, meeting: str, reason: str = "stopped") -> dict[str, Any]:
        """Stop the recorder of ``meeting`` and wait for its file to be finished; what it wrote."""
        running = self.running.get(meeting)
        if running is None:
            self.registry.get(meeting)  # RequestRefused: not recorded
            raise RequestRefused("not_recording", f"meeting {meeting} is not being recorded by the server")
        self.registry.stopping(meeting, reason)
        self._terminate(running)
        return await asyncio.shield(running.done)

    def stop_soon(self, meeting: str, reason: str) -> None:
        """Stop the recorder of ``meeting`` (if any) without waiting for it."""
        if meeting in self.running:
            task = asyncio.create_task(self.stop(meeting, reason), name=f"stop recorder {meeting}")
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _terminate(self, running: _Running) -> None:
        """SIGTERM (the recorder leaves and finishes its file), SIGKILL after the stop timeout."""
        process = running.process
        if process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        if running.kill_timer is None:
            running.kill_timer = asyncio.get_running_loop().call_later(self.stop_timeout, _kill, process)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while self.running:
            for recording in self.registry.overdue(loop.time()):
                running = self.running.get(recording.meeting)
                if running is not None:
                    log.info("recorder of meeting %s: %s; stopping it", recording.meeting, recording.reason)
                    self._terminate(running)
            await asyncio.sleep(TICK)

    async def close(self) -> None:
        """Stop every recorder (by its PID), waiting up to the stop timeout for their files."""
        for meeting, running in list(self.running.items()):
            self.registry.stopping(meeting, "server_stopped")
            self._terminate(running)
        pending = [running.done for running in self.running.values()]
        if pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*pending), self.stop_timeout + 5.0)
        for running in list(self.running.values()):
            _kill(running.process)
        for task in [*self._background, *([self._ticker] if self._ticker else [])]:
            task.cancel()


def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()


def _size(path: Path) -> int:
    """Bytes of a recording: its file, or the files of its HLS folder."""
    try:
        if path.is_dir():
            return sum(entry.stat().st_size for entry in path.iterdir() if entry.is_file())
        return path.stat().st_size
    except OSError:
        return 0
