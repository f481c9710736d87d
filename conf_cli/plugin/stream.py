"""The TCP stream both stream transports and the worker front use: RFC 4571 framing over TCP, TLS 1.3.

A :class:`StreamLink` is one TCP connection carrying control and media (the ``tcp://`` transport), or
the control half of one (``rtp://`` sends media over UDP beside it); :func:`server_tls` is the server's
TLS context, and :func:`open_stream` connects a link with the server's key checked against the pin.
``conf server --workers`` terminates TLS in its front with the same context and handshake limit.

Every frame is a 16-bit length, then the payload; a payload starting with ``{`` is a JSON control
message, one whose first two bits are ``10`` is an RTP/RTCP packet, an empty one is a keep-alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from conf_cli.errors import ConfError
from conf_cli.plugin.transport import Link, TransportOptions
from conf_cli.protocol.framing import FrameDecoder, frame, is_media

if TYPE_CHECKING:
    from conf_cli.plugin.security import Security

log = logging.getLogger("conf.transport.tcp")

# A peer whose unsent control data passes this is too slow to keep: close it.
CONTROL_BUFFER_LIMIT = 4 * 1024 * 1024
# Media is dropped for a peer once this much is waiting in its socket buffer.
MEDIA_BUFFER_LIMIT = 256 * 1024
NOTSENT_LOWAT = 16 * 1024
"""Unsent bytes a TCP socket holds in the kernel before writes wait in the transport's buffer."""
MEDIA_RECORD = 4096
"""Bytes of gathered media a TLS link puts in one record at most (:meth:`StreamLink.write_media`). The
receiver reads nothing of a record before its last byte has crossed: a record of 16 kB (TLS's largest, what
one write of a picture's packets makes) takes a third of a second across a 400 kbit/s downlink, and holds
back the audio and first packets in it as long, and with them the subscriber's sight of a queue building on
its downlink (docs/media.md). Each record costs 22 bytes (0.5 % at this size)."""
MEDIA_RECORD_SPLIT = 16 * 1024
"""... only media gathered past this many bytes (what would fill TLS's largest records: a keyframe's
packets) is cut so: cutting every few packets forwarded together put tcp://'s p99 at half capacity from
1.6-2.1 ms to 2.1-2.8 ms, at the same CPU per packet (benchmarks/README.md)."""
TLS_RECORD = 0x16  # the first byte of a TLS handshake
HANDSHAKE_TIMEOUT = 10.0  # seconds a server gives a client to finish the TLS handshake


