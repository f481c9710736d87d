"""The server side of the ZeroMQ transport: a ROUTER, spoken on the event loop, for control and media.

The server speaks ZMTP 3.1 and CURVE itself (:mod:`.zmtp`, :mod:`.curvezmq`) over asyncio's TCP
connections, as a libzmq ROUTER would: clients keep their libzmq DEALER. A packet forwarded thus crosses
no thread in the server (a libzmq socket passes every message through an I/O thread of its own, a
wake-up each way that waits for a core on a busy machine), and each client's queue is its connection's
write buffer, which the server sees and bounds in bytes.

Each DEALER routing id that greets becomes one :class:`ZmqServerLink`. As on a libzmq ROUTER, the routing
id outlives its TCP connection: a DEALER that reconnects (libzmq does so by itself) with the same id goes
on with the same link, and a second connection presenting an id already connected is refused. A link
lives until it says goodbye (``B``), or until the meeting core closes it: conf's heartbeat timeout (6 s)
is what drops a killed client. A closed link's routing id is forgotten; its later messages are dropped
(answered with ``B``) unless it greets again.

Media going down is sent to each link the meeting core chose, on its own connection: nothing of a meeting
is ever written to a connection that is not a participant of it (not even ciphertext, so not its timing
either), and a link the server has closed gets nothing more, its routing id being forgotten.

What is sent to one connection in one event-loop turn (media, control, ZMTP's PONGs, in order: under
CURVE each frame's nonce is one more than the last) is written in one go at the end of the turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import cast

from conf_cli import ConfError, Link, Listener, ProtocolError, ServerEvents, TransportOptions

from . import wire, zmtp
from .curvezmq import OVERHEAD as CURVE_OVERHEAD
from .curvezmq import CurveServer
from .keys import KeyService, open_service
from .limits import (
    CONTROL_BUFFER_LIMIT,
    MAX_MESSAGE_PARTS,
    MEDIA_BUFFER_LIMIT,
    SILENT_LIMIT,
    ZMTP_HANDSHAKE_MS,
    ZMTP_HEARTBEAT_MS,
)

log = logging.getLogger("conf.transport.zmq")

MAX_LINKS = 2_000
"""Routing ids greeted at once; more are answered ``B`` ("server full")."""
CONNECTIONS_PER_LINK = 2
"""TCP connections held at once, handshakes included, per greeted link allowed (``MAX_LINKS``): past
that, a new one is closed as it arrives."""
NOTSENT_LOWAT = 16 * 1024
"""Unsent bytes a connection holds in the kernel before writes wait in its buffer (where they are seen
and bounded)."""
PORT_ATTEMPTS = 8
"""With ``--port 0``, ports tried: the key service needs the UDP port of the number the kernel gave the
TCP listener, and another socket may hold it."""
MAX_LOGGED_STRANGERS = 256
"""Routing ids without a link whose first bad message is logged; past that many, only counted."""
GATHER_LIMIT = 0.0003
"""Seconds of forwarding gathered before it is written: past this, what a turn gathered is written at once
rather than at the turn's end (under CURVE a packet costs about 1.6 us per recipient, and a burst of a
few dozen packets to twenty clients would otherwise hold the first one back by milliseconds)."""


@dataclass
class ZmqStats:
    """Counters of one listener (dropped input never reaches the meeting core)."""

    malformed: int = 0
    unknown_sender: int = 0
    bad_greetings: int = 0
    refused_full: int = 0
    send_failures: int = 0
    control_delayed: int = 0
    media_dropped: int = 0
    bad_handshakes: int = 0
    refused_connections: int = 0
    silent_dropped: int = 0


class ZmtpConnection(zmtp.ZmtpPeer, asyncio.Protocol):
    """One TCP connection: the ZMTP greeting and handshake, then whole messages to the listener."""

    def __init__(self, listener: ZmqListener) -> None:
        super().__init__(listener.mechanism)
        self._listener = listener
        self.transport: asyncio.Transport | None = None
        self.address = "?"
        self.routing_id: bytes | None = None
        """Set once the handshake is done."""
        self.curve: CurveServer | None = None
        self._parts: list[bytes] = []
        self._dropped_parts = 0
        self.out: list[bytes] = []
        self.out_bytes = 0
        self._handshake_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        listener = self._listener
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.address = f"[{peer[0]}]:{peer[1]}" if ":" in peer[0] else f"{peer[0]}:{peer[1]}"
        if not listener.accepted(self):
            self.transport.abort()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if hasattr(socket, "TCP_NOTSENT_LOWAT"):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, NOTSENT_LOWAT)
        self._handshake_timer = listener.loop.call_later(ZMTP_HANDSHAKE_MS / 1000, self._handshake_late)
        self.transport.write(listener.greeting)

    def data_received(self, data: bytes) -> None:
        self.feed(data)

    def stopped(self) -> bool:
        return self.transport is None

    def broken(self, why: str) -> None:
        if not self.handshaken:
            self._refuse(why)
            return
        self._listener.counters.malformed += 1
        self._listener.log_connection(self.address, f"closed: {why}")
        self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        self._listener.detach(self)

    # -- the handshake ------------------------------------------------------------------------------

    def handshake_frame(self, flags: int, body: bytes) -> None:
        if not flags & zmtp.COMMAND:
            raise ProtocolError("a message before the handshake ended")
        listener = self._listener
        if listener.mechanism == zmtp.NULL:
            name, data = zmtp.read_command(body)
            if name != b"READY":
                raise ProtocolError(f"command {name[:20]!r} where READY was due")
            self._ready(zmtp.read_properties(data))
            return
        if self.curve is None:
            assert listener.curve_keys is not None
            self.curve = CurveServer(*listener.curve_keys)
            self.write(zmtp.frame(self.curve.hello(body), zmtp.COMMAND))
        else:
            self._ready(self.curve.initiate(body))

    def _ready(self, metadata: dict[str, bytes]) -> None:
        routing_id = zmtp.peer_socket(metadata)
        listener = self._listener
        answer = zmtp.properties({zmtp.SOCKET_TYPE: b"ROUTER"})
        if self.curve is None:
            self.write(zmtp.frame(zmtp.command(b"READY", answer), zmtp.COMMAND))
        else:
            self.write(zmtp.frame(self.curve.ready(answer), zmtp.COMMAND))
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        limit = wire.SOCKET_MAX_FRAME + (CURVE_OVERHEAD if self.curve is not None else 0)
        self.reader.limit = limit
        if not listener.attach(self, routing_id):
            self.abort()
            return
        self.handshaken = True

    def _refuse(self, why: str) -> None:
        self._listener.counters.bad_handshakes += 1
        self._listener.log_connection(self.address, f"refused: {why}")
        self.abort()

    def _handshake_late(self) -> None:
        self._handshake_timer = None
        if not self.handshaken:
            self._refuse(f"no ZMTP handshake in {ZMTP_HANDSHAKE_MS / 1000:g} s")

    # -- messages -----------------------------------------------------------------------------------

    def message_frame(self, flags: int, body: bytes) -> None:
        curve = self.curve
        if curve is not None:
            flags, body = curve.open(body)
        if flags & zmtp.COMMAND:
            answer = zmtp.answer_command(body)
            if answer is not None:
                self.send(zmtp.COMMAND, answer)
            return
        parts = self._parts
        if len(parts) < MAX_MESSAGE_PARTS:
            parts.append(body)
        else:
            self._dropped_parts += 1
        if not flags & zmtp.MORE:
            self._parts = []
            dropped, self._dropped_parts = self._dropped_parts, 0
            assert self.routing_id is not None
            self._listener.message_received(self, parts, dropped)

    # -- sending ------------------------------------------------------------------------------------

    def send(self, flags: int, body: bytes) -> None:
        """Queue one frame (sealed under CURVE) to be written at the end of this turn."""
        curve = self.curve
        self.queue(curve.seal(flags, body) if curve is not None else zmtp.frame(body, flags))

    def queue(self, data: bytes) -> None:
        if not self.out:
            self._listener.dirty.append(self)
            self._listener.flush_soon()
        self.out.append(data)
        self.out_bytes += len(data)

    def flush(self) -> None:
        out, self.out = self.out, []
        self.out_bytes = 0
        transport = self.transport
        if transport is not None and out:
            transport.write(out[0] if len(out) == 1 else b"".join(out))

    def write(self, data: bytes) -> None:
        """Write now (the handshake: nothing else is queued yet)."""
        if self.transport is not None:
            self.transport.write(data)

    def backlog(self) -> int:
        """Bytes waiting to be sent: this turn's, and the connection's write buffer."""
        transport = self.transport
        return self.out_bytes + (transport.get_write_buffer_size() if transport is not None else 0)

    def abort(self) -> None:
        """Drop the connection now: nothing more is read from it or written to it."""
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.abort()

    def close(self) -> None:
        """Close after what is queued has been written."""
        self.flush()
        if self.transport is not None:
            self.transport.close()


class ZmqServerLink(Link):
    """One client (one DEALER routing id) as the server sees it."""

    media_ordered = True

    def __init__(self, listener: ZmqListener, identity: bytes, peer: str) -> None:
        super().__init__(peer, listener)
        self.identity = identity
        self.connection: ZmtpConnection | None = None
        """The routing id's TCP connection; None while it has none (a DEALER reconnecting)."""
        self._owner = listener
        self._closed = False
        self._backlog = wire.ControlBacklog()

    def send_control(self, data: bytes) -> None:
        """Queue a control message; while the routing id has no connection it waits in a bounded
        backlog, and a client that leaves too much of them unread is let go."""
        if self._closed:
            return
        if len(data) > wire.MAX_PAYLOAD:
            raise ProtocolError(f"control message of {len(data)} bytes exceeds {wire.MAX_PAYLOAD}")
        self.stats.control_out += 1
        self.stats.bytes_out += len(data)
        if not self._backlog and self._send_control(data):
            return
        self._owner.counters.control_delayed += 1
        if not self._backlog.add(data):
            self.close("peer too slow to read control messages")
        else:
            self._owner.backlogged(self)

    def flush(self) -> bool:
        """Send waiting control messages, in order; True once none wait."""
        return self._closed or self._backlog.flush(self._send_control)

    def _send_control(self, data: bytes) -> bool:
        connection = self.connection
        if connection is None or connection.transport is None:
            return False
        if connection.backlog() > CONTROL_BUFFER_LIMIT:
            self.close("peer too slow to read control messages")
            return True
        connection.send(0, wire.CONTROL + data)
        return True

    def send_media(self, packet: bytes) -> bool:
        """Send one packet to this client alone; dropped while its queue is full or control waits."""
        return self._owner.forward_media(packet, (self,)) == 1

    def media_backlog(self) -> int | None:
        connection = self.connection
        return 0 if connection is None else connection.backlog()

    def close(self, reason: str = "closed") -> None:
        """Say goodbye (``B``) and forget the routing id: nothing more is sent to it."""
        if self._closed:
            return
        self._closed = True
        self._backlog.clear()
        self._owner.send(self.identity, wire.BYE, wire.bye(reason))
        self._owner.forget(self, reason)

    @property
    def is_closing(self) -> bool:
        return self._closed


