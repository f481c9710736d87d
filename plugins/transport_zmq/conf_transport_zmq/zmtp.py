"""ZMTP 3.1 (ZeroMQ's wire protocol, RFC 37) for the server's side of a connection, sans-I/O.

The server speaks it itself, on the event loop, so that a packet it forwards crosses no thread: a libzmq
socket hands every message to and from an I/O thread of its own. Clients keep their libzmq DEALER; what
the server writes is what a libzmq ROUTER would write, byte for byte in shape (tested against pyzmq).

A connection starts with each side's 64-byte greeting (signature, version, security mechanism), then the
mechanism's handshake in commands (NULL: one ``READY`` each way; CURVE: :mod:`.curvezmq`), then frames:
a flags byte (``MORE``, ``LONG``, ``COMMAND``), a size of one byte or eight, the body. A message is its
frames up to the first without ``MORE``. Under CURVE every frame travels inside a ``MESSAGE`` box whose
first plaintext byte carries the frame's ``MORE`` and ``COMMAND`` flags. After the handshake the only
commands are ``PING`` (answered ``PONG`` with its context) and ``PONG``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

from conf_cli import ProtocolError

GREETING_SIZE = 64
SIGNATURE_END = 10
"""The signature is ``0xFF``, eight bytes of padding, ``0x7F``."""
VERSION = (3, 1)
MECHANISM_SIZE = 20
NULL = b"NULL"
CURVE = b"CURVE"

MORE = 0x01
LONG = 0x02
COMMAND = 0x04

MAX_HANDSHAKE_FRAME = 1_024
"""The largest frame taken before the handshake ends (a CURVE INITIATE with conf's metadata is about 300
bytes): what an unauthenticated peer can make the server buffer."""
MAX_PROPERTY_VALUE = 255
"""The largest metadata value kept (a routing id is at most 255 bytes; Socket-Type a few)."""
MAX_CONTEXT = 16
"""A PING's context is at most 16 bytes (RFC 37)."""

SOCKET_TYPE = "Socket-Type"
IDENTITY = "Identity"
ROUTER_PEERS = frozenset({b"DEALER", b"REQ", b"ROUTER"})
"""The socket types a ROUTER talks to (RFC 28)."""


def greeting(mechanism: bytes, *, as_server: bool) -> bytes:
    """This side's whole greeting."""
    return (
        b"\xff" + bytes(7) + b"\x01\x7f"
        + bytes(VERSION)
        + mechanism.ljust(MECHANISM_SIZE, b"\x00")
        + (b"\x01" if as_server else b"\x00")
        + bytes(31)
    )  # fmt: skip


def check_greeting(data: bytes, mechanism: bytes) -> None:
    """Check the peer's 64-byte greeting: ZMTP 3 or later, and ``mechanism``; ProtocolError if not."""
    if len(data) != GREETING_SIZE or data[0] != 0xFF or not data[9] & 0x01:
        raise ProtocolError("not a ZMTP 3 greeting")
    if data[10] < 3:
        raise ProtocolError(f"ZMTP version {data[10]}.{data[11]}: 3.0 or later needed")
    theirs = data[12 : 12 + MECHANISM_SIZE].rstrip(b"\x00")
    if theirs != mechanism:
        shown = theirs.decode("ascii", "replace")[:20]
        raise ProtocolError(f"the peer's security mechanism is {shown!r}, not {mechanism.decode()}")


def frame(body: bytes, flags: int = 0) -> bytes:
    """One frame: its flags and size, then ``body``."""
    size = len(body)
    if size <= 255:
        return bytes((flags, size)) + body
    return bytes((flags | LONG,)) + size.to_bytes(8, "big") + body


def frame_header(size: int, flags: int = 0) -> bytes:
    """The flags and size of a frame of ``size`` bytes (its body written after it)."""
    if size <= 255:
        return bytes((flags, size))
    return bytes((flags | LONG,)) + size.to_bytes(8, "big")


def command(name: bytes, data: bytes = b"") -> bytes:
    """A command's body: its name's length and name, then its data."""
    return bytes((len(name),)) + name + data


def read_command(body: bytes) -> tuple[bytes, bytes]:
    """A command body's name and data; ProtocolError if it has none."""
    if not body or len(body) < 1 + body[0]:
        raise ProtocolError("a malformed command")
    return bytes(body[1 : 1 + body[0]]), bytes(body[1 + body[0] :])


def properties(values: Mapping[str, bytes]) -> bytes:
    """Metadata: each name's length (one byte) and name, each value's length (four bytes) and value."""
    out = bytearray()
    for name, value in values.items():
        encoded = name.encode("ascii")
        out += bytes((len(encoded),)) + encoded + len(value).to_bytes(4, "big") + value
    return bytes(out)


