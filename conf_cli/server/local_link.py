"""An in-process transport: a participant that lives inside the server process.

Server services (an RTSP gateway, a browser page) take part in meetings through it. The server sees an
ordinary :class:`~conf_cli.plugin.transport.Link`, so every rule of the hub applies; the service drives an
ordinary :class:`~conf_cli.client.link.Client`, which :class:`LocalServiceContext` makes for it. Control
messages cross on the next turn of the event loop in both directions, so neither side is re-entered from
inside its own handler; media is handed over at once, as a transport's send would.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING, Protocol

from conf_cli.errors import ConfError
from conf_cli.plugin.services import ServiceContext
from conf_cli.plugin.transport import ClientEvents, Link, Listener, ServerEvents, Transport, TransportOptions

if TYPE_CHECKING:
    from conf_cli.client.link import Client
    from conf_cli.plugin.registry import Registry


class Server(ServerEvents, Protocol):
    """What the in-process transport needs of a server (:class:`conf_cli.server.edge.Server` is one)."""

    registry: Registry


_names = itertools.count(1)


class _Pair:
    """Both ends of one in-process connection; closing either closes both, once."""

    def __init__(self, server: Server, events: ClientEvents, peer: str) -> None:
        self.server = server
        self.events = events
        self.closed = False
        self.server_end = _ServerEnd(self, peer)
        self.client_end = _ClientEnd(self, peer)
        self.loop = asyncio.get_running_loop()

    def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.server.link_closed(self.server_end, reason)
        self.loop.call_soon(self.events.closed, reason)


class _ServerEnd(Link):
    """The link as the server sees it."""

    media_ordered = True

    def __init__(self, pair: _Pair, peer: str) -> None:
        super().__init__(peer)
        self.pair = pair

    def send_control(self, data: bytes) -> None:
        if not self.pair.closed:
            self.stats.control_out += 1
            self.pair.loop.call_soon(self._deliver_control, data)

    def _deliver_control(self, data: bytes) -> None:
        if not self.pair.closed:
            self.pair.events.control_received(data)

    def send_media(self, packet: bytes) -> bool:
        if self.pair.closed:
            return False
        self.stats.media_out += 1
        self.pair.events.media_received(packet)
        return True

    def close(self) -> None:
        self.pair.close("closed by the server")

    @property
    def is_closing(self) -> bool:
        return self.pair.closed


class _ClientEnd(Link):
    """The link as the service's client sees it."""

    media_ordered = True

    def __init__(self, pair: _Pair, peer: str) -> None:
        super().__init__(peer)
        self.pair = pair

    def send_control(self, data: bytes) -> None:
        if not self.pair.closed:
            self.pair.loop.call_soon(self._deliver_control, data)

    def _deliver_control(self, data: bytes) -> None:
        if not self.pair.closed:
            self.pair.server_end.stats.control_in += 1
            self.pair.server.control_received(self.pair.server_end, data)

    def send_media(self, packet: bytes) -> bool:
        if self.pair.closed:
            return False
        self.pair.server_end.stats.media_in += 1
        self.pair.server.media_received(self.pair.server_end, packet)
        return True

    def close(self) -> None:
        self.pair.close("closed by the service")

    @property
    def is_closing(self) -> bool:
        return self.pair.closed


class LocalTransport(Transport):
    """Connects a :class:`~conf_cli.client.link.Client` to a :class:`~conf_cli.server.edge.Server` in this
    process.

    Not a plugin: it cannot listen, and ``host`` names the participant's origin in the server's log
    (``rtsp 10.0.0.7:5544``, say) instead of an address to reach.
    """

    name = "local"
    schemes = ("local",)
    description = "in-process participants of server services"
    secure = True  # nothing it carries leaves the server process, so there is no link to protect

    def __init__(self, server: Server) -> None:
        self.server = server

    async def listen(self, host: str, port: int, events: ServerEvents, options: TransportOptions) -> Listener:
        raise ConfError("the in-process transport cannot listen; it connects services to their server")

    async def connect(self, host: str, port: int, events: ClientEvents, options: TransportOptions) -> Link:
        pair = _Pair(self.server, events, host or f"local-{next(_names)}")
        self.server.link_opened(pair.server_end)
        return pair.client_end


class LocalServiceContext(ServiceContext):
    """The context a server starts its services with: in-process participants of that server."""

    def __init__(self, server: Server) -> None:
        self._server = server

    def participant(self, origin: str, *, e2ee_capable: bool = True) -> Client:
        from conf_cli.client.link import Client
        from conf_cli.urls import ServerAddress

        return Client(
            self._server.registry,
            ServerAddress("local", origin, 0),
            transport=LocalTransport(self._server),
            e2ee_capable=e2ee_capable,
        )
