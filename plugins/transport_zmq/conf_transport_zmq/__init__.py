"""ZeroMQ transport for conf: a ROUTER/DEALER connection per client (``zmq://HOST:PORT``).

A client's DEALER talks to the server's ROUTER at ``tcp://HOST:PORT``: a transport-level greeting, then
conf control messages, keep-alives, goodbyes and media both ways (the greeting and goodbyes two frames,
``[KIND, PAYLOAD]``; the rest one frame each, an RTP packet as it is). The server sends each media packet
to each client the meeting core chose, addressed by its routing id, so a connection receives a meeting's
media only while it is a participant of it.
High-water marks bound every queue: a slow client loses media, the server keeps its memory. See
docs/protocol.md ("ZeroMQ").
"""

from __future__ import annotations

from collections.abc import Callable

from conf_cli import ClientEvents, Link, Listener, ServerEvents, Transport, TransportOptions, hookimpl

from .client import ZmqClientLink, connect
from .server import ZmqListener, ZmqServerLink, ZmqStats

__all__ = ["ZmqClientLink", "ZmqListener", "ZmqServerLink", "ZmqStats", "ZmqTransport"]


class ZmqTransport(Transport):
    name = "zmq"
    schemes = ("zmq",)
    description = "ZeroMQ (CURVE unless --encryption none): ROUTER/DEALER for control and media"
    secure = True

    async def listen(self, host: str, port: int, events: ServerEvents, options: TransportOptions) -> Listener:
        return await ZmqListener.open(host, port, events, options)

    async def connect(self, host: str, port: int, events: ClientEvents, options: TransportOptions) -> Link:
        return await connect(host, port, events, options)


@hookimpl
def conf_register_transports(register: Callable[[Transport], None]) -> None:
    register(ZmqTransport())
