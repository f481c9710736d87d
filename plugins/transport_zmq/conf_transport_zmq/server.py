"""The server side of the ZeroMQ transport: one ROUTER, for control and for media both ways.

Each DEALER routing id that greets becomes one :class:`ZmqServerLink`. ZeroMQ does not tell the ROUTER
when a peer vanishes, so a link lives until it says goodbye (``B``), or until the meeting core closes it:
conf's heartbeat timeout (6 s) is what drops a killed client. A closed link's routing id is forgotten; its
later messages are dropped (answered with ``B``) unless it greets again.

Media going down is sent to each link the meeting core chose, addressed by its routing id, exactly as
TCP and RTP send to each chosen connection: nothing of a meeting is ever written to a connection that is
not a participant of it (not even ciphertext, so not its timing either), and a link the server has
closed gets nothing more, its routing id being forgotten. (PUB/SUB, which this transport used before,
filters on the subscriber's word, and ZeroMQ cannot drop one peer of a PUB socket; an XPUB whose
subscriptions the server sets still cannot take them back from a peer that sends nothing.)

The ROUTER is a plain socket read from the event loop's reader callback: sends do not go through
futures, and after every send the reader checks the socket again, since ZeroMQ's file descriptor only
signals changes and a send may have taken in the news of waiting input.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, cast

import zmq
import zmq.asyncio
from zmq.backend import Socket as BareSocket

from conf_cli import ConfError, Link, Listener, ProtocolError, ServerEvents, TransportOptions

from . import wire
from .keys import KeyService, open_service

log = logging.getLogger("conf.transport.zmq")

MAX_LINKS = 2_000
"""Routing ids greeted at once; more are answered ``B`` ("server full")."""
ROUTER_SNDHWM = 2_000
"""Messages queued per client on the ROUTER (control and media, about 2.4 MB of video); beyond, media
for that client is dropped and its control messages wait in its backlog."""
ROUTER_RCVHWM = 2_000
ZMTP_HEARTBEAT_MS = 2_000
ZMTP_HANDSHAKE_MS = 5_000
"""A connection that has not finished ZeroMQ's handshake by then is dropped (libzmq's default is 30 s)."""
BATCH = 64
"""Messages handled before the reader yields to the event loop."""
MAX_LOGGED_STRANGERS = 256
"""Routing ids without a link whose first bad message is logged; past that many, only counted."""


@dataclass
class ZmqStats:
    """Counters of one listener (dropped input never reaches the meeting core)."""

    malformed: int = 0
    unknown_sender: int = 0
    bad_greetings: int = 0
    refused_full: int = 0
    send_failures: int = 0
    control_delayed: int = 0


_send_frame = BareSocket.send
"""The per-frame calls of pyzmq's own socket: ``zmq.Socket.send`` and ``recv`` wrap them in a Python call
that handles options conf does not use (routing_id, group), which costs about 0.4 us per frame; a media
packet fanned out to twenty clients is forty frames (each routing id, then the packet)."""
_recv_frame = BareSocket.recv
_get_option = BareSocket.get


def recv_frames(sock: zmq.Socket[Any]) -> list[bytes]:
    """The frames of the next message without waiting (zmq.Again if none waits): the first three at most,
    the rest read and dropped (a message of more than two frames is malformed anyway, and still seen to
    be so)."""
    frames = [_recv_frame(sock, zmq.DONTWAIT)]
    while _get_option(sock, zmq.RCVMORE):
        frame = _recv_frame(sock, zmq.DONTWAIT)  # the parts of a message arrive together
        if len(frames) < 3:
            frames.append(frame)
    return frames


def configure(sock: zmq.Socket[Any], host: str, **options: int) -> None:
    """Common socket options, then ``options`` (names of zmq constants)."""
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, wire.SOCKET_MAX_FRAME)
    sock.setsockopt(zmq.HEARTBEAT_IVL, ZMTP_HEARTBEAT_MS)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3 * ZMTP_HEARTBEAT_MS)
    sock.setsockopt(zmq.HANDSHAKE_IVL, ZMTP_HANDSHAKE_MS)
    if ":" in host:
        sock.setsockopt(zmq.IPV6, 1)
    for name, value in options.items():
        sock.setsockopt(getattr(zmq, name), value)


def tcp_endpoint(host: str, port: int) -> str:
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


def bound_port(sock: zmq.Socket[Any]) -> int:
    return int(sock.getsockopt_string(zmq.LAST_ENDPOINT).rsplit(":", 1)[1])


class ZmqServerLink(Link):
    """One client (one DEALER routing id) as the server sees it."""

    media_ordered = True

    def __init__(self, listener: ZmqListener, identity: bytes, peer: str) -> None:
        super().__init__(peer, listener)
        self.identity = identity
        self._owner = listener
        self._closed = False
        self._backlog = wire.ControlBacklog()

    def send_control(self, data: bytes) -> None:
        """Queue a control message; one that does not fit in the ROUTER's queue waits in a bounded backlog."""
        if self._closed:
            return
        if len(data) > wire.MAX_PAYLOAD:
            raise ProtocolError(f"control message of {len(data)} bytes exceeds {wire.MAX_PAYLOAD}")
        self.stats.control_out += 1
        self.stats.bytes_out += len(data)
        if not self._backlog and self._send_control(data):
            return
        self._owner.counters.control_delayed += 1
        if not self._backlog.add(data):  # as on TCP, a peer that cannot keep up is let go
            self.close("peer too slow to read control messages")
        else:
            self._owner.backlogged(self)

    def flush(self) -> bool:
        """Move waiting control messages into the ROUTER's queue, in order; True once none wait."""
        return self._closed or self._backlog.flush(self._send_control)

    def _send_control(self, data: bytes) -> bool:
        return self._owner.send(self.identity, wire.CONTROL, data)

    def send_media(self, packet: bytes) -> bool:
        """Send one packet to this client alone; dropped while its queue is full or control waits."""
        if self._closed or self._backlog or len(packet) > wire.MAX_PAYLOAD:
            self.stats.media_dropped += 1
            return False
        if not self._owner.send(self.identity, wire.MEDIA, packet):
            self.stats.media_dropped += 1
            return False
        self.stats.media_out += 1
        self.stats.bytes_out += len(packet)
        return True

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
    """A ROUTER bound at ``tcp://HOST:PORT``, read from the event loop."""

    def __init__(
        self,
        router: zmq.Socket[Any],
        events: ServerEvents,
        *,
        max_links: int = MAX_LINKS,
    ) -> None:
        self._router = router
        self._events = events
        self.max_links = max_links
        self.url = "zmq://" + router.getsockopt_string(zmq.LAST_ENDPOINT).removeprefix("tcp://")
        self.links: dict[bytes, ZmqServerLink] = {}
        self.counters = ZmqStats()
        self._greeting = wire.server_greeting()
        self._logged: set[bytes] = set()
        self._recently_closed: dict[bytes, None] = {}  # their late messages are no news: not logged
        self._closed = False
        self._loop = asyncio.get_running_loop()
        self._read_pending = False
        self._backlogged: set[ZmqServerLink] = set()
        self._flusher: asyncio.Task[None] | None = None
        self.key_service: KeyService | None = None
        self._fd = int(router.getsockopt(zmq.FD))
        self._loop.add_reader(self._fd, self._wake)
        self._wake()

    @classmethod
    async def open(cls, host: str, port: int, events: ServerEvents, options: TransportOptions) -> ZmqListener:
        context = zmq.asyncio.Context.instance()
        router: zmq.Socket[Any] = zmq.Socket(context, zmq.ROUTER)  # read through the loop's reader: plain
        security = options.security
        service: KeyService | None = None
        try:
            # Mandatory routing makes a full or vanished peer's queue an error we see, not a silent drop.
            configure(router, host, ROUTER_MANDATORY=1, SNDHWM=ROUTER_SNDHWM, RCVHWM=ROUTER_RCVHWM)
            if security is not None:
                if security.identity is None:
                    raise ConfError("a CURVE server needs an identity key")
                security.message().secure_server(router, security.identity)
            _bind(router, host, port, "")
            if security is not None and security.identity is not None:
                bound = bound_port(router)
                try:
                    service = await open_service(host, bound, security.identity.public_key)
                except OSError as exc:
                    raise ConfError(
                        f"cannot open the ZeroMQ key service on UDP {host}:{bound}: {exc.strerror or exc}"
                    ) from None
        except BaseException:
            router.close(0)
            if service is not None:
                service.close()
            raise
        max_links = int(options.extra.get("zmq_max_links") or MAX_LINKS)
        listener = cls(router, events, max_links=max_links)
        listener.key_service = service
        return listener

    def stats(self) -> dict[str, int]:
        return {**asdict(self.counters), "links": len(self.links)}

    # -- sending -----------------------------------------------------------------------------------

    def send(self, identity: bytes, kind: bytes, payload: bytes) -> bool:
        """Queue one message for one routing id; False if its queue is full or it is not connected."""
        if self._closed:
            return False
        try:
            self._router.send_multipart([identity, *wire.frames(kind, payload)], flags=zmq.DONTWAIT)
        except zmq.ZMQError as exc:
            if not isinstance(exc, zmq.Again):
                log.debug("zmq send failed: %s", exc)
            self.counters.send_failures += 1
            return False
        finally:
            self._wake()  # a send may have taken in the news of waiting input: look again
        return True

    def forward_media(self, packet: bytes, links: Iterable[Link]) -> int:
        """Send one packet to each of ``links`` (the meeting core's choice), each on its own routing id.

        The same as a loop of :meth:`ZmqServerLink.send_media`, with the per-message work hoisted out."""
        targets = cast("Iterable[ZmqServerLink]", links)  # the server groups links by their listener
        if self._closed or len(packet) > wire.MAX_PAYLOAD:
            for link in targets:
                link.stats.media_dropped += 1
            return 0
        router, send = self._router, _send_frame
        more, last = zmq.SNDMORE | zmq.DONTWAIT, zmq.DONTWAIT
        size = len(packet)
        sent = 0
        for link in targets:
            stats = link.stats
            if link._closed or link._backlog:
                stats.media_dropped += 1
                continue
            try:  # with ROUTER_MANDATORY a full or unknown peer fails here, at the first frame
                send(router, link.identity, more)
            except zmq.ZMQError:
                self.counters.send_failures += 1
                stats.media_dropped += 1
                continue
            send(router, packet, last)
            stats.media_out += 1
            stats.bytes_out += size
            sent += 1
        self._wake()  # the sends may have taken in the news of waiting input
        return sent

    def backlogged(self, link: ZmqServerLink) -> None:
        """``link`` has control messages waiting: retry them until its queue takes them."""
        self._backlogged.add(link)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        while self._backlogged and not self._closed:
            await asyncio.sleep(wire.BACKLOG_POLL)
            for link in list(self._backlogged):
                if link.is_closing or link.flush():
                    self._backlogged.discard(link)

    # -- receiving ---------------------------------------------------------------------------------

    def _wake(self) -> None:
        """Read the ROUTER soon (once per event-loop turn, however many times asked)."""
        if not self._read_pending and not self._closed:
            self._read_pending = True
            self._loop.call_soon(self._read)

    def _read(self) -> None:
        """Handle up to BATCH messages; ask to be called again if more may wait."""
        self._read_pending = False
        router = self._router
        for _ in range(BATCH):
            if self._closed:
                return
            try:
                frames = router.recv_multipart(flags=zmq.DONTWAIT, copy=False)
            except zmq.Again:
                return
            except zmq.ZMQError as exc:
                if self._closed or exc.errno in (zmq.ETERM, zmq.ENOTSOCK):
                    return
                log.warning("zmq receive failed: %s", exc)
                self._loop.call_later(0.1, self._wake)
                return
            try:
                self._handle(frames)
            except Exception:  # a bug in one message's handling must not stop the listener
                log.exception("error handling a zmq message")
        self._wake()

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

    def _handle(self, frames: list[zmq.Frame]) -> None:
        if len(frames[0]) > wire.MAX_ROUTING_ID:
            self.counters.malformed += 1
            return
        identity = frames[0].bytes
        try:
            if len(frames) > 3:  # (not copied out to be refused)
                raise ProtocolError(f"message of {len(frames) - 1} frames, expected 1 (or 2: G, B)")
            kind, payload = wire.split([frame.bytes for frame in frames[1:]])
        except ProtocolError as exc:
            self.counters.malformed += 1
            if identity not in self.links:
                self._log_stranger(identity, str(exc))
            return
        link = self.links.get(identity)
        if link is None:
            if kind == wire.GREETING:
                self._greet(identity, payload, frames[1])
            elif kind != wire.BYE:
                self.counters.unknown_sender += 1
                self._log_stranger(identity, "not greeted")
                self.send(identity, wire.BYE, wire.bye("not connected; greet first"))
            return
        stats = link.stats
        stats.bytes_in += len(payload)
        if kind == wire.CONTROL:
            stats.control_in += 1
            self._events.control_received(link, payload)
        elif kind == wire.MEDIA:
            stats.media_in += 1
            self._events.media_received(link, payload)
        elif kind == wire.KEEPALIVE:
            self._events.keepalive_received(link)
        elif kind == wire.BYE:
            link._closed = True
            link._backlog.clear()
            self.forget(link, f"closed by peer: {wire.read_bye(payload)}")
        else:  # a repeated greeting: answer it again, the link stays
            self.send(identity, wire.GREETING, self._greeting)

    def _greet(self, identity: bytes, payload: bytes, frame: zmq.Frame) -> None:
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
        try:
            address = str(frame.get("Peer-Address"))
        except (zmq.ZMQError, KeyError, ValueError):
            address = "?"
        link = ZmqServerLink(self, identity, f"{address} (zmq id {identity.hex()[:16]})")
        self.links[identity] = link
        self.send(identity, wire.GREETING, self._greeting)
        self._events.link_opened(link)

    def forget(self, link: ZmqServerLink, reason: str) -> None:
        """Drop a link's routing id and tell the server, from the event loop (never re-entrantly)."""
        if self.links.get(link.identity) is link:
            del self.links[link.identity]
        self._backlogged.discard(link)
        self._recently_closed[link.identity] = None
        if len(self._recently_closed) > MAX_LOGGED_STRANGERS:
            del self._recently_closed[next(iter(self._recently_closed))]
        self._loop.call_soon(self._events.link_closed, link, reason)

    async def close(self) -> None:
        if self._closed:
            return
        for link in list(self.links.values()):
            link.close("server shutting down")
        await asyncio.sleep(0.05)  # let libzmq write the goodbyes before the socket goes
        self._closed = True
        self._loop.remove_reader(self._fd)
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        self._router.close(linger=0)
        if self.key_service is not None:
            self.key_service.close()


def _bind(sock: zmq.Socket[Any], host: str, port: int, what: str) -> None:
    try:
        sock.bind(tcp_endpoint(host, port))
    except zmq.ZMQError as exc:
        if exc.errno == zmq.EADDRINUSE:
            raise ConfError(
                f"port {port} on {host} is already in use{what}; pick another with --port"
            ) from None
        raise ConfError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
