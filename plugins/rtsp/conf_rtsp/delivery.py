"""Where a session's packets go: UDP datagrams to the client's ports, or interleaved on its connection.

Media is never queued for a slow client: a packet that finds the socket's or the connection's buffer
over its limit is dropped and counted, so one slow player affects only itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import Callable

from conf_cli import ConfError

from .wire import Interleaved

log = logging.getLogger("conf.rtsp")

MAX_BUFFERED = 1 << 20  # bytes a client may have waiting before its media is dropped
MAX_DATAGRAM = 65_507


class Delivery:
    """Sends one stream's RTP and RTCP to one client."""

    def __init__(self) -> None:
        self.sent = 0
        self.dropped = 0

    def send(self, packet: bytes, rtcp: bool = False) -> None:
        if self._send(packet, rtcp):
            self.sent += 1
        else:
            self.dropped += 1

    def _send(self, packet: bytes, rtcp: bool) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        """The ``Transport`` header answering SETUP."""
        raise NotImplementedError


class InterleavedDelivery(Delivery):
    """RTP on channel ``rtp``, RTCP on ``rtcp``, framed with ``$`` on the RTSP connection."""

    def __init__(
        self, transport: asyncio.WriteTransport, channels: tuple[int, int], ssrc: int | None
    ) -> None:
        super().__init__()
        self.transport = transport
        self.channels = channels
        self.ssrc = ssrc

    def _send(self, packet: bytes, rtcp: bool) -> bool:
        if self.transport.is_closing() or self.transport.get_write_buffer_size() > MAX_BUFFERED:
            return False
        self.transport.write(bytes(Interleaved(self.channels[1 if rtcp else 0], packet)))
        return True

    def describe(self) -> str:
        ssrc = f";ssrc={self.ssrc:08X}" if self.ssrc is not None else ""
        return f"RTP/AVP/TCP;unicast;interleaved={self.channels[0]}-{self.channels[1]}{ssrc}"


class UdpPorts:
    """The gateway's pair of UDP sockets (RTP on an even port, RTCP on the next), shared by all sessions.

    Datagrams that arrive are handed to ``received(data, address, rtcp)``; the gateway tells its
    sessions' clients apart by their address.
    """

    def __init__(self, host: str, received: Callable[[bytes, tuple[str, int], bool], None]) -> None:
        self.host = host
        self.received = received
        self.rtp: asyncio.DatagramTransport | None = None
        self.rtcp: asyncio.DatagramTransport | None = None
        self.ports = (0, 0)

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        rng = random.SystemRandom()
        for _ in range(64):
            port = rng.randrange(20_000, 60_000, 2)
            sockets = []
            try:
                for offset in (0, 1):
                    sock = socket.socket(family, socket.SOCK_DGRAM)
                    sockets.append(sock)
                    sock.bind((self.host, port + offset))
            except OSError:
                for sock in sockets:
                    sock.close()
                continue
            for offset, sock in enumerate(sockets):
                rtcp = bool(offset)
                transport, _ = await loop.create_datagram_endpoint(
                    lambda rtcp=rtcp: _Receiver(self, rtcp),  # type: ignore[misc]
                    sock=sock,
                )
                if rtcp:
                    self.rtcp = transport
                else:
                    self.rtp = transport
            self.ports = (port, port + 1)
            return
        raise ConfError(f"cannot find two free UDP ports for RTP on {self.host}")

    def close(self) -> None:
        for transport in (self.rtp, self.rtcp):
            if transport is not None:
                transport.close()


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, ports: UdpPorts, rtcp: bool) -> None:
        self.ports = ports
        self.rtcp = rtcp

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        with contextlib.suppress(Exception):
            self.ports.received(data, (addr[0], addr[1]), self.rtcp)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)


class UdpDelivery(Delivery):
    """RTP to ``host:client_port[0]`` and RTCP to ``client_port[1]``, from the gateway's UDP pair."""

    def __init__(self, ports: UdpPorts, host: str, client_port: tuple[int, int], ssrc: int | None) -> None:
        super().__init__()
        self.ports = ports
        self.host = host
        self.client_port = client_port
        self.ssrc = ssrc

    def _send(self, packet: bytes, rtcp: bool) -> bool:
        transport = self.ports.rtcp if rtcp else self.ports.rtp
        if transport is None or transport.is_closing() or len(packet) > MAX_DATAGRAM:
            return False
        buffered = getattr(transport, "get_write_buffer_size", lambda: 0)()
        if buffered > MAX_BUFFERED:
            return False
        transport.sendto(packet, (self.host, self.client_port[1 if rtcp else 0]))
        return True

    def describe(self) -> str:
        ssrc = f";ssrc={self.ssrc:08X}" if self.ssrc is not None else ""
        return (
            f"RTP/AVP;unicast;client_port={self.client_port[0]}-{self.client_port[1]}"
            f";server_port={self.ports.ports[0]}-{self.ports.ports[1]}{ssrc}"
        )