def read_properties(data: bytes) -> dict[str, bytes]:
    """Parse metadata (names compared without case, as RFC 37 says); ProtocolError if malformed or a value
    is longer than :data:`MAX_PROPERTY_VALUE`."""
    found: dict[str, bytes] = {}
    at = 0
    while at < len(data):
        size = data[at]
        name = data[at + 1 : at + 1 + size]
        at += 1 + size
        if len(name) != size or not size or at + 4 > len(data):
            raise ProtocolError("malformed metadata")
        length = int.from_bytes(data[at : at + 4], "big")
        at += 4
        if length > MAX_PROPERTY_VALUE or at + length > len(data):
            raise ProtocolError("a metadata value too long")
        found[name.decode("ascii", "replace").lower()] = bytes(data[at : at + length])
        at += length
    return found


def peer_socket(metadata: Mapping[str, bytes]) -> bytes:
    """The routing id a ROUTER's peer asks for (may be empty); ProtocolError unless the peer's socket type
    is one a ROUTER talks to, or the id is one libzmq forbids (a first byte of 0)."""
    kind = metadata.get(SOCKET_TYPE.lower(), b"")
    if kind not in ROUTER_PEERS:
        raise ProtocolError(f"a {kind.decode('ascii', 'replace')[:20]!r} socket cannot talk to a ROUTER")
    routing_id = metadata.get(IDENTITY.lower(), b"")
    if routing_id[:1] == b"\x00":
        raise ProtocolError("a routing id starting with a zero byte")
    return routing_id


def ping_answer(data: bytes) -> bytes:
    """The ``PONG`` body for a ``PING``'s data (a 2-byte TTL, then a context of at most 16 bytes)."""
    if len(data) < 2:
        raise ProtocolError("a PING without its TTL")
    return command(b"PONG", data[2 : 2 + MAX_CONTEXT])


def answer_command(body: bytes) -> bytes | None:
    """The answer to a command after the handshake: a ``PONG`` for a ``PING``; None for a ``PONG`` or a
    command this end does not know (RFC 37 has them ignored); ProtocolError for an ``ERROR``."""
    name, data = read_command(body)
    if name == b"PING":
        return ping_answer(data)
    if name == b"ERROR":
        raise ProtocolError(f"the peer reported an error: {data[1:60]!r}")
    return None


class FrameReader:
    """Cuts a byte stream into frames ``(flags, body)``, refusing any larger than ``limit`` before it is
    buffered (ProtocolError)."""

    __slots__ = ("_buffer", "limit")

    def __init__(self, limit: int) -> None:
        self._buffer = bytearray()
        self.limit = limit

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        buffer = self._buffer
        buffer += data
        at = 0
        end = len(buffer)
        try:
            while end - at >= 2:
                flags = buffer[at]
                if flags & 0xF8:
                    raise ProtocolError(f"frame flags {flags:#04x}: reserved bits set")
                if flags & LONG:
                    if end - at < 9:
                        break
                    size = int.from_bytes(buffer[at + 1 : at + 9], "big")
                    start = at + 9
                else:
                    size = buffer[at + 1]
                    start = at + 2
                if size > self.limit:
                    raise ProtocolError(f"a frame of {size} bytes exceeds {self.limit}")
                if end - start < size:
                    break
                at = start + size
                yield flags, bytes(buffer[start:at])
        finally:
            del buffer[:at]


class ZmtpPeer:
    """What either end does with the bytes its connection brings (sans-I/O): the peer's greeting, checked
    for ``mechanism``; then each whole frame to :meth:`handshake_frame` until :attr:`handshaken`, to
    :meth:`message_frame` after. A greeting of another mechanism or a ProtocolError from either goes to
    :meth:`broken`. :attr:`heard` is when the last whole frame came (a frame trickled forever is no sign
    of life)."""

    def __init__(self, mechanism: bytes) -> None:
        self.mechanism = mechanism
        self.handshaken = False
        self.heard = time.monotonic()
        self.reader = FrameReader(MAX_HANDSHAKE_FRAME)
        self._greeting = b""

    def feed(self, data: bytes) -> None:
        if len(self._greeting) < GREETING_SIZE:
            need = GREETING_SIZE - len(self._greeting)
            self._greeting += data[:need]
            data = data[need:]
            if len(self._greeting) < GREETING_SIZE:
                return
            try:
                check_greeting(self._greeting, self.mechanism)
            except ProtocolError as exc:
                self.broken(str(exc))
                return
        heard = False
        try:
            for flags, body in self.reader.feed(data):
                if self.stopped():
                    return
                heard = True
                if self.handshaken:
                    self.message_frame(flags, body)
                else:
                    self.handshake_frame(flags, body)
        except ProtocolError as exc:
            self.broken(str(exc))
        if heard:
            self.heard = time.monotonic()

    def stopped(self) -> bool:
        """True once nothing more is to be read (the connection was dropped)."""
        raise NotImplementedError

    def handshake_frame(self, flags: int, body: bytes) -> None:
        raise NotImplementedError

    def message_frame(self, flags: int, body: bytes) -> None:
        raise NotImplementedError

    def broken(self, why: str) -> None:
        """The peer broke the protocol (:attr:`handshaken` says whether in the handshake)."""
        raise NotImplementedError
