"""The front process of ``conf server --workers N``: accept, greet, read the first request, hand on.

Each connection is handled by the same sans-I/O :class:`~conf_cli.server.hub.Hub` a server uses, for
the handshake only: it answers ``hello`` (or refuses it), ``ping``, and anything out of place, and it
closes connections that never say hello or fall silent. The first ``create`` or ``join`` is not given to
it: the connection, with every byte read from that request on, goes to a worker instead (see
:mod:`conf_cli.server.workers`). A ``join`` for a meeting no worker can hold is answered here.

With encryption on, the front terminates TLS: a TLS session cannot move to another process, so the
worker is handed one end of a Unix socket pair instead of the client's socket, and the front relays
plaintext between it and the client's TLS connection (:class:`_Relay`), with back-pressure both ways.
The relay costs the front a copy of every byte; with ``--encryption none`` the client's socket itself
is handed on as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from conf_cli.errors import ConfError, ProtocolError
from conf_cli.plugin.security import Security
from conf_cli.plugin.stream import HANDSHAKE_TIMEOUT, server_tls
from conf_cli.plugin.transport import next_link_id
from conf_cli.protocol.control import Message, decode_client_message, encode
from conf_cli.protocol.framing import FrameDecoder, frame
from conf_cli.server.hub import Action, Close, Hub
from conf_cli.server.limiter import Limits
from conf_cli.server.meeting import Send
from conf_cli.server.passcode import ID_ALPHABET, new_meeting_id, normalise_meeting_id
from conf_cli.server.workers.channel import channel_pair, handoff_record, parse_report

log = logging.getLogger("conf.front")

MAX_PENDING_BYTES = 64 * 1024  # read before a hand-off; a client that sends more is closed
PENDING_MEETING_AGE = 10.0  # seconds a chosen meeting ID counts as load before the worker reports it
DRAIN_TIMEOUT = 2.0
TICK_SECONDS = 0.5
MAX_WORKERS = len(ID_ALPHABET)
RELAY_BUFFER = 1024 * 1024


@dataclass
class WorkerHandle:
    index: int
    process: subprocess.Popen[bytes]
    channel: socket.socket
    meetings: set[str] = field(default_factory=set)
    pending: dict[str, float] = field(default_factory=dict)  # meeting ID chosen -> when
    connections: int = 0
    handed: int = 0

    @property
    def load(self) -> tuple[int, int]:
        return len(self.meetings | set(self.pending)), self.connections

    def describe(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "pid": self.process.pid,
            "meetings": sorted(self.meetings),
            "connections": self.connections,
            "handed_over": self.handed,
        }


class _Relay(asyncio.Protocol):
    """The front's end of a socket pair to a worker, relaying a TLS client's plaintext both ways."""

    def __init__(self, client: _Greeting) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.client.relay = self
        self.client.handing_over = False
        if self.client.transport is not None:
            self.client.transport.resume_reading()
        else:
            self.transport.close()

    def data_received(self, data: bytes) -> None:  # from the worker, to the client
        client = self.client.transport
        if client is None or client.is_closing():
            return
        client.write(data)
        if client.get_write_buffer_size() > RELAY_BUFFER and self.transport is not None:
            self.transport.pause_reading()  # resumed by the client's resume_writing

    def pause_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.client.transport is not None:
            self.client.transport.close()


class _Greeting(asyncio.Protocol):
    """One connection until it is handed on: frames are read and kept whole until then."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.id = next_link_id()
        self.decoder = FrameDecoder()
        self.transport: asyncio.Transport | None = None
        self.handing_over = False
        self.relay: _Relay | None = None  # once handed on through the front's TLS relay

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else ""
        self.front.opened(self)

    def data_received(self, data: bytes) -> None:
        relay = self.relay
        if relay is not None:  # to the worker
            if relay.transport is not None:
                relay.transport.write(data)
            return
        if self.handing_over:
            return
        decoder = self.decoder
        decoder.push(data)
        while not self.handing_over and (payload := decoder.peek()) is not None:
            if self.front.frame(self, payload):  # handed on: this frame and all after it go along
                return
            decoder.skip()
        if decoder.pending > MAX_PENDING_BYTES and not self.handing_over:
            self.close("too much data before a create or join")

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.relay is not None and self.relay.transport is not None:
            self.relay.transport.close()
        self.front.closed(self)

    def pause_writing(self) -> None:
        if self.relay is not None and self.relay.transport is not None:
            self.relay.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.relay is not None and self.relay.transport is not None:
            self.relay.transport.resume_reading()

    def send(self, message: Message) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame(encode(message)))

    def close(self, reason: str) -> None:
        log.debug("closing %s: %s", self.peer, reason)
        if self.transport is not None:
            self.transport.close()


