"""ZeroMQ transport for conf: ROUTER/DEALER for control, PUB/SUB for media fan-out (``zmq://HOST:PORT``).

A client's DEALER talks to the server's ROUTER at ``tcp://HOST:PORT``: a transport-level greeting, then
conf control messages, keep-alives, goodbyes and the client's own media going up, each message two
frames ``[KIND, PAYLOAD]``. Media coming down is published once on the server's PUB socket (port
``PORT + 1``, or a free one with ``--port 0``; the greeting names it) under a topic per track, the SSRC,
and each client's SUB subscribes to the tracks it receives. High-water marks bound every queue: a slow
subscriber loses media, the server keeps its memory. RTCP goes point to point through the ROUTER.

Anyone who can reach the PUB port can subscribe to any track's SSRC; media confidentiality between
meetings on this transport relies on media encryption. See docs/protocol.md ("ZeroMQ").
"""

from __future__ import annotations

from collections.abc import Callable

from conf_cli.hookspecs import hookimpl
from conf_cli.transport import ClientEvents, Link, Listener, ServerEvents, Transport, TransportOptions

from .client import ZmqClientLink, connect
from .server import ZmqListener, ZmqServerLink, ZmqStats

__all__ = ["ZmqClientLink", "ZmqListener", "ZmqServerLink", "ZmqStats", "ZmqTransport"]


class ZmqTransport(Transport):
    name = "zmq"
    schemes = ("zmq",)
    description = "ZeroMQ (CURVE unless --encryption none): ROUTER/DEALER control, PUB/SUB media fan-out"
    secure = True

    async def listen(self, host: str, port: int, events: ServerEvents, options: TransportOptions) -> Listener:
        return await ZmqListener.open(host, port, events, options)

    async def connect(self, host: str, port: int, events: ClientEvents, options: TransportOptions) -> Link:
        return await connect(host, port, events, options)


@hookimpl
def conf_register_transports(register: Callable[[Transport], None]) -> None:
    register(ZmqTransport())