class ZmqListener(Listener):
    """A ROUTER at ``tcp://HOST:PORT``, spoken on the event loop."""

    def __init__(
        self,
        events: ServerEvents,
        curve_keys: tuple[bytes, bytes] | None,
        *,
        max_links: int = MAX_LINKS,
    ) -> None:
        self._events = events
        self.max_links = max_links
        self.curve_keys = curve_keys
        """The server's CURVE public and secret key; None: the NULL mechanism (no encryption)."""
        self.mechanism = zmtp.CURVE if curve_keys is not None else zmtp.NULL
        self.greeting = zmtp.greeting(self.mechanism, as_server=curve_keys is not None)
        self.url = ""
        self.links: dict[bytes, ZmqServerLink] = {}
        self.connections: dict[bytes, ZmtpConnection] = {}
        """Each routing id's connection, once its handshake is done."""
        self._all: set[ZmtpConnection] = set()
        self.counters = ZmqStats()
        self._answer = wire.server_greeting()
        self._logged: set[bytes] = set()
        self._connections_logged = 0
        self._recently_closed: dict[bytes, None] = {}  # their late messages are no news: not logged
        self._closed = False
        self.loop = asyncio.get_running_loop()
        self.dirty: list[ZmtpConnection] = []
        self._flush_due = False
        self._gathering_since = 0.0
        self._backlogged: set[ZmqServerLink] = set()
        self._flusher: asyncio.Task[None] | None = None
        self._next_id = 0
        self._server: asyncio.Server | None = None
        self.key_service: KeyService | None = None
        self._heartbeat = self.loop.create_task(self._beat())

    @classmethod
    async def open(cls, host: str, port: int, events: ServerEvents, options: TransportOptions) -> ZmqListener:
        security = options.security
        keys: tuple[bytes, bytes] | None = None
        if security is not None:
            if security.identity is None:
                raise ConfError("a CURVE server needs an identity key")
            security.message()  # the CURVE cipher plugin is loaded
            keys = (security.identity.curve_public(), security.identity.curve_secret())
        max_links = int(options.extra.get("zmq_max_links") or MAX_LINKS)
        for attempt in range(PORT_ATTEMPTS):
            listener = cls(events, keys, max_links=max_links)
            try:
                await listener._listen(host, port)
                if security is not None and security.identity is not None:
                    listener.key_service = await open_service(
                        host, listener.port, security.identity.public_key
                    )
            except OSError as exc:
                await listener.close()
                if port == 0 and attempt < PORT_ATTEMPTS - 1:
                    continue  # the kernel's free TCP port is taken for UDP (uvloop gives no errno)
                raise ConfError(
                    f"cannot open the ZeroMQ key service on UDP {host}:{listener.port}: {exc.strerror or exc}"
                ) from None
            except BaseException:
                await listener.close()
                raise
            return listener
        raise AssertionError("unreachable")  # the last attempt returns or raises

    async def _listen(self, host: str, port: int) -> None:
        try:
            self._server = await self.loop.create_server(
                lambda: ZmtpConnection(self), host, port, reuse_address=True
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfError(
                    f"port {port} on {host} is already in use; pick another with --port"
                ) from None
            raise ConfError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        bound = self._server.sockets[0].getsockname()
        self.port = int(bound[1])
        self.url = f"zmq://[{bound[0]}]:{bound[1]}" if ":" in bound[0] else f"zmq://{bound[0]}:{bound[1]}"

    def stats(self) -> dict[str, int]:
        return {**asdict(self.counters), "links": len(self.links), "connections": len(self._all)}

    # -- connections ---------------------------------------------------------------------------------

    def accepted(self, connection: ZmtpConnection) -> bool:
        """A new TCP connection: False (it is closed) past the limit, or once the listener closes."""
        if self._closed or len(self._all) >= CONNECTIONS_PER_LINK * self.max_links:
            self.counters.refused_connections += 1
            return False
        self._all.add(connection)
        return True

    def attach(self, connection: ZmtpConnection, routing_id: bytes) -> bool:
        """A connection's handshake is done: it carries ``routing_id`` (a new one if empty) from now on.
        False if that id is already connected (libzmq's ROUTER refuses the second connection too)."""
        if not routing_id:
            self._next_id += 1
            routing_id = b"\x00" + (self._next_id & 0xFFFFFFFF).to_bytes(4, "big")
        if routing_id in self.connections:
            self.counters.bad_handshakes += 1
            self.log_connection(connection.address, f"refused: zmq id {routing_id.hex()[:16]} is connected")
            return False
        connection.routing_id = routing_id
        self.connections[routing_id] = connection
        link = self.links.get(routing_id)
        if link is not None:
            link.connection = connection
            if link._backlog:
                self.backlogged(link)
        return True

    def detach(self, connection: ZmtpConnection) -> None:
        """A connection ended: its routing id's link (if any) waits for the DEALER to reconnect."""
        self._all.discard(connection)
        routing_id = connection.routing_id
        if routing_id is None or self.connections.get(routing_id) is not connection:
            return
        del self.connections[routing_id]
        link = self.links.get(routing_id)
        if link is not None and link.connection is connection:
            link.connection = None

    async def _beat(self) -> None:
        """PING every connection each ZMTP_HEARTBEAT_MS; drop one silent for SILENT_LIMIT."""
        while True:
            await asyncio.sleep(ZMTP_HEARTBEAT_MS / 1000)
            now = time.monotonic()
            for connection in list(self.connections.values()):
                if now - connection.heard > SILENT_LIMIT:
                    self.counters.silent_dropped += 1
                    self.log_connection(connection.address, f"dropped: silent for {SILENT_LIMIT:g} s")
                    connection.abort()
                else:
                    connection.send(zmtp.COMMAND, zmtp.command(b"PING", b"\x00\x00"))
            self.flush_soon()

    # -- sending -----------------------------------------------------------------------------------

    def flush_soon(self) -> None:
        if not self._flush_due and self.dirty:
            self._flush_due = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Write what each connection gathered this turn, in one write each."""
        self._flush_due = False
        self._gathering_since = 0.0
        dirty, self.dirty = self.dirty, []
        for connection in dirty:
            connection.flush()

    def send(self, identity: bytes, kind: bytes, payload: bytes) -> bool:
        """Queue one message for one routing id; False if it has no connection."""
        connection = self.connections.get(identity)
        if self._closed or connection is None or connection.transport is None:
            self.counters.send_failures += 1
            return False
        frames = wire.frames(kind, payload)
        for frame in frames[:-1]:
            connection.send(zmtp.MORE, frame)
        connection.send(0, frames[-1])
        self.flush_soon()
        return True

    def forward_media(self, packet: bytes, links: Iterable[Link]) -> int:
        """Send one packet to each of ``links`` (the meeting core's choice), each on its own connection,
        sealed for it under CURVE; dropped for a link whose queue is full or whose control messages wait."""
        targets = cast("Iterable[ZmqServerLink]", links)  # the server groups links by their listener
        if self._closed or len(packet) > wire.MAX_PAYLOAD:
            for link in targets:
                link.stats.media_dropped += 1
            return 0
        size = len(packet)
        if self.curve_keys is not None:
            plain = b"\x00" + packet  # CURVE's flags byte: one frame, no more after it, sealed per link
        else:
            framed = zmtp.frame(packet)  # the same frame for every link
        sent = 0
        dirty = self.dirty
        for link in targets:
            stats = link.stats
            connection = link.connection
            if (
                link._closed
                or link._backlog
                or connection is None
                or connection.transport is None
                or connection.backlog() > MEDIA_BUFFER_LIMIT
            ):
                stats.media_dropped += 1
                self.counters.media_dropped += 1
                continue
            curve = connection.curve
            data = curve.seal_prefixed(plain) if curve is not None else framed
            if not connection.out:
                dirty.append(connection)
            connection.out.append(data)
            connection.out_bytes += len(data)
            stats.media_out += 1
            stats.bytes_out += size
            sent += 1
        if not self._gathering_since:
            self._gathering_since = time.monotonic()
        elif time.monotonic() - self._gathering_since > GATHER_LIMIT:
            self._flush()
            return sent
        self.flush_soon()
        return sent

    def backlogged(self, link: ZmqServerLink) -> None:
        """``link`` has control messages waiting: retry them until its routing id is connected again."""
        self._backlogged.add(link)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._retry())

    async def _retry(self) -> None:
        while self._backlogged and not self._closed:
            await asyncio.sleep(wire.BACKLOG_POLL)
            for link in list(self._backlogged):
                if link.is_closing or link.flush():
                    self._backlogged.discard(link)
            self.flush_soon()

    # -- receiving ---------------------------------------------------------------------------------

    def log_connection(self, address: str, what: str) -> None:
        """Log what became of a connection that broke ZMTP (up to MAX_LOGGED_STRANGERS; then counted)."""
        self._connections_logged += 1
        if self._connections_logged <= MAX_LOGGED_STRANGERS:
            log.info("zmq connection from %s %s", address, what)
        elif self._connections_logged == MAX_LOGGED_STRANGERS + 1:
            log.info("more zmq connections break the protocol; they are counted, no longer logged")

    def _log_stranger(self, identity: bytes, why: str) -> None:
        """Log the first bad message of a routing id that has no link (up to MAX_LOGGED_STRANGERS ids)."""
        if identity in self._logged or identity in self._recently_closed:
            return
        if len(self._logged) > MAX_LOGGED_STRANGERS:
            return
        self._logged.add(identity)
        if len(self._logged) > MAX_LOGGED_STRANGERS:
            log.info("more zmq peers send bad messages; they are counted, no longer logged")
        else:
            log.info("dropping messages from zmq id %s: %s (logged once per peer)", identity.hex()[:16], why)

    def message_received(self, connection: ZmtpConnection, parts: list[bytes], dropped: int) -> None:
        """One whole message from a connection (its first MAX_MESSAGE_PARTS parts; ``dropped``: how many
        more it had)."""
        identity = connection.routing_id
        assert identity is not None
        try:
            if dropped:
                raise ProtocolError(f"message of {len(parts) + dropped} frames, expected 1 (or 2: G, B)")
            kind, payload = wire.split(parts)
        except ProtocolError as exc:
            self.counters.malformed += 1
            if identity not in self.links:
                self._log_stranger(identity, str(exc))
            return
        link = self.links.get(identity)
        if link is None:
            if kind == wire.GREETING:
                self._greet(identity, payload, connection)
            elif kind != wire.BYE:
                self.counters.unknown_sender += 1
                self._log_stranger(identity, "not greeted")
                self.send(identity, wire.BYE, wire.bye("not connected; greet first"))
            return
        stats = link.stats
        stats.bytes_in += len(payload)
        if kind == wire.MEDIA:
            stats.media_in += 1
            self._events.media_received(link, payload)
        elif kind == wire.CONTROL:
            stats.control_in += 1
            self._events.control_received(link, payload)
        elif kind == wire.KEEPALIVE:
            self._events.keepalive_received(link)
        elif kind == wire.BYE:
            link._closed = True
            link._backlog.clear()
            self.forget(link, f"closed by peer: {wire.read_bye(payload)}")
        else:  # a repeated greeting: answer it again, the link stays
            self.send(identity, wire.GREETING, self._answer)

    def _greet(self, identity: bytes, payload: bytes, connection: ZmtpConnection) -> None:
        try:
            wire.parse_client_greeting(payload)
        except ProtocolError as exc:
            self.counters.bad_greetings += 1
            self._log_stranger(identity, f"bad greeting: {exc}")
            self.send(identity, wire.BYE, wire.bye(f"bad greeting: {exc}"))
            return
        if len(self.links) >= self.max_links:
            self.counters.refused_full += 1
            self.send(identity, wire.BYE, wire.bye("server full: too many connections"))
            return
        link = ZmqServerLink(self, identity, f"{connection.address} (zmq id {identity.hex()[:16]})")
        link.connection = connection
        self.links[identity] = link
        self.send(identity, wire.GREETING, self._answer)
        self._events.link_opened(link)

    def forget(self, link: ZmqServerLink, reason: str) -> None:
        """Drop a link's routing id and tell the server, from the event loop (never re-entrantly)."""
        if self.links.get(link.identity) is link:
            del self.links[link.identity]
        self._backlogged.discard(link)
        link.connection = None
        self._recently_closed[link.identity] = None
        if len(self._recently_closed) > MAX_LOGGED_STRANGERS:
            del self._recently_closed[next(iter(self._recently_closed))]
        self.loop.call_soon(self._events.link_closed, link, reason)

    async def close(self) -> None:
        if self._closed:
            return
        for link in list(self.links.values()):
            link.close("server shutting down")
        self._flush()
        self._closed = True
        self._heartbeat.cancel()
        if self._flusher is not None:
            self._flusher.cancel()
        for task in (self._heartbeat, self._flusher):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._server is not None:
            self._server.close()
        for connection in list(self._all):
            connection.close()  # the goodbyes are written first
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
        if self.key_service is not None:
            self.key_service.close()
