"""RTSP 1.0 messages (RFC 2326), sans-I/O.

:class:`RtspReader` turns the bytes of one TCP connection into :class:`RtspRequest`,
:class:`RtspResponse` and :class:`Interleaved` frames (RTP and RTCP carried on the connection, RFC 2326
section 10.12); ``bytes(message)`` writes one. :func:`parse_transport` and :class:`TransportSpec` read and
write the ``Transport`` header (section 12.39); :func:`basic_credentials` reads a Basic ``Authorization``
header (RFC 7617); :func:`parse_npt_range` reads the start of an ``npt`` ``Range`` (section 3.6).

Every length is bounded: a header line, the header block, the number of headers and the body. Bad input
raises :class:`RtspParseError` (a :class:`~conf_cli.errors.ProtocolError`) carrying the status a server
answers it with.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from conf_cli import ProtocolError
from conf_cli.urls import redact_url

__all__ = [
    "MAX_BODY",
    "MAX_HEADERS",
    "MAX_HEAD_BYTES",
    "MAX_LINE",
    "Headers",
    "Interleaved",
    "RtspParseError",
    "RtspReader",
    "RtspRequest",
    "RtspResponse",
    "TransportSpec",
    "basic_credentials",
    "parse_npt_range",
    "parse_transport",
    "reason_for",
]

VERSION = "RTSP/1.0"
MAX_LINE = 4096
"""The longest request, status or header line, in bytes."""
MAX_HEAD_BYTES = 16_384
"""The longest header block (start line and headers), in bytes."""
MAX_HEADERS = 64
MAX_BODY = 65_536
"""The largest body (an SDP), in bytes."""

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    414: "Request-URI Too Large",
    415: "Unsupported Media Type",
    453: "Not Enough Bandwidth",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    457: "Invalid Range",
    459: "Aggregate Operation Not Allowed",
    460: "Only Aggregate Operation Allowed",
    461: "Unsupported Transport",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "RTSP Version Not Supported",
}

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def reason_for(status: int) -> str:
    return REASONS.get(status, "Error")


class RtspParseError(ProtocolError):
    """A message that does not parse or breaks a limit; ``status`` is what a server answers it with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Headers:
    """Header fields in order, looked up case-insensitively."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self.items: list[tuple[str, str]] = list(items)

    def get(self, name: str, default: str | None = None) -> str | None:
        lower = name.lower()
        for key, value in self.items:
            if key.lower() == lower:
                return value
        return default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self.items == other.items

    def __repr__(self) -> str:
        return f"Headers({self.items!r})"

    def set(self, name: str, value: str) -> None:
        lower = name.lower()
        self.items = [(k, v) for k, v in self.items if k.lower() != lower]
        self.items.append((name, value))


def _check_header(name: str, value: str) -> None:
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"bad RTSP header name {name!r}")
    if "\r" in value or "\n" in value:
        raise ValueError(f"RTSP header {name} holds a line break")


def _write(start: str, headers: Headers, body: bytes) -> bytes:
    lines = [start]
    for name, value in headers:
        if name.lower() == "content-length":
            continue
        _check_header(name, value)
        lines.append(f"{name}: {value}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


@dataclass
class RtspRequest:
    """One request: ``method``, ``url``, headers and body."""

    method: str
    url: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def cseq(self) -> str | None:
        return self.headers.get("CSeq")

    def __bytes__(self) -> bytes:
        if not _TOKEN.fullmatch(self.method):
            raise ValueError(f"bad RTSP method {self.method!r}")
        if not self.url or any(c in self.url for c in " \r\n"):
            raise ValueError(f"bad RTSP URL {self.url!r}")
        return _write(f"{self.method} {self.url} {VERSION}", self.headers, self.body)


@dataclass
class RtspResponse:
    """One response: ``status``, ``reason``, headers and body."""

    status: int
    reason: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def __bytes__(self) -> bytes:
        if not 100 <= self.status <= 999:
            raise ValueError(f"RTSP status {self.status} is outside 100..999")
        reason = self.reason or reason_for(self.status)
        if "\r" in reason or "\n" in reason:
            raise ValueError("RTSP reason phrase holds a line break")
        return _write(f"{VERSION} {self.status} {reason}", self.headers, self.body)


@dataclass
class Interleaved:
    """An RTP or RTCP packet carried on the RTSP connection: ``$``, channel, 16-bit length, data."""

    channel: int
    data: bytes

    def __bytes__(self) -> bytes:
        if not 0 <= self.channel <= 255:
            raise ValueError(f"interleaved channel {self.channel} is outside 0..255")
        if len(self.data) > 0xFFFF:
            raise ValueError(f"interleaved packet of {len(self.data)} bytes is longer than 65535")
        return b"$" + bytes((self.channel,)) + len(self.data).to_bytes(2, "big") + self.data


RtspMessage = RtspRequest | RtspResponse | Interleaved


class RtspReader:
    """Splits a connection's byte stream into messages. ``feed`` bytes; it returns what they complete.

    After an :class:`RtspParseError` the stream cannot be trusted: close the connection.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a whole message (a request still arriving)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[RtspMessage]:
        self._buffer += data
        messages: list[RtspMessage] = []
        while self._buffer:
            message = self._next()
            if message is None:
                break
            messages.append(message)
        return messages

    def _next(self) -> RtspMessage | None:
        buffer = self._buffer
        if buffer[0] == 0x24:  # '$'
            if len(buffer) < 4:
                return None
            size = int.from_bytes(buffer[2:4], "big")
            if len(buffer) < 4 + size:
                return None
            frame = Interleaved(buffer[1], bytes(buffer[4 : 4 + size]))
            del buffer[: 4 + size]
            return frame
        while buffer[:2] == b"\r\n":  # blank lines between messages are allowed
            del buffer[:2]
        if not buffer:
            return None
        end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES + 4)
        if end < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                raise RtspParseError(f"RTSP header block longer than {MAX_HEAD_BYTES} bytes")
            first = buffer.find(b"\r\n")
            if (first < 0 and len(buffer) > MAX_LINE) or first > MAX_LINE:
                raise RtspParseError(f"RTSP line longer than {MAX_LINE} bytes", 414)
            return None
        head = bytes(buffer[:end])
        start, headers = _parse_head(head)
        length = _content_length(headers)
        total = end + 4 + length
        if len(buffer) < total:
            return None
        body = bytes(buffer[end + 4 : total])
        del buffer[:total]
        if start[0].startswith("RTSP/"):
            return _response(start, headers, body)
        return _request(start, headers, body)


