"""SSDP (UPnP Device Architecture 2.0, section 1) messages for finding conf servers. Sans-I/O.

A client multicasts an ``M-SEARCH`` for :data:`SEARCH_TARGET` to 239.255.255.250:1900; every conf server
that announces itself answers the sender by unicast with ``HTTP/1.1 200 OK`` and these headers:

- ``ST``: :data:`SEARCH_TARGET`; ``USN``: ``uuid:ID::`` + ST (one ID per server process)
- ``LOCATION``: the server's first URL; ``CONF-URLS``: all its URLs, space-separated
- ``CONF-TRANSPORTS``: the transport names, space-separated
- ``CONF-FINGERPRINT``: the server's key fingerprint (empty until the server has an identity key)
- ``CACHE-CONTROL: max-age=N``, ``EXT``, ``SERVER: conf/VERSION UPnP/2.0``

A search for ``ssdp:all`` is answered too, but no search is answered with more bytes than it has: conf's
searches carry a ``CONF-PADDING`` header that makes them :data:`SEARCH_SIZE` bytes long. Datagrams are
at most :data:`MAX_DATAGRAM` bytes, with at most
:data:`MAX_HEADERS` header lines; anything else raises :class:`~conf_cli.errors.ProtocolError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from conf_cli.errors import ProtocolError
from conf_cli.version import __version__

GROUP = "239.255.255.250"
PORT = 1900
SEARCH_TARGET = "urn:conf-project:service:conf-server:1"
MAX_DATAGRAM = 2048
MAX_HEADERS = 32
MAX_URLS = 8
MAX_AGE = 120
SEARCH_SIZE = 1024
"""conf's searches are padded to this size: an announcer answers no search smaller than its answer
(:mod:`conf_cli.reflection`), and a conf server's answer (a few URLs and a fingerprint) fits in it."""
PADDING_HEADER = "CONF-PADDING"


@dataclass(frozen=True)
class Search:
    target: str
    wait: int  # MX: seconds a responder may wait (we answer at once)


@dataclass(frozen=True)
class Announcement:
    """One conf server as it answers a search."""

    server_id: str
    urls: tuple[str, ...]
    transports: tuple[str, ...]
    fingerprint: str = ""

    def as_event(self) -> dict[str, object]:
        return {
            "type": "server_found",
            "id": self.server_id,
            "url": self.urls[0] if self.urls else "",
            "urls": list(self.urls),
            "transports": list(self.transports),
            "fingerprint": self.fingerprint,
        }


def search(target: str = SEARCH_TARGET, wait: int = 1, size: int = SEARCH_SIZE) -> bytes:
    """An M-SEARCH, padded with a ``CONF-PADDING`` header to ``size`` bytes (0: not padded)."""
    head = (
        f'M-SEARCH * HTTP/1.1\r\nHOST: {GROUP}:{PORT}\r\nMAN: "ssdp:discover"\r\n'
        f"MX: {wait}\r\nST: {target}\r\n"
        f"USER-AGENT: conf/{__version__} UPnP/2.0\r\n"
    )
    padding = size - len(head.encode()) - len(f"{PADDING_HEADER}: \r\n\r\n")
    if padding > 0:
        head += f"{PADDING_HEADER}: {'.' * padding}\r\n"
    return (head + "\r\n").encode()


def response(announcement: Announcement) -> bytes:
    a = announcement
    lines = [
        "HTTP/1.1 200 OK",
        f"CACHE-CONTROL: max-age={MAX_AGE}",
        "EXT:",
        f"LOCATION: {a.urls[0] if a.urls else ''}",
        f"SERVER: conf/{__version__} UPnP/2.0",
        f"ST: {SEARCH_TARGET}",
        f"USN: uuid:{a.server_id}::{SEARCH_TARGET}",
        f"CONF-URLS: {' '.join(a.urls)}",
        f"CONF-TRANSPORTS: {' '.join(a.transports)}",
        f"CONF-FINGERPRINT: {a.fingerprint}",
    ]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode()
    if len(data) > MAX_DATAGRAM:
        raise ValueError(f"SSDP response of {len(data)} bytes exceeds {MAX_DATAGRAM}")
    return data


def _parse(data: bytes) -> tuple[str, dict[str, str]]:
    if len(data) > MAX_DATAGRAM:
        raise ProtocolError(f"SSDP datagram of {len(data)} bytes exceeds {MAX_DATAGRAM}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("SSDP datagram is not UTF-8") from None
    head, sep, _ = text.partition("\r\n\r\n")
    if not sep:
        raise ProtocolError("SSDP datagram has no blank line after its headers")
    first, *lines = head.split("\r\n")
    if len(lines) > MAX_HEADERS:
        raise ProtocolError(f"SSDP datagram has more than {MAX_HEADERS} headers")
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise ProtocolError(f"SSDP header line {line[:40]!r} has no name")
        headers[name.strip().upper()] = value.strip()
    return first, headers


def parse_search(data: bytes) -> Search:
    """An M-SEARCH; ProtocolError if ``data`` is not one."""
    first, headers = _parse(data)
    if first != "M-SEARCH * HTTP/1.1":
        raise ProtocolError(f"not an M-SEARCH: {first[:40]!r}")
    if headers.get("MAN", "").strip('"') != "ssdp:discover":
        raise ProtocolError('M-SEARCH without MAN: "ssdp:discover"')
    mx = headers.get("MX", "1")
    return Search(headers.get("ST", ""), int(mx) if mx.isdigit() and len(mx) < 4 else 1)


def wanted(found: Search) -> bool:
    """Whether a search asks for conf servers."""
    return found.target in (SEARCH_TARGET, "ssdp:all")


def parse_response(data: bytes) -> Announcement:
    """A conf server's answer; ProtocolError if ``data`` is not one."""
    first, headers = _parse(data)
    if not first.startswith("HTTP/1.1 200"):
        raise ProtocolError(f"not an SSDP response: {first[:40]!r}")
    if headers.get("ST") != SEARCH_TARGET:
        raise ProtocolError("SSDP response is not for conf servers")
    usn = headers.get("USN", "")
    server_id = usn.removeprefix("uuid:").partition("::")[0]
    if not server_id or len(server_id) > 64:
        raise ProtocolError("SSDP response has no usable USN")
    urls = tuple(headers.get("CONF-URLS", headers.get("LOCATION", "")).split())
    if not urls or len(urls) > MAX_URLS or any(len(u) > 200 or "://" not in u for u in urls):
        raise ProtocolError(f"SSDP response needs 1 to {MAX_URLS} URLs in CONF-URLS")
    transports = tuple(headers.get("CONF-TRANSPORTS", "").split())[:MAX_URLS]
    fingerprint = headers.get("CONF-FINGERPRINT", "")[:200]
    return Announcement(server_id, urls, transports, fingerprint)
