"""Raw TCP transport for conf: one connection per client carries control and media.

Every frame is RFC 4571 framed (a 16-bit length, then the payload); a payload starting with ``{`` is a
JSON control message, one whose first two bits are ``10`` is an RTP/RTCP packet, an empty one is a
keep-alive. This package is also the worked example of a transport plugin: see docs/plugins.md.

With encryption on (the default) the connection is TLS 1.3 from its first byte (the ``tls`` cipher
plugin); the client checks the server's key against its pin before it sends anything. A plaintext server
closes a connection whose first byte is a TLS handshake record (0x16), so a client that wants TLS gets a
prompt error rather than a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Callable, Iterable

from conf_cli import (
    HANDSHAKE_TIMEOUT,
    MEDIA_BUFFER_LIMIT,
    ClientEvents,
    ConfError,
    Link,
    Listener,
    ServerEvents,
    StreamLink,
    Transport,
    TransportOptions,
    hookimpl,
    open_stream,
    server_tls,
)

TcpLink = StreamLink  # the stream is shared with rtp:// and the worker front: see conf_cli.plugin.stream


class TcpListener(Listener):
    """Forwarded media is gathered per link and written once per event-loop turn: many small writes are
    what makes TCP fan-out slow in Python (one send system call each), so a burst of packets that
    arrived together leaves together, in one write per receiver (over TLS, a keyframe's worth in records
    of at most :data:`~conf_cli.plugin.stream.MEDIA_RECORD` bytes: :meth:`StreamLink.write_media`)."""

    def __init__(self, server: asyncio.Server | None, url: str) -> None:
        self._server = server
        self.url = url
        self.links: set[TcpLink] = set()
        self._pending: dict[TcpLink, list[bytes]] = {}
        self._loop = asyncio.get_running_loop()

    def forward_media(self, packet: bytes, links: Iterable[Link]) -> int:
        framed = len(packet).to_bytes(2, "big") + packet
        pending = self._pending
        if not pending:
            self._loop.call_soon(self._flush)
        sent = 0
        for link in links:
            queued = pending.get(link)  # type: ignore[call-overload]
            if queued is None:
                pending[link] = [framed]  # type: ignore[index]
            else:
                queued.append(framed)
            sent += 1
        return sent

    def _flush(self) -> None:
        """Write each link's gathered media at once; a link whose socket buffer is full drops it all."""
        pending, self._pending = self._pending, {}
        for link, frames in pending.items():
            stats = link.stats
            transport = link.transport
            if (
                transport is None
                or transport.is_closing()
                or transport.get_write_buffer_size() > MEDIA_BUFFER_LIMIT
            ):
                stats.media_dropped += len(frames)
                continue
            stats.bytes_out += link.write_media(frames)
            stats.media_out += len(frames)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self.links):
            link.close("server shutting down")
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)


class TcpTransport(Transport):
    name = "tcp"
    schemes = ("tcp",)
    description = (
        "raw TCP (TLS 1.3 unless --encryption none), RFC 4571 framing; control and media on one connection"
    )
    secure = True
    adopts = True

    async def listen(self, host: str, port: int, events: ServerEvents, options: TransportOptions) -> Listener:
        loop = asyncio.get_running_loop()
        listener: TcpListener

        def make_link() -> TcpLink:
            return _server_link(listener, events, refuse_tls=tls is None)

        tls = server_tls(options.security)
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
            if exc.errno == errno.EADDRINUSE:
                raise ConfError(
                    f"port {port} on {host} is already in use; pick another with --port"
                ) from None
            raise ConfError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        bound = server.sockets[0].getsockname()
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        listener = TcpListener(server, f"tcp://{shown}:{bound[1]}")
        return listener

    def adoption_listener(self, url: str) -> TcpListener:
        """A listener that accepts nothing itself: links arrive through :meth:`adopt` (``--workers``)."""
        return TcpListener(None, url)

    async def adopt(
        self,
        listener: Listener,
        sock: socket.socket,
        already_read: bytes,
        events: ServerEvents,
        peer: str = "",
    ) -> TcpLink:
        """Take over a connected client socket another process accepted (see :meth:`Transport.adopt`)."""
        assert isinstance(listener, TcpListener), "adopt needs the listener adoption_listener made"
        loop = asyncio.get_running_loop()
        link = _server_link(listener, events, already_read)
        link.peer = peer
        await loop.connect_accepted_socket(lambda: link, sock)
        return link

    async def connect(self, host: str, port: int, events: ClientEvents, options: TransportOptions) -> Link:
        link = TcpLink(events.control_received, events.media_received, lambda: None, events.closed)
        await open_stream(link, host, port, options, "tcp")
        return link


def _server_link(
    listener: TcpListener, events: ServerEvents, already_read: bytes = b"", *, refuse_tls: bool = False
) -> TcpLink:
    """A server-side link that reports to ``events`` and belongs to ``listener`` once open."""
    link: TcpLink

    def opened() -> None:
        link.listener = listener
        listener.links.add(link)
        events.link_opened(link)

    def closed(reason: str) -> None:
        listener.links.discard(link)
        events.link_closed(link, reason)

    link = TcpLink(
        lambda data: events.control_received(link, data),
        lambda packet: events.media_received(link, packet),
        lambda: events.keepalive_received(link),
        closed,
        opened,
        already_read,
    )
    link.refuse_tls = refuse_tls
    return link


@hookimpl
def conf_register_transports(register: Callable[[Transport], None]) -> None:
    register(TcpTransport())
