"""Finding conf servers on the local network with SSDP: the server's announcer and the client's search.

The wire format is :mod:`conf_cli.protocol.ssdp`. A server started with ``--announce`` (the default when
it listens beyond loopback) answers searches on 239.255.255.250:1900 (several servers on one host share
the port); a server listening on every address (``0.0.0.0``) puts in its URLs the address by which the
searcher reaches it. Searches go out with a multicast TTL of 1: they stay on the local network.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
import uuid
from collections.abc import Sequence
from urllib.parse import urlsplit

from conf_cli.errors import ConfError, ProtocolError
from conf_cli.protocol import ssdp

log = logging.getLogger("conf.discovery")

SEARCH_REPEAT = 0.5


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _local_address_towards(peer: str) -> str:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((peer, ssdp.PORT))
        return str(probe.getsockname()[0])
    finally:
        probe.close()


def localise(url: str, searcher: str) -> str:
    """``url`` with a wildcard host (0.0.0.0, ::) replaced by our address towards ``searcher``."""
    parts = urlsplit(url)
    if parts.hostname not in ("0.0.0.0", "::"):
        return url
    try:
        host = _local_address_towards(searcher)
    except OSError:
        return url
    return f"{parts.scheme}://{host}:{parts.port}"


class Announcer(asyncio.DatagramProtocol):
    """Answers SSDP searches for conf servers with this server's URLs."""

    def __init__(self, urls: Sequence[str], host: str, fingerprint: str | None = None) -> None:
        self.urls = list(urls)
        self.host = host
        self.fingerprint = fingerprint
        """The server's key fingerprint (None with --encryption none: the field is announced empty)."""
        self.server_id = uuid.uuid4().hex
        self.transport: asyncio.DatagramTransport | None = None
        self.answered = 0

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("", ssdp.PORT))
            interface = self.host if self.host not in ("", "0.0.0.0", "::") else "0.0.0.0"
            membership = struct.pack("4s4s", socket.inet_aton(ssdp.GROUP), socket.inet_aton(interface))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise ConfError(
                f"cannot announce on the local network (UDP {ssdp.PORT}): {exc.strerror or exc}; "
                "use --no-announce"
            ) from None
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, sock=sock)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        try:
            if not ssdp.wanted(ssdp.parse_search(data)):
                return
        except ProtocolError:
            return  # other devices' NOTIFYs and answers share the group
        fingerprint = self.fingerprint or ""
        urls = tuple(localise(url, addr[0]) for url in self.urls)
        transports = tuple(dict.fromkeys(url.split("://", 1)[0] for url in urls))
        answer = ssdp.response(ssdp.Announcement(self.server_id, urls, transports, fingerprint))
        if self.transport is not None:
            with contextlib.suppress(OSError):
                self.transport.sendto(answer, addr)
                self.answered += 1

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


class _Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.found: dict[str, ssdp.Announcement] = {}

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        try:
            announcement = ssdp.parse_response(data)
        except ProtocolError:
            return
        self.found.setdefault(announcement.server_id, announcement)


async def discover(timeout: float = 2.0) -> list[ssdp.Announcement]:
    """Search the local network for conf servers for ``timeout`` seconds; those that answered."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        sock.bind(("0.0.0.0", 0))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ConfError(f"cannot search the local network: {exc.strerror or exc}") from None
    collector = _Collector()
    transport, _ = await loop.create_datagram_endpoint(lambda: collector, sock=sock)
    try:
        deadline = loop.time() + timeout
        message = ssdp.search()
        while (remaining := deadline - loop.time()) > 0:
            try:
                sock.sendto(message, (ssdp.GROUP, ssdp.PORT))
            except OSError as exc:
                raise ConfError(
                    f"cannot search the local network: {exc.strerror or exc} (no multicast route?)"
                ) from None
            await asyncio.sleep(min(SEARCH_REPEAT, remaining))
    finally:
        transport.close()
    return list(collector.found.values())
