"""A conf transport over WebSocket (``ws://host:port``): a complete third-party plugin in one file.

Control messages travel as text frames, RTP/RTCP packets as binary frames, and an empty binary frame is
a keep-alive. Each link has one bounded queue of outgoing frames: control messages wait in it, media is
dropped when it is full, and a peer that lets control messages pile up is disconnected.

With encryption on (conf's default) the WebSocket runs over TLS (``wss``) from conf's ``tls`` cipher
plugin: the server presents its identity, and the client checks the key against its pin before any conf
message is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import WebSocketException

from conf_cli import (
    ClientEvents,
    ConfError,
    Link,
    Listener,
    Security,
    ServerEvents,
    Transport,
    TransportOptions,
    hookimpl,
)

MAX_FRAME = 65_535
QUEUE_LIMIT = 512  # frames waiting to be written to one peer
MEDIA_LIMIT = QUEUE_LIMIT // 2  # media is dropped once this many frames wait


class WsLink(Link):
    """One WebSocket, on either side, with a writer task draining a bounded queue."""

    media_ordered = True

    def __init__(self, socket: ServerConnection | ClientConnection, listener: Listener | None = None) -> None:
        address = socket.remote_address
        super().__init__(f"{address[0]}:{address[1]}" if address else "", listener)
        self.socket = socket
        self._queue: asyncio.Queue[str | bytes] = asyncio.Queue(QUEUE_LIMIT)
        self._writer = asyncio.create_task(self._write())
        self._closed = False
        self.reader: asyncio.Task[None] | None = None  # the client side's receiving task
        self._closer: asyncio.Future[None] | None = None

    async def _write(self) -> None:
        with contextlib.suppress(WebSocketException, OSError):
            while True:
                await self.socket.send(await self._queue.get())

    def send_control(self, data: bytes) -> None:
        if self._closed:
            return
        try:
            self._queue.put_nowait(data.decode())
        except asyncio.QueueFull:
            self.close()  # too slow to read control messages
            return
        self.stats.control_out += 1

    def send_media(self, packet: bytes) -> bool:
        if self._closed or self._queue.qsize() >= MEDIA_LIMIT:
            self.stats.media_dropped += 1
            return False
        self._queue.put_nowait(packet)
        self.stats.media_out += 1
        return True

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._writer.cancel()
            self._closer = asyncio.ensure_future(self.socket.close())

    @property
    def is_closing(self) -> bool:
        return self._closed

    async def read(
        self,
        on_control: Callable[[bytes], None],
        on_media: Callable[[bytes], None],
        on_keepalive: Callable[[], None],
    ) -> str:
        """Deliver frames until the socket closes; return why it closed."""
        try:
            async for frame in self.socket:
                if isinstance(frame, str):
                    self.stats.control_in += 1
                    on_control(frame.encode())
                elif not frame:
                    on_keepalive()
                else:
                    self.stats.media_in += 1
                    on_media(frame)
        except WebSocketException as exc:
            return f"connection lost: {exc}"
        finally:
            self._closed = True
            self._writer.cancel()
        return "closed by peer"


class WsListener(Listener):
    def __init__(self, url: str) -> None:
        self.url = url
        self.server: Server | None = None

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self.server.wait_closed()


class WsTransport(Transport):
    name = "ws"
    schemes = ("ws",)
    description = "WebSocket (TLS unless --encryption none): control as text frames, RTP as binary frames"
    secure = True

    async def listen(self, host: str, port: int, events: ServerEvents, options: TransportOptions) -> Listener:
        listener = WsListener("")

        async def handle(socket: ServerConnection) -> None:
            link = WsLink(socket, listener)
            events.link_opened(link)
            reason = await link.read(
                lambda data: events.control_received(link, data),
                lambda packet: events.media_received(link, packet),
                lambda: events.keepalive_received(link),
            )
            events.link_closed(link, reason)

        security = options.security
        tls = None
        if security is not None and security.identity is not None:
            tls = security.stream().server_context(security.identity)
        try:
            listener.server = await serve(handle, host, port, max_size=MAX_FRAME, ping_interval=None, ssl=tls)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfError(
                    f"port {port} on {host} is already in use; pick another with --port"
                ) from None
            raise ConfError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        bound = next(iter(listener.server.sockets)).getsockname()
        listener.url = f"ws://{bound[0]}:{bound[1]}"
        return listener

    async def connect(self, host: str, port: int, events: ClientEvents, options: TransportOptions) -> Link:
        security = options.security
        url = f"{'ws' if security is None else 'wss'}://{host}:{port}/"
        context = security.stream().client_context() if security is not None else None
        try:
            socket = await connect(
                url,
                open_timeout=options.connect_timeout,
                max_size=MAX_FRAME,
                ping_interval=None,
                ssl=context,
            )
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise ConfError(
                f"cannot reach server {url}: {exc}; is `conf server --transport ws` running, with the same "
                "--encryption setting?"
            ) from None
        if security is not None:
            _check_server(socket, security)
        link = WsLink(socket)

        async def pump() -> None:
            events.closed(await link.read(events.control_received, events.media_received, lambda: None))

        link.reader = asyncio.create_task(pump())
        return link


def _check_server(socket: ClientConnection, security: Security) -> None:
    """The key the server's TLS certificate holds must be the pinned one (or match --fingerprint)."""
    ssl_object = socket.transport.get_extra_info("ssl_object")
    try:
        if ssl_object is None:
            raise ConfError("the WebSocket is not on TLS")
        security.check_server(security.stream().peer_key(ssl_object))
    except ConfError:
        socket.transport.abort()
        raise


@hookimpl
def conf_register_transports(register: Callable[[Transport], None]) -> None:
    register(WsTransport())
