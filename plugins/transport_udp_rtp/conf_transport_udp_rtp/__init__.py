"""RTP over UDP transport for conf (RFC 3550), beside a reliable TCP control connection.

Control messages travel exactly as on the ``tcp`` transport (RFC 4571 framing, one TCP connection), on
``HOST:PORT``; media travels as plain RTP/RTCP datagrams on UDP at the same port number. The server gives
each connection a random token in a first, transport-level frame; the client sends a STUN Binding request
(RFC 5389) signed with a key derived from the token (the token and key never travel on UDP), the server
checks that the request's source address consents (it answers a signed check, RFC 7675 style) and then
sends media to that address (symmetric RTP, so clients behind a NAT need no configuration), checking
consent again every few seconds. Datagrams from any address that has not proved itself are dropped and
counted. With encryption on (the
default) the control connection is TLS and media is SRTP/SRTCP with per-link keys from the token frame.
See docs/protocol.md.
"""

from __future__ import annotations

from collections.abc import Callable

from conf_cli import ClientEvents, Link, Listener, ServerEvents, Transport, TransportOptions, hookimpl

from .client import RtpClientLink, connect
from .latch import Latches, UdpStats
from .server import RtpListener, RtpServerLink

__all__ = ["RtpClientLink", "RtpListener", "RtpServerLink", "RtpTransport", "UdpStats"]


class RtpTransport(Transport):
    name = "rtp"
    schemes = ("rtp",)
    description = "RTP/RTCP over UDP (symmetric, STUN-latched; SRTP) beside a TCP (TLS) control connection"
    secure = True

    async def listen(self, host: str, port: int, events: ServerEvents, options: TransportOptions) -> Listener:
        listener = RtpListener(Latches())
        await listener.start(host, port, events, options)
        return listener

    async def connect(self, host: str, port: int, events: ClientEvents, options: TransportOptions) -> Link:
        return await connect(host, port, events, options)


@hookimpl
def conf_register_transports(register: Callable[[Transport], None]) -> None:
    register(RtpTransport())