def _parse_head(head: bytes) -> tuple[list[str], Headers]:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise RtspParseError("RTSP header block is not UTF-8") from None
    lines = text.split("\r\n")
    if any(len(line) > MAX_LINE for line in lines):
        raise RtspParseError(f"RTSP line longer than {MAX_LINE} bytes", 414)
    if len(lines) - 1 > MAX_HEADERS:
        raise RtspParseError(f"more than {MAX_HEADERS} RTSP headers")
    start = lines[0].split(" ", 2)
    if len(start) != 3 or not all(start):
        raise RtspParseError(f"malformed RTSP start line {redact_url(lines[0])[:80]!r}")
    headers = Headers()
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise RtspParseError(f"malformed RTSP header line {line[:80]!r}")
        if "\n" in value or "\r" in value:
            raise RtspParseError(f"RTSP header {name} holds a line break")
        headers.items.append((name, value.strip(" \t")))
    return start, headers


def _content_length(headers: Headers) -> int:
    value = headers.get("Content-Length")
    if value is None:
        return 0
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        raise RtspParseError(f"bad Content-Length {value[:20]!r}")
    length = int(value)
    if length > MAX_BODY:
        raise RtspParseError(f"Content-Length {length} is more than the {MAX_BODY} bytes allowed", 413)
    return length


def _request(start: list[str], headers: Headers, body: bytes) -> RtspRequest:
    method, url, version = start
    if not _TOKEN.fullmatch(method):
        raise RtspParseError(f"bad RTSP method {method[:40]!r}")
    if version != VERSION:
        raise RtspParseError(f"unsupported protocol version {version[:20]!r}", 505)
    return RtspRequest(method, url, headers, body)


def _response(start: list[str], headers: Headers, body: bytes) -> RtspResponse:
    version, status, reason = start
    if version != VERSION:
        raise RtspParseError(f"unsupported protocol version {version[:20]!r}", 505)
    if len(status) != 3 or not status.isascii() or not status.isdigit():
        raise RtspParseError(f"bad RTSP status {status[:20]!r}")
    return RtspResponse(int(status), reason, headers, body)


