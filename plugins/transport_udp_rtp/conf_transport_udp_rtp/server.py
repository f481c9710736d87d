"""The server side of the RTP transport: TCP control links, one UDP socket per listening address.

The sans-I/O :class:`~.latch.Latches` decides which address speaks for which link and where its media may
go (after consent); this edge feeds it datagrams and the time, and carries out its actions.

With encryption on, each control link is TLS and each link has its own SRTP keys, sent in its token frame:
media from a client is checked and decrypted as it arrives, and protected again for each receiver.

A fan-out (:meth:`RtpListener.forward_media`) costs two compiled calls, whatever the number of receivers:
the media cipher's batch protector (one packet protected for every receiver, into the slots of one
preallocated buffer) and one ``sendmmsg`` (:mod:`._sendmany`) for the datagrams. What a fan-out needs
of its receivers (socket, packed address, SRTP session) is worked out once per receiver group and kept
until a link latches, moves or closes. Without the compiled module (or with ``CONF_PURE_PYTHON=1``) each
datagram is protected and sent in turn, with the same result on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import struct
import time
from array import array
from collections.abc import Callable, Iterable
from typing import Any

from conf_cli import (
    HANDSHAKE_TIMEOUT,
    BatchProtect,
    ConfError,
    Link,
    Listener,
    MediaCipher,
    MediaSession,
    ServerEvents,
    StreamLink,
    TransportOptions,
    server_tls,
)
from conf_cli.protocol.rtp import is_rtcp

from .latch import Action, Address, Alive, Latched, Latches, Transmit, Unlatched, new_token, token_frame
from .resend import Resends

try:
    from ._sendmany import send_many
except ImportError:  # not built: one sendto per datagram (the same datagrams, more CPU)
    send_many = None  # type: ignore[assignment]
if os.environ.get("CONF_PURE_PYTHON"):
    send_many = None  # type: ignore[assignment]

log = logging.getLogger("conf.transport.rtp")

MAX_DATAGRAM = 1500
MAX_TICK = 1.0
"""The longest the consent timer sleeps; a datagram that starts checks wakes it sooner."""
MIN_TICK = 0.02
"""The shortest: with many links, their checks are sent in batches, at most 50 times a second."""
MAX_LOGGED_SOURCES = 256
"""Addresses whose first bad datagram is logged; past that many, bad datagrams are only counted."""
SOCKET_BUFFER = 2 * 1024 * 1024
PORT_ATTEMPTS = 10
SLOT = 2048
"""Bytes per receiver in the fan-out buffer: the largest datagram and a cipher's overhead fit."""
MAX_PLANS = 1024
"""Receiver groups whose fan-out plan is kept at once (all are dropped when there are more)."""
SENT, REFUSED = 0, -1  # (a receiver's status after a fan-out; the send failed below -1)


def pack_sockaddr(family: int, address: Address | tuple[Any, ...]) -> bytes:
    """``address`` (as ``socket`` gives it) as the kernel's ``sockaddr_in``/``sockaddr_in6`` bytes."""
    host, port = address[0], address[1]
    if family == socket.AF_INET6:
        flowinfo, scope = (address[2], address[3]) if len(address) >= 4 else (0, 0)
        return (
            struct.pack("=H", family)
            + struct.pack("!HI", port, flowinfo)
            + socket.inet_pton(family, host)
            + struct.pack("=I", scope)
        )
    return struct.pack("=H", family) + struct.pack("!H", port) + socket.inet_pton(family, host) + bytes(8)


def tune(sock: socket.socket) -> None:
    """Non-blocking, with room for a burst of video packets (the kernel may cap the sizes)."""
    sock.setblocking(False)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)