class Front:
    """Accepts on one TCP port and spreads meetings over ``workers`` worker processes."""

    def __init__(
        self,
        workers: int,
        log_level: int = logging.WARNING,
        security: Security | None = None,
        limits: Limits | None = None,
        token_key: Path | None = None,
    ) -> None:
        if not 1 <= workers <= MAX_WORKERS:
            raise ConfError(f"--workers must be between 1 and {MAX_WORKERS}")
        self.security = security
        self.count = workers
        self.log_level = log_level
        self.limits = limits or Limits()
        self.hub = Hub(wall_clock=time.time)  # it answers hello: welcome tells the time
        self.token_key = token_key
        """The access tokens' key file, which each worker reads (None: the server folder's)."""
        self.workers: list[WorkerHandle] = []
        self.greeting: dict[int, _Greeting] = {}
        self.url = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- life cycle ---------------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> list[str]:
        loop = asyncio.get_running_loop()
        tls = server_tls(self.security)  # TLS ends here: see the module's docstring
        try:
            self._server = await loop.create_server(
                lambda: _Greeting(self),
                host,
                port,
                reuse_address=True,
                ssl=tls,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT if tls is not None else None,
            )
        except OSError as exc:
            raise ConfError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port"
            ) from None
        bound = self._server.sockets[0].getsockname()
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self.url = f"tcp://{shown}:{bound[1]}"
        for index in range(self.count):
            self.workers.append(self._spawn(index))
        for worker in self.workers:
            loop.add_reader(worker.channel.fileno(), self._report, worker)
        self._spawn_task(self._tick_forever())
        return [self.url]

    def _spawn(self, index: int) -> WorkerHandle:
        ours, theirs = channel_pair()
        args = [sys.executable, "-m", "conf_cli.server.workers.worker", str(theirs.fileno()), str(index)]
        limits = (
            str(self.limits.per_address),
            str(self.limits.per_target),
            str(self.limits.window),
            str(self.limits.creates_per_address),
        )
        process = subprocess.Popen(
            [*args, self.url, str(self.log_level), *limits, str(self.token_key or "")],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        ours.setblocking(False)
        log.info("worker %d is PID %d", index, process.pid)
        return WorkerHandle(index, process, ours)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
        for conn in list(self.greeting.values()):
            conn.close("server shutting down")
        for worker in self.workers:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(worker.channel.fileno())
            worker.channel.close()  # the worker sees the channel close and stops
        await asyncio.to_thread(self._stop_workers)

    def _stop_workers(self) -> None:
        for worker in self.workers:
            try:
                worker.process.wait(5.0)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait(5.0)

    def stats(self) -> dict[str, object]:
        """A ``server_stats`` event: the front's handshake counters and each worker's last report."""
        return {
            "type": "server_stats",
            "front": {"pid": os.getpid(), "greeting": len(self.greeting)},
            "workers": [worker.describe() for worker in self.workers],
        }

    # -- connections --------------------------------------------------------------------------------

    def opened(self, conn: _Greeting) -> None:
        self.greeting[conn.id] = conn
        self._apply(self.hub.connected(conn.id, time.monotonic(), conn.peer))

    def closed(self, conn: _Greeting) -> None:
        if self.greeting.pop(conn.id, None) is not None:
            self._apply(self.hub.disconnected(conn.id))

    def frame(self, conn: _Greeting, payload: bytes) -> bool:
        """Handle one frame read before the hand-off; True once the connection is being handed on."""
        now = time.monotonic()
        if not payload or payload[0] != ord("{"):  # keep-alive or media: proof of life, nothing more
            self.hub.seen(conn.id, now)
            return False
        request: Message | None = None
        with contextlib.suppress(ProtocolError):
            request = decode_client_message(payload)
        if request is None or request["type"] not in ("create", "join") or not self.hub.seen(conn.id, now):
            self._apply(self.hub.received(conn.id, payload, now))
            return False
        worker, meeting = self._choose(request)
        if worker is None:
            conn.send(_refusal(request))
            return False
        conn.handing_over = True
        if conn.transport is not None:
            conn.transport.pause_reading()
        self._spawn_task(self._hand_over(conn, worker, meeting))
        return True

    def _choose(self, request: Message) -> tuple[WorkerHandle | None, str | None]:
        live = [w for w in self.workers if w.process.poll() is None]
        if request["type"] == "join":
            meeting_id = normalise_meeting_id(str(request["meeting"]))
            index = ID_ALPHABET.find(meeting_id[:1]) if meeting_id else -1
            owner = self.workers[index] if 0 <= index < len(self.workers) else None
            return (owner if owner in live else None), None
        if not live:
            return None, None
        worker = min(live, key=lambda w: (w.load, w.handed))
        meeting_id = ID_ALPHABET[worker.index] + new_meeting_id()[1:]
        while any(meeting_id in w.meetings or meeting_id in w.pending for w in self.workers):
            meeting_id = ID_ALPHABET[worker.index] + new_meeting_id()[1:]
        worker.pending[meeting_id] = time.monotonic()
        return worker, meeting_id

    async def _hand_over(self, conn: _Greeting, worker: WorkerHandle, meeting: str | None) -> None:
        transport = conn.transport
        if transport is None:
            return
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while transport.get_write_buffer_size() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)  # the welcome (or a pong) must leave before the socket does
        tls = transport.get_extra_info("ssl_object") is not None
        header: dict[str, Any] = {"peer": conn.peer, **({"meeting": meeting} if meeting else {})}
        ours: socket.socket | None = None
        try:
            if tls:  # the worker gets one end of a socket pair; we relay the plaintext (module docstring)
                ours, theirs = socket.socketpair()
                sock = theirs
            else:
                sock = transport.get_extra_info("socket")
            fd = os.dup(sock.fileno())
            try:
                socket.send_fds(worker.channel, [handoff_record(header, conn.decoder.held())], [fd])
            finally:
                os.close(fd)
                if tls:
                    sock.close()
        except OSError as exc:
            log.warning("cannot hand %s to worker %d: %s", conn.peer, worker.index, exc)
            if ours is not None:
                ours.close()
            conn.close("no worker could take the connection")
            return
        worker.handed += 1
        worker.connections += 1
        self.greeting.pop(conn.id, None)
        self._apply(self.hub.disconnected(conn.id))
        if ours is None:
            transport.abort()  # our copy of the socket only: the worker holds the connection now
            return
        loop = asyncio.get_running_loop()
        relay = _Relay(conn)
        try:
            await loop.connect_accepted_socket(lambda: relay, ours)
        except OSError as exc:
            log.warning("cannot relay %s to worker %d: %s", conn.peer, worker.index, exc)
            ours.close()
            conn.close("no worker could take the connection")

    # -- workers ------------------------------------------------------------------------------------

    def _report(self, worker: WorkerHandle) -> None:
        try:
            record = worker.channel.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            record = b""
        if not record:
            asyncio.get_running_loop().remove_reader(worker.channel.fileno())
            log.warning("worker %d (PID %d) has stopped", worker.index, worker.process.pid)
            return
        try:
            report = parse_report(record)
        except ValueError:
            return
        worker.meetings = set(report.get("meetings") or [])
        worker.connections = int(report.get("connections") or 0)
        for meeting_id in worker.meetings & set(worker.pending):
            del worker.pending[meeting_id]

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now = time.monotonic()
            for worker in self.workers:
                for meeting_id, chosen in list(worker.pending.items()):
                    if now - chosen > PENDING_MEETING_AGE:
                        del worker.pending[meeting_id]
            self._apply(self.hub.tick(now))

    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                for cid in action.to:
                    conn = self.greeting.get(cid)
                    if conn is not None:
                        conn.send(action.message)
            elif isinstance(action, Close):
                conn = self.greeting.get(action.conn)
                if conn is not None:
                    conn.close(action.reason)

    def _spawn_task(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _refusal(request: Message) -> Message:
    if request["type"] == "create":
        code, text = "unavailable", "the server has no worker running; try again later"
    else:
        code, text = "unknown_meeting", f"no meeting {str(request.get('meeting', ''))!r} on this server"
    refusal: Message = {"type": "error", "code": code, "message": text, "re": request.get("type")}
    if isinstance(request.get("id"), str | int):
        refusal["id"] = request["id"]
    return refusal