# -- Transport ----------------------------------------------------------------------------------------


@dataclass
class TransportSpec:
    """One transport choice of a ``Transport`` header (RFC 2326 section 12.39)."""

    protocol: str = "RTP/AVP"
    """``RTP/AVP`` (UDP) or ``RTP/AVP/TCP`` (interleaved)."""
    unicast: bool = True
    client_port: tuple[int, int] | None = None
    server_port: tuple[int, int] | None = None
    interleaved: tuple[int, int] | None = None
    mode: str | None = None
    ssrc: int | None = None

    @property
    def tcp(self) -> bool:
        return self.protocol.upper() == "RTP/AVP/TCP"

    def __str__(self) -> str:
        parts = [self.protocol, "unicast" if self.unicast else "multicast"]
        for name, pair in (
            ("client_port", self.client_port),
            ("server_port", self.server_port),
            ("interleaved", self.interleaved),
        ):
            if pair is not None:
                parts.append(f"{name}={pair[0]}-{pair[1]}")
        if self.ssrc is not None:
            parts.append(f"ssrc={self.ssrc:08X}")
        if self.mode is not None:
            parts.append(f"mode={self.mode}")
        return ";".join(parts)


def _pair(name: str, value: str, low: int, high: int) -> tuple[int, int]:
    first, dash, second = value.partition("-")
    numbers = [first, second] if dash else [first]
    if not all(n.isascii() and n.isdigit() and len(n) <= 5 for n in numbers):
        raise RtspParseError(f"bad {name} {value[:40]!r} in Transport", 461)
    a = int(first)
    b = int(second) if dash else a + 1
    if not (low <= a <= high and low <= b <= high):
        raise RtspParseError(f"{name} {value[:40]!r} is outside {low}..{high}", 461)
    return a, b


def parse_transport(value: str) -> list[TransportSpec]:
    """The choices of a ``Transport`` header, in the client's order of preference."""
    specs: list[TransportSpec] = []
    for choice in value.split(",")[:8]:
        params = [p.strip() for p in choice.split(";")]
        if not params[0]:
            continue
        spec = TransportSpec(protocol=params[0].upper())
        if spec.protocol == "RTP/AVP/UDP":
            spec.protocol = "RTP/AVP"
        for param in params[1:]:
            name, _, arg = param.partition("=")
            name = name.strip().lower()
            arg = arg.strip().strip('"')
            if name == "unicast":
                spec.unicast = True
            elif name == "multicast":
                spec.unicast = False
            elif name == "client_port":
                spec.client_port = _pair(name, arg, 1, 65535)
            elif name == "server_port":
                spec.server_port = _pair(name, arg, 1, 65535)
            elif name == "interleaved":
                spec.interleaved = _pair(name, arg, 0, 255)
            elif name == "mode":
                spec.mode = arg.upper()[:16]
            elif name == "ssrc":
                try:
                    spec.ssrc = int(arg, 16) if len(arg) <= 8 else None
                except ValueError:
                    raise RtspParseError(f"bad ssrc {arg[:20]!r} in Transport", 461) from None
        specs.append(spec)
    if not specs:
        raise RtspParseError("empty Transport header", 461)
    return specs


# -- Authorization and Range ---------------------------------------------------------------------------


def basic_credentials(value: str | None) -> tuple[str, str] | None:
    """The user and password of a Basic ``Authorization`` header, or ``None`` if it is not one."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic" or len(token) > 1024:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def parse_npt_range(value: str | None) -> float | None:
    """The start, in seconds, of an ``npt`` range such as ``npt=12.5-``; ``None`` for none or ``now``."""
    if not value:
        return None
    unit, _, span = value.strip().partition("=")
    if unit.strip().lower() != "npt":
        raise RtspParseError(f"unsupported Range {value[:40]!r}: only npt", 457)
    start = span.partition("-")[0].strip()
    if not start or start == "now":
        return None
    try:
        seconds = float(start)
    except ValueError:
        raise RtspParseError(f"bad Range {value[:40]!r}", 457) from None
    if not 0 <= seconds < 1e9:
        raise RtspParseError(f"bad Range {value[:40]!r}", 457)
    return seconds
