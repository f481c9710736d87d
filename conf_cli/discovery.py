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
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from conf_cli.errors import ConfError, ProtocolError
from conf_cli.protocol import ssdp
from conf_cli.reflection import ReflectionGuard

log = logging.getLogger("conf.discovery")

SEARCH_REPEAT = 0.5
ANSWERS_PER_SOURCE = 10
ANSWER_WINDOW = 10.0
"""An announcer answers one host at most ANSWERS_PER_SOURCE times per ANSWER_WINDOW seconds (a search
sends one request every SEARCH_REPEAT seconds; the first answer is enough)."""


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


IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49 if sys.platform.startswith("linux") else None)
"""Linux: set to 0, a socket gets only the groups it joined itself (by default, any the host joined)."""


def _interface_indexes() -> list[int]:
    """The indexes of this host's network interfaces (Linux, BSD, macOS)."""
    try:
        return [index for index, _ in socket.if_nameindex()]
    except OSError:
        return []


class Announcer(asyncio.DatagramProtocol):
    """Answers SSDP searches for conf servers with this server's URLs.

    It hears only searches multicast to the SSDP group on the interfaces the server announces on (the
    one holding ``host``, or every interface when ``host`` is a wildcard): the socket is bound to the
    group address, not to every address, and takes no group it has not joined. Its answers go through a
    :class:`~conf_cli.reflection.ReflectionGuard`: none larger than the search, a few per source."""

    def __init__(self, urls: Sequence[str], host: str, fingerprint: str | None = None) -> None:
        self.urls = list(urls)
        self.host = host
        self.fingerprint = fingerprint
        """The server's key fingerprint (None with --encryption none: the field is announced empty)."""
        self.server_id = uuid.uuid4().hex
        self.transport: asyncio.DatagramTransport | None = None
        self.answered = 0
        self.guard = ReflectionGuard(per_source=ANSWERS_PER_SOURCE, window=ANSWER_WINDOW)

    def _join(self, sock: socket.socket) -> None:
        """Join the SSDP group on the announced interfaces (OSError if on none)."""
        group = socket.inet_aton(ssdp.GROUP)
        if self.host not in ("", "0.0.0.0", "::"):
            membership = struct.pack("4s4s", group, socket.inet_aton(self.host))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
            return
        joined, error = 0, None
        for index in _interface_indexes():  # struct ip_mreqn: group, address (any), interface index
            try:
                membership = struct.pack("4s4si", group, socket.inet_aton("0.0.0.0"), index)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
                joined += 1
            except OSError as exc:  # an interface without multicast or without IPv4
                error = exc
        if not joined:
            membership = struct.pack("4s4s", group, socket.inet_aton("0.0.0.0"))
            try:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
            except OSError:
                raise error or OSError("no interface to join the SSDP group on") from None

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if IP_MULTICAST_ALL is not None:  # elsewhere, binding to the group does the filtering
                sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
            sock.bind((ssdp.GROUP, ssdp.PORT))  # no unicast, no other group
            self._join(sock)
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
        now = asyncio.get_running_loop().time()
        if not self.guard.allow(str(addr[0]), len(data), len(answer), now):
            return
        if self.transport is not None:
            with contextlib.suppress(OSError):
                self.transport.sendto(answer, addr)
                self.answered += 1

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


MAX_ANSWERS = 32
"""Distinct answers a search keeps; more (a flood of forged ones) are dropped."""


class _Collector(asyncio.DatagramProtocol):
    """Every distinct answer, in the order they came: two answers for one server ID are both kept."""

    def __init__(self) -> None:
        self.found: dict[ssdp.Announcement, None] = {}

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        try:
            announcement = ssdp.parse_response(data)
        except ProtocolError:
            return
        if len(self.found) < MAX_ANSWERS:
            self.found.setdefault(announcement, None)


def conflicts(found: Sequence[ssdp.Announcement]) -> list[bool]:
    """For each answer: whether another answer claims the same server ID, or names one of its URLs,
    with other URLs or another key (a second answerer pretending to be that server, or a server that
    changed its key)."""
    flagged = [False] * len(found)
    for i, a in enumerate(found):
        for j, b in enumerate(found):
            if i == j or (a.urls, a.fingerprint) == (b.urls, b.fingerprint):
                continue
            if a.server_id == b.server_id or set(a.urls) & set(b.urls):
                flagged[i] = True
    return flagged


@dataclass(frozen=True)
class Candidate:
    """One answer as ``conf join --discover`` weighs it."""

    announcement: ssdp.Announcement
    url: str
    """The URL to connect to: the first one whose pinned key the answer names, else its first URL."""
    trusted: str
    """Why its key is trusted: ``pinned`` (known_hosts), ``fingerprint`` (--fingerprint), or ``""``."""
    conflict: bool


def weigh(
    found: Sequence[ssdp.Announcement], pins: Mapping[str, str], expected: str | None
) -> list[Candidate]:
    """The answers with what trusts them: ``pins`` maps a URL to its pinned key's fingerprint,
    ``expected`` is --fingerprint. The connection still checks the key the server proves it holds;
    this only decides which answers may be used without asking."""
    weighed = []
    for announcement, conflict in zip(found, conflicts(found), strict=True):
        fingerprint = announcement.fingerprint
        url, trusted = announcement.urls[0], ""
        if expected is not None:
            if fingerprint == expected:
                trusted = "fingerprint"
        else:
            pinned = [u for u in announcement.urls if fingerprint and pins.get(u) == fingerprint]
            if pinned:
                url, trusted = pinned[0], "pinned"
        weighed.append(Candidate(announcement, url, trusted, conflict))
    return weighed


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
    return list(collector.found)
