"""The server side of the ZeroMQ transport: a ROUTER for control (and media upstream), a PUB for media.

Each DEALER routing id that greets becomes one :class:`ZmqServerLink`. ZeroMQ does not tell the ROUTER
when a peer vanishes, so a link lives until it says goodbye (``B``), or until the meeting core closes it:
conf's heartbeat timeout (6 s) is what drops a killed client. A closed link's routing id is forgotten; its
later messages are dropped (answered with ``B``) unless it greets again.

Security: PUB/SUB has no access control. Anyone who can reach the PUB port can subscribe to any topic,
including the SSRC of a track in a meeting they are not in. The listener refuses to publish a topic for
two senders (see :mod:`.topics`), so no one can inject packets into another meeting's track through the
PUB socket, but media *confidentiality* across meetings on this transport relies on media encryption
(end-to-end encryption plugin), not on the transport. Bind to a trusted interface until that is in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, cast

import zmq
import zmq.asyncio

from conf_cli.errors import ConfError, ProtocolError
from conf_cli.transport import Link, Listener, ServerEvents, TransportOptions

from . import wire
from .access import guard
from .keys import KeyService, open_service
from .topics import TopicOwners

log = logging.getLogger("conf.transport.zmq")

MAX_LINKS = 2_000
"""Routing ids greeted at once; more are answered ``B`` ("server full")."""
ROUTER_SNDHWM = 2_000
"""Messages queued per client on the ROUTER (control and point-to-point RTCP); beyond, media is dropped
and a client that cannot take control messages is disconnected."""
ROUTER_RCVHWM = 2_000
PUB_SNDHWM = 1_000
"""Media messages queued per subscriber on the PUB (about 1.2 MB of video); beyond, that subscriber
loses media and nobody else notices."""
ZMTP_HEARTBEAT_MS = 2_000
ZMTP_HANDSHAKE_MS = 5_000
"""A connection that has not finished ZeroMQ's handshake by then is dropped (libzmq's default is 30 s)."""
BATCH = 64
"""Messages handled before the reader yields to the event loop."""
SWEEP_SECONDS = 10.0
MAX_LOGGED_STRANGERS = 256
"""Routing ids without a link whose first bad message is logged; past that many, only counted."""


@dataclass
class ZmqStats:
    """Counters of one listener (dropped input never reaches the meeting core)."""

    malformed: int = 0
    unknown_sender: int = 0
    bad_greetings: int = 0
    refused_full: int = 0
    published: int = 0
    point_to_point: int = 0
    send_failures: int = 0


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


def send_now(sock: zmq.asyncio.Socket, parts: list[bytes]) -> bool:
    """Send without waiting; False if the message was not queued."""
    future = cast("asyncio.Future[object]", sock.send_multipart(parts, flags=zmq.DONTWAIT))
    if not future.done():  # only when sends were already waiting, which this package never does
        return True
    exc = future.exception()
    if exc is None:
        return True
    if not isinstance(exc, zmq.Again):
        log.debug("zmq send failed: %s", exc)
    return False


class ZmqServerLink(Link):
    """One client (one DEALER routing id) as the server sees it."""

    media_ordered = True

    def __init__(self, listener: ZmqListener, identity: bytes, peer: str, curve_key: bytes = b"") -> None:
        super().__init__(peer, listener)
        self.identity = identity
        self.curve_key = curve_key  # the client's CURVE key (z85), empty without encryption
        self._owner = listener
        self._closed = False

    def send_control(self, data: bytes) -> None:
        if self._closed:
            return
        if len(data) > wire.MAX_PAYLOAD:
            raise ProtocolError(f"control message of {len(data)} bytes exceeds {wire.MAX_PAYLOAD}")
        if self._owner.send(self.identity, wire.CONTROL, data):
            self.stats.control_out += 1
            self.stats.bytes_out += len(data)
        else:  # its queue is full (or it is gone): as on TCP, a peer that cannot keep up is let go
            self.close("peer too slow to read control messages")

    def send_media(self, packet: bytes) -> bool:
        if self._closed or len(packet) > wire.MAX_PAYLOAD:
            self.stats.media_dropped += 1
            return False
        if not self._owner.send(self.identity, wire.MEDIA, packet):
            self.stats.media_dropped += 1
            return False
        self.stats.media_out += 1
        self.stats.bytes_out += len(packet)
        return True

    def close(self, reason: str = "closed") -> None:
        """Say goodbye (``B``) and forget the routing id."""
        if self._closed:
            return
        self._closed = True
        self._owner.send(self.identity, wire.BYE, wire.bye(reason))
        self._owner.forget(self, reason)

    @property
    def is_closing(self) -> bool:
        return self._closed


class ZmqListener(Listener):
    """A ROUTER bound at ``tcp://HOST:PORT`` and a PUB bound at ``pub_port`` on the same host."""

    def __init__(
        self,
        context: zmq.asyncio.Context,
        router: zmq.asyncio.Socket,
        pub: zmq.Socket[Any],
        events: ServerEvents,
        *,
        max_links: int = MAX_LINKS,
    ) -> None:
        self._context = context
        self._router = router
        self._pub = pub
        self._events = events
        self.max_links = max_links
        self.pub_port = bound_port(pub)
        self.url = "zmq://" + router.getsockopt_string(zmq.LAST_ENDPOINT).removeprefix("tcp://")
        self.links: dict[bytes, ZmqServerLink] = {}
        self.counters = ZmqStats()
        self.topics = TopicOwners()
        self._greeting = wire.server_greeting(self.pub_port)
        self._sender: ZmqServerLink | None = None
        self._logged: set[bytes] = set()
        self._recently_closed: dict[bytes, None] = {}  # their late messages are no news: not logged
        self._closed = False
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._sweep())]
        self.key_service: KeyService | None = None
        self.subscribers: set[bytes] = set()

    @classmethod
    async def open(cls, host: str, port: int, events: ServerEvents, options: TransportOptions) -> ZmqListener:
        context = zmq.asyncio.Context.instance()
        router = context.socket(zmq.ROUTER)
        pub: zmq.Socket[Any] = zmq.Socket(context, zmq.PUB)  # write-only: a plain socket
        security = options.security
        service: KeyService | None = None
        subscribers: set[bytes] = set()  # CURVE keys of open links: who may connect to the PUB
        try:
            # Mandatory routing makes a full or vanished peer's queue an error we see, not a silent drop.
            configure(router, host, ROUTER_MANDATORY=1, SNDHWM=ROUTER_SNDHWM, RCVHWM=ROUTER_RCVHWM)
            configure(pub, host, SNDHWM=PUB_SNDHWM)
            if security is not None:
                if security.identity is None:
                    raise ConfError("a CURVE server needs an identity key")
                curve = security.message()
                curve.secure_server(router, security.identity)
                curve.secure_server(pub, security.identity)
                guard(context, router, pub, lambda key: key in subscribers)
            _bind(router, host, port, "")
            if security is not None and security.identity is not None:
                bound = bound_port(router)
                try:
                    service = await open_service(host, bound, security.identity.public_key)
                except OSError as exc:
                    raise ConfError(
                        f"cannot open the ZeroMQ key service on UDP {host}:{bound}: {exc.strerror or exc}"
                    ) from None
            pub_port = int(options.extra.get("zmq_pub_port") or (port + 1 if 0 < port < 65_535 else 0))
            _bind(pub, host, pub_port, f" (the ZeroMQ media port is --port + 1, here {pub_port})")
        except BaseException:
            router.close(0)
            pub.close(0)
            if service is not None:
                service.close()
            raise
        max_links = int(options.extra.get("zmq_max_links") or MAX_LINKS)
        listener = cls(context, router, pub, events, max_links=max_links)
        listener.key_service = service
        listener.subscribers = subscribers
        return listener

    def stats(self) -> dict[str, int]:
        return {
            **asdict(self.counters),
            "links": len(self.links),
            "topics": len(self.topics),
            "topics_contested": self.topics.contested,
        }

    # -- sending -----------------------------------------------------------------------------------

    def send(self, identity: bytes, kind: bytes, payload: bytes) -> bool:
        if self._closed:
            return False
        if send_now(self._router, [identity, kind, payload]):
            return True
        self.counters.send_failures += 1
        return False

    def forward_media(self, packet: bytes, links: Iterable[Link]) -> int:
        """Publish an RTP packet once, under its SSRC; send anything else point to point.

        The meeting core chose ``links`` (everyone in the meeting but the publisher); on the PUB socket the
        packet reaches the SUBs subscribed to its SSRC, which are the clients that were told of the track.
        RTCP, and RTP whose topic another sender uses too (see :mod:`.topics`), go to each of ``links``
        through the ROUTER instead. Drops at the PUB's high-water mark are not visible per subscriber.
        """
        targets = [link for link in links if not link.is_closing]
        if not targets:
            return 0
        name = wire.rtp_topic(packet)
        sender = self._sender.id if self._sender is not None else None
        if (
            name is not None
            and len(packet) <= wire.MAX_PAYLOAD
            and not self._closed
            and self.topics.may_publish(name, sender, time.monotonic())
        ):
            try:
                self._pub.send_multipart([name, packet], flags=zmq.DONTWAIT)
            except zmq.ZMQError:
                for link in targets:
                    link.stats.media_dropped += 1
                return 0
            self.counters.published += 1
            size = len(packet)
            for link in targets:
                link.stats.media_out += 1
                link.stats.bytes_out += size
            return len(targets)
        self.counters.point_to_point += 1
        return sum(link.send_media(packet) for link in targets)

    # -- receiving ---------------------------------------------------------------------------------

    async def _read(self) -> None:
        router = self._router
        handled = 0
        while True:
            try:
                frames = await router.recv_multipart(copy=False)
            except zmq.ZMQError as exc:
                if self._closed or exc.errno in (zmq.ETERM, zmq.ENOTSOCK):
                    return
                log.warning("zmq receive failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            try:
                self._handle(frames)
            except Exception:  # a bug in one message's handling must not stop the listener
                log.exception("error handling a zmq message")
            handled += 1
            if handled % BATCH == 0:
                await asyncio.sleep(0)

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
            if len(frames) != 3:
                raise ProtocolError(f"message of {len(frames) - 1} frames, expected 2")
            kind, payload = wire.split([frames[1].bytes, frames[2].bytes])
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
            self._sender = link
            try:
                self._events.media_received(link, payload)
            finally:
                self._sender = None
        elif kind == wire.KEEPALIVE:
            self._events.keepalive_received(link)
        elif kind == wire.BYE:
            link._closed = True
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
        try:
            curve_key = str(frame.get("User-Id")).encode() if self.key_service is not None else b""
        except (zmq.ZMQError, KeyError, ValueError):
            curve_key = b""
        link = ZmqServerLink(self, identity, f"{address} (zmq id {identity.hex()[:16]})", curve_key)
        self.links[identity] = link
        if curve_key:
            self.subscribers.add(curve_key)
        self.send(identity, wire.GREETING, self._greeting)
        self._events.link_opened(link)

    def forget(self, link: ZmqServerLink, reason: str) -> None:
        """Drop a link's routing id and tell the server, from the event loop (never re-entrantly)."""
        if self.links.get(link.identity) is link:
            del self.links[link.identity]
        self._recently_closed[link.identity] = None
        if len(self._recently_closed) > MAX_LOGGED_STRANGERS:
            del self._recently_closed[next(iter(self._recently_closed))]
        if link.curve_key and not any(other.curve_key == link.curve_key for other in self.links.values()):
            self.subscribers.discard(link.curve_key)
        self.topics.release(link.id)
        asyncio.get_running_loop().call_soon(self._events.link_closed, link, reason)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            self.topics.expire(time.monotonic())

    async def close(self) -> None:
        if self._closed:
            return
        for link in list(self.links.values()):
            link.close("server shutting down")
        await asyncio.sleep(0.05)  # let libzmq write the goodbyes before the sockets go
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._router.close(linger=0)
        self._pub.close(linger=0)
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