class StreamLink(Link, asyncio.Protocol):
    """One TCP connection, on either side."""

    media_ordered = True

    def __init__(
        self,
        on_control: Callable[[bytes], None],
        on_media: Callable[[bytes], None],
        on_keepalive: Callable[[], None],
        on_closed: Callable[[str], None],
        on_open: Callable[[], None] | None = None,
        already_read: bytes = b"",
    ) -> None:
        Link.__init__(self, peer="")
        self._already_read = already_read  # bytes another process read off this socket before handing it on
        self._on_open = on_open
        self._on_control = on_control
        self._on_media = on_media
        self._on_keepalive = on_keepalive
        self._on_closed = on_closed
        self._decoder = FrameDecoder()
        self._transport: asyncio.Transport | None = None
        self._close_reason = "closed by peer"
        self._closed = False
        self._tls = False  # the connection is TLS (media is written in small records)
        self.refuse_tls = False  # a plaintext server's link: a TLS handshake gets closed at once

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one
        self._transport = cast(asyncio.Transport, transport)
        self._tls = transport.get_extra_info("ssl_object") is not None
        peername = transport.get_extra_info("peername")
        if peername and isinstance(peername, tuple):
            self.peer = f"{peername[0]}:{peername[1]}"
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):  # not a relay's Unix socket
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if hasattr(socket, "TCP_NOTSENT_LOWAT"):
                # little unsent data waits in the kernel: what the link cannot carry yet waits in the
                # transport's buffer, where media_backlog() sees it (a sender's congestion signal) and
                # MEDIA_BUFFER_LIMIT bounds it, instead of seconds of it in a large kernel buffer
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, NOTSENT_LOWAT)
        if self._on_open is not None:
            self._on_open()
        if self._already_read:
            data, self._already_read = self._already_read, b""
            self.data_received(data)

    def data_received(self, data: bytes) -> None:
        stats = self.stats
        if self.refuse_tls:
            self.refuse_tls = False
            if data[:1] == bytes([TLS_RECORD]):
                log.info("closing %s: it wants TLS, and this server runs with --encryption none", self.peer)
                self.close("TLS handshake to a plaintext server")
                return
        stats.bytes_in += len(data)
        for payload in self._decoder.feed(data):
            if self._closed:
                return
            if not payload:
                self._on_keepalive()
            elif is_media(payload):
                stats.media_in += 1
                self._on_media(payload)
            else:  # control, or garbage that the server answers as a bad control message
                stats.control_in += 1
                self._on_control(payload)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._closed and self._transport is None:
            return
        self._closed = True
        self._transport = None
        reason = self._close_reason if exc is None else f"connection lost: {exc}"
        self._on_closed(reason)

    # Link
    def send_control(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() > CONTROL_BUFFER_LIMIT:
            self.close("peer too slow to read control messages")
            return
        transport.write(frame(data))
        self.stats.control_out += 1
        self.stats.bytes_out += len(data) + 2

    def send_media(self, packet: bytes) -> bool:
        transport = self._transport
        if (
            transport is None
            or transport.is_closing()
            or transport.get_write_buffer_size() > MEDIA_BUFFER_LIMIT
        ):
            self.stats.media_dropped += 1
            return False
        transport.write(len(packet).to_bytes(2, "big") + packet)
        self.stats.media_out += 1
        self.stats.bytes_out += len(packet) + 2
        return True

    def write_media(self, frames: list[bytes]) -> int:
        """Write framed media packets gathered for this link in one go (the caller checked the link can
        take them): over TLS, more than :data:`MEDIA_RECORD_SPLIT` bytes of them in records of at most
        :data:`MEDIA_RECORD` bytes (a packet larger than that in one of its own), handed to the TLS
        transport in one call (``writelines``: its TLS layer makes a record of each piece and sends them
        all at once). The bytes written."""
        transport = self._transport
        assert transport is not None
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        if not self._tls or len(data) <= MEDIA_RECORD_SPLIT:
            transport.write(data)
            return len(data)
        records: list[bytes] = []
        start = end = 0
        for framed in frames:  # cut at frame boundaries
            if end > start and end + len(framed) - start > MEDIA_RECORD:
                records.append(data[start:end])
                start = end
            end += len(framed)
        records.append(data[start:end])
        transport.writelines(records)  # a record each, and one send for them all
        return len(data)

    def media_backlog(self) -> int | None:
        transport = self._transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def send_keepalive(self) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(b"\x00\x00")

    def close(self, reason: str = "closed") -> None:
        if self._closed:
            return
        self._closed = True
        self._close_reason = reason
        transport = self._transport
        if transport is not None:
            transport.close()

    @property
    def transport(self) -> asyncio.Transport | None:
        """The connection's asyncio transport, None before it opens and after it closes."""
        return self._transport

    @property
    def is_closing(self) -> bool:
        return self._closed or self._transport is None or self._transport.is_closing()


def server_tls(security: Security | None) -> ssl.SSLContext | None:
    """The server's TLS context, or None with --encryption none (``security`` None)."""
    if security is None:
        return None
    if security.identity is None:
        raise ConfError("a TLS server needs an identity key")
    return security.stream().server_context(security.identity)


async def open_stream(link: StreamLink, host: str, port: int, options: TransportOptions, scheme: str) -> None:
    """Connect ``link`` to ``host:port``: TLS with the server's key checked against the pin, unless
    encryption is off. ConfError (one line) for every way it can fail."""
    loop = asyncio.get_running_loop()
    shown = f"[{host}]" if ":" in host else host
    url = f"{scheme}://{shown}:{port}"
    security = options.security
    cipher = security.stream() if security is not None else None
    context = cipher.client_context() if cipher is not None else None
    try:
        async with asyncio.timeout(options.connect_timeout):
            await loop.create_connection(
                lambda: link,
                host,
                port,
                ssl=context,
                server_hostname=host if context is not None else None,
                ssl_handshake_timeout=options.connect_timeout if context is not None else None,
            )
    except TimeoutError:
        raise ConfError(f"cannot reach server {url}: no answer in {options.connect_timeout:g} s") from None
    except (ssl.SSLError, ConnectionResetError, ConnectionAbortedError, EOFError) as exc:
        raise ConfError(
            f"the TLS handshake with {url} failed ({exc}): the server may run with --encryption none; "
            "both ends must agree"
        ) from None
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ConfError(f"cannot reach server {url}: {why.lower()}; is `conf server` running?") from None
    if security is None or cipher is None:
        return
    transport = link.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    try:
        if ssl_object is None:
            raise ConfError(f"the connection to {url} closed during the TLS handshake")
        security.check_server(cipher.peer_key(ssl_object))
    except ConfError:
        link.close("server key refused")
        raise