class RtpServerLink(StreamLink):
    """A client as the server sees it: control over TCP, media by UDP to its latched address."""

    media_ordered = False

    def __init__(self, *callbacks: Any, token: bytes) -> None:
        super().__init__(*callbacks)
        self.token = token
        self.media_socket: socket.socket | None = None
        self.media_address: Address | None = None
        self.media_sockaddr: bytes | None = None
        """:attr:`media_address` packed for ``sendmmsg``."""
        self.send_dropped: Callable[[], None] = lambda: None
        self.refused: Callable[[], None] = lambda: None
        self.srtp: MediaSession | None = None
        self.resends: Resends | None = None  # the listener's, with SRTP: NACKs this link is sent are noted
        self.protect_refused = 0
        """Packets SRTP would not protect for this link (an index reused with other bytes, or too old)."""

    def protect(self, packet: bytes) -> bytes | None:
        """``packet`` protected for this link; None (counted, logged once per link) if SRTP refuses it.

        A refusal concerns this receiver alone: whoever else gets the packet gets it."""
        srtp = self.srtp
        if srtp is None:
            return packet
        try:
            protected = srtp.protect(packet)
        except Exception:  # whatever a cipher plugin raises stays with this link
            log.debug("protecting a packet for link %s failed", self.id, exc_info=True)
            protected = None
        if protected is None:
            self.not_protected()
        return protected

    def not_protected(self) -> None:
        """Count (and log once per link) a packet SRTP would not protect for this receiver."""
        self.protect_refused += 1
        self.stats.media_dropped += 1
        if self.protect_refused == 1:
            log.info(
                "link %s (%s): a media packet could not be protected (an index already used for "
                "other bytes, or too old); dropped for this receiver (logged once per link)",
                self.id,
                self.peer,
            )

    def latch(self, sock: socket.socket | None, address: Address | None) -> None:
        """Send media to ``address`` through ``sock`` from now on (None: nowhere)."""
        self.media_socket, self.media_address = sock, address
        self.media_sockaddr = None if sock is None or address is None else pack_sockaddr(sock.family, address)

    def send_media(self, packet: bytes) -> bool:
        sock, address = self.media_socket, self.media_address
        if sock is None or address is None or self.is_closing:
            self.stats.media_dropped += 1
            self.send_dropped()
            return False
        if self.srtp is not None:
            if self.resends is not None and is_rtcp(packet):
                self.resends.forwarded(packet, time.monotonic())
            protected = self.protect(packet)
            if protected is None:
                self.refused()
                return False
            packet = protected
        try:
            sock.sendto(packet, address)
        except OSError:  # the socket buffer is full (EAGAIN), or the network says no: drop, never wait
            self.stats.media_dropped += 1
            self.send_dropped()
            return False
        self.stats.media_out += 1
        self.stats.bytes_out += len(packet)
        return True


class _MediaSocket(asyncio.DatagramProtocol):
    """Datagrams on one UDP socket: STUN binds, RTP/RTCP from latched addresses, everything else counted."""

    def __init__(
        self,
        sock: socket.socket,
        latches: Latches[RtpServerLink],
        events: ServerEvents,
        apply: Callable[[list[Action]], None],
    ) -> None:
        self.sock = sock
        self.latches = latches
        self.events = events
        self.apply = apply
        self.transport: asyncio.DatagramTransport | None = None
        self._logged: set[Address] = set()

    def _log_once(self, addr: Address, why: str) -> None:
        """Log the first bad datagram from each address (up to MAX_LOGGED_SOURCES of them)."""
        logged = self._logged
        if addr in logged or len(logged) > MAX_LOGGED_SOURCES:
            return
        logged.add(addr)
        if len(logged) > MAX_LOGGED_SOURCES:
            log.info("more addresses send bad datagrams; they are counted, no longer logged")
        else:
            log.info("dropping datagrams from %s:%s: %s (logged once per address)", addr[0], addr[1], why)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Address) -> None:
        stats = self.latches.stats
        stats.datagrams_in += 1
        size = len(data)
        if size > MAX_DATAGRAM:
            stats.dropped_oversize += 1
            return
        if size >= 8 and data[0] >> 6 == 2:  # RTP or RTCP (version 2)
            link = self.latches.lookup(addr)
            if link is None:
                stats.dropped_unknown += 1
                self._log_once(addr, "media from an address no link has proved")
                return
            if link.srtp is not None:
                clear = link.srtp.unprotect(data)
                if clear is None and link.resends is not None and link.resends.take(data, time.monotonic()):
                    clear = link.srtp.unprotect(data, resent=True)  # asked for again: see .resend
                if clear is None:
                    stats.dropped_unauthenticated += 1
                    return
                data = clear
            stats.media_in += 1
            link.stats.media_in += 1
            link.stats.bytes_in += size
            self.events.media_received(link, data)
        elif size >= 20 and data[0] < 0x40:
            replayed = stats.stun_replayed
            actions = self.latches.receive(data, addr, time.monotonic(), self.sock)
            if stats.stun_replayed != replayed:
                self._log_once(addr, "a replayed STUN request")
            self.apply(actions)
        else:
            stats.dropped_malformed += 1

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)


class _Segment:
    """The receivers of a fan-out that share one UDP socket, ready for two compiled calls."""

    __slots__ = ("addresses", "each", "fd", "links", "protect")

    def __init__(
        self,
        fd: int,
        links: tuple[RtpServerLink, ...],
        addresses: tuple[bytes, ...],
        protect: BatchProtect | None,
        each: bool = False,
    ) -> None:
        self.fd = fd
        self.links = links
        self.addresses = addresses
        self.protect = protect
        """The media cipher's batch protector for these links; None without encryption."""
        self.each = each
        """Protect and send for each link in turn: their cipher has no batch protector."""


class _Plan:
    """What a fan-out to one group of links needs, worked out once (see :meth:`RtpListener.forward_media`)."""

    __slots__ = ("epoch", "group", "segments", "unlatched")

    def __init__(
        self, group: tuple[Link, ...], epoch: int, segments: list[_Segment], unlatched: list[Link]
    ) -> None:
        self.group = group  # held, so that its id() names no other group while the plan lives
        self.epoch = epoch
        self.segments = segments
        self.unlatched = unlatched


class RtpListener(Listener):
    def __init__(self, latches: Latches[RtpServerLink]) -> None:
        self.latches = latches
        self.links: set[RtpServerLink] = set()
        self.url = ""
        self._server: asyncio.Server | None = None
        self._media: list[_MediaSocket] = []
        self.resends: Resends | None = None
        self._events: ServerEvents | None = None
        self._wake = asyncio.Event()
        self._wake_at = 0.0  # when the consent timer wakes next
        self._timer: asyncio.Task[None] | None = None
        self.cipher: MediaCipher | None = None
        self._plans: dict[int, _Plan] = {}  # by id() of the links tuple a fan-out is asked for
        self._epoch = 0  # bumped when a link latches, moves, unlatches, opens or closes: plans redone
        self._slots = 0
        self._buffer = bytearray()
        self._status = array("i")

    def stun_received(self, actions: list[Action]) -> None:
        """Carry out what a STUN datagram caused, and wake the clock if it has something due sooner."""
        self.apply(actions)
        due = self.latches.new_deadline
        if due is not None and due < self._wake_at:
            self._wake.set()

    def apply(self, actions: list[Action]) -> None:
        """Carry out what the latches decided."""
        for action in actions:
            if isinstance(action, Transmit):
                with contextlib.suppress(OSError):
                    action.via.sendto(action.datagram, action.address)
            elif isinstance(action, Alive):
                if self._events is not None:
                    self._events.keepalive_received(action.link)
            elif isinstance(action, Latched):
                link = action.link
                if action.moved_from is not None:
                    log.info("link %s re-latched from %s to %s", link.id, action.moved_from, action.address)
                link.latch(action.via, action.address)
                self._links_changed()
            elif isinstance(action, Unlatched):
                link = action.link
                log.info(
                    "link %s: %s stopped answering consent checks; no media goes there",
                    link.id,
                    action.address,
                )
                if link.media_address == action.address:
                    link.latch(None, None)
                    self._links_changed()

    async def _consent_timer(self) -> None:
        """Run the latches' clock: check retransmissions, consent refreshes and expiries."""
        while True:
            deadline = self.latches.next_deadline()
            now = time.monotonic()
            wait = MAX_TICK if deadline is None else min(MAX_TICK, max(MIN_TICK, deadline - now))
            self._wake_at = now + wait
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            try:
                self.apply(self.latches.tick(time.monotonic()))
            except Exception:  # never let one bad state stop consent for every link
                log.exception("RTP consent timer")

    def forward_media(self, packet: bytes, links: Iterable[Link]) -> int:
        """Send ``packet`` to each of ``links``: protected for each (SRTP) and sent in one ``sendmmsg``.

        RTCP (whose NACKs are noted for resends), a packet too long for a slot, and a listener without the
        compiled sender go through :meth:`forward_each`."""
        if send_many is None or len(packet) + 64 > SLOT or is_rtcp(packet):
            return self.forward_each(packet, links)
        group = links if type(links) is tuple else tuple(links)
        plan = self._plans.get(id(group))
        if plan is None or plan.group is not group or plan.epoch != self._epoch:
            plan = self._plan(group)
        stats = self.latches.stats
        if plan.unlatched:
            for link in plan.unlatched:
                link.stats.media_dropped += 1
            stats.send_dropped += len(plan.unlatched)
        sent = 0
        for segment in plan.segments:
            count = len(segment.links)
            if count > self._slots:
                self._grow(count)
            status = self._status
            protect = segment.protect
            if segment.each:
                sent += self.forward_each(packet, segment.links)
                continue
            if protect is None:
                done = send_many(segment.fd, packet, 0, status, segment.addresses)
            else:
                try:
                    protect(packet, self._buffer, SLOT, status)
                except Exception:  # whatever a cipher plugin raises: each receiver on its own
                    log.debug("protecting a fan-out failed; protecting for each receiver", exc_info=True)
                    sent += self.forward_each(packet, segment.links)
                    continue
                done = send_many(segment.fd, self._buffer, SLOT, status, segment.addresses)
            sent += done
            if done == count:
                for link in segment.links:
                    link.stats.media_out += 1
                continue
            for index, link in enumerate(segment.links):
                result = status[index]
                if result >= SENT:
                    link.stats.media_out += 1
                elif result == REFUSED:  # for this receiver only (counted, logged once by the link)
                    link.not_protected()
                    stats.protect_refused += 1
                else:  # the socket buffer is full, or the network said no: dropped, never waited for
                    link.stats.media_dropped += 1
                    stats.send_dropped += 1
        return sent

    def _plan(self, group: tuple[Link, ...]) -> _Plan:
        """Group ``group``'s latched links by socket, with their packed addresses and batch protector."""
        if len(self._plans) >= MAX_PLANS:
            self._plans.clear()
        by_socket: dict[int, list[RtpServerLink]] = {}
        unlatched: list[Link] = []
        for link in group:
            sock = link.media_socket  # type: ignore[attr-defined]
            if sock is None or link.media_sockaddr is None or link.is_closing:  # type: ignore[attr-defined]
                unlatched.append(link)
            else:
                by_socket.setdefault(sock.fileno(), []).append(link)  # type: ignore[arg-type]
        segments = []
        for fd, members in by_socket.items():
            protect: BatchProtect | None = None
            sessions = [link.srtp for link in members]
            encrypted = [session for session in sessions if session is not None]
            if encrypted:
                if self.cipher is not None and len(encrypted) == len(sessions):
                    protect = self.cipher.batch_protector(encrypted)
                if protect is None:  # the cipher protects one packet at a time
                    segments.append(_Segment(fd, tuple(members), (), None, each=True))
                    continue
            addresses = tuple(link.media_sockaddr for link in members)
            segments.append(_Segment(fd, tuple(members), addresses, protect))  # type: ignore[arg-type]
        plan = self._plans[id(group)] = _Plan(group, self._epoch, segments, unlatched)
        return plan

    def _links_changed(self) -> None:
        """A link latched, moved, unlatched, opened or closed: every plan is redone (and none holds a link
        that has gone)."""
        self._epoch += 1
        self._plans.clear()

    def _grow(self, count: int) -> None:
        self._slots = max(count, 2 * self._slots)
        self._buffer = bytearray(self._slots * SLOT)
        self._status = array("i", bytes(4 * self._slots))

    def forward_each(self, packet: bytes, links: Iterable[Link]) -> int:
        """Protect and send ``packet`` for each of ``links`` in turn (one ``sendto`` each)."""
        sent = 0
        stats = self.latches.stats
        if is_rtcp(packet) and self.resends is not None:  # RTCP: NACKs to publishers are noted
            self.resends.forwarded(packet, time.monotonic())
        for link in links:
            sock = link.media_socket  # type: ignore[attr-defined]
            address = link.media_address
            if address is None or sock is None:
                link.stats.media_dropped += 1
                stats.send_dropped += 1
                continue
            out = packet if link.srtp is None else link.protect(packet)  # type: ignore[attr-defined]
            if out is None:  # refused for this receiver only (counted, logged once by the link)
                stats.protect_refused += 1
                continue
            try:
                sock.sendto(out, address)
            except OSError:
                link.stats.media_dropped += 1
                stats.send_dropped += 1
                continue
            link_stats = link.stats
            link_stats.media_out += 1
            link_stats.bytes_out += len(out)  # as the one-link path counts it, for the metrics
            sent += 1
        return sent

    def stats(self) -> dict[str, int]:
        return {**self.latches.stats.as_dict(), "links": len(self.links)}

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._server is not None:
            self._server.close()
        for link in list(self.links):
            link.close("server shutting down")
        for media in self._media:
            if media.transport is not None:
                media.transport.close()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def start(
        self, host: str, port: int, events: ServerEvents, options: TransportOptions | None = None
    ) -> None:
        """Listen on TCP ``host:port`` and on UDP at the same address(es) and port."""
        loop = asyncio.get_running_loop()
        latches = self.latches
        options = options or TransportOptions()
        tls = server_tls(options.security)
        srtp = options.security.media() if options.security is not None else None
        if srtp is not None:
            self.resends = Resends()
            self.cipher = srtp

        def make_link() -> RtpServerLink:
            link: RtpServerLink

            def opened() -> None:
                self._links_changed()
                link.listener = self
                self.links.add(link)
                latches.add(link, link.token)
                keys = srtp.new_keys() if srtp is not None else None
                if srtp is not None and keys is not None:
                    link.srtp = srtp.session(keys, server_side=True)
                    link.resends = self.resends
                link.send_control(token_frame(link.token, keys))  # before any conf message
                events.link_opened(link)

            def closed(reason: str) -> None:
                self._links_changed()
                self.links.discard(link)
                latches.remove(link)
                events.link_closed(link, reason)

            def dropped() -> None:
                latches.stats.send_dropped += 1

            def refused() -> None:
                latches.stats.protect_refused += 1

            link = RtpServerLink(
                lambda data: events.control_received(link, data),
                lambda packet: events.media_received(link, packet),
                lambda: events.keepalive_received(link),
                closed,
                opened,
                token=new_token(),
            )
            link.send_dropped = dropped
            link.refused = refused
            link.refuse_tls = tls is None
            return link

        for attempt in range(PORT_ATTEMPTS):
            try:
                server = await loop.create_server(
                    make_link,
                    host,
                    port,
                    reuse_address=True,
                    ssl=tls,
                    ssl_handshake_timeout=HANDSHAKE_TIMEOUT if tls is not None else None,
                )
            except OSError as exc:
                raise _listen_error(host, port, exc) from None
            socks: list[socket.socket] = []
            try:
                for tcp in server.sockets:
                    socks.append(self._bind_udp(tcp.getsockname(), tcp.family))
            except OSError as exc:
                server.close()
                for sock in socks:
                    sock.close()
                if port == 0 and exc.errno == errno.EADDRINUSE and attempt + 1 < PORT_ATTEMPTS:
                    continue  # the free TCP port is taken for UDP: try another
                raise _listen_error(host, port, exc) from None
            break
        self._server = server
        self._events = events
        self._timer = asyncio.create_task(self._consent_timer(), name="rtp-consent")
        for sock in socks:
            protocol = _MediaSocket(sock, latches, events, self.stun_received)
            await loop.create_datagram_endpoint(lambda p=protocol: p, sock=sock)  # type: ignore[misc]
            self._media.append(protocol)
        bound = server.sockets[0].getsockname()
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self.url = f"rtp://{shown}:{bound[1]}"

    @staticmethod
    def _bind_udp(address: Address, family: int) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            tune(sock)
            sock.bind(address)
        except OSError:
            sock.close()
            raise
        return sock


def _listen_error(host: str, port: int, exc: OSError) -> ConfError:
    if exc.errno == errno.EADDRINUSE:
        return ConfError(f"port {port} on {host} is already in use (TCP or UDP); pick another with --port")
    return ConfError(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
