"""The ZeroMQ framing of conf, sans-I/O: message kinds, the transport greeting, limits.

A message between a client's DEALER and the server's ROUTER (which sees the DEALER's routing id in front)
has one of two shapes:

- the transport's own, two frames ``[KIND, PAYLOAD]``: ``G`` greeting, ``B`` goodbye (payload: a UTF-8
  reason, maybe empty). Their shape is the same in every version, so that two versions can tell each other
  that they differ;
- the link's, one frame: an RTP/RTCP packet as it is (its first two bits ``10``: kind ``M``), or one
  ASCII kind byte and its payload: ``C`` and a conf control message (JSON), ``K`` (a keep-alive, nothing
  after it). One frame is one CURVE box and one send call per recipient instead of two.

Media goes both ways on the same connection: the server sends each packet to each client the meeting
core chose, addressed by its routing id. docs/protocol.md describes the same.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Sequence

from conf_cli import ProtocolError
from conf_cli.protocol.control import CONTROL_CHARS

GREETING = b"G"
CONTROL = b"C"
MEDIA = b"M"
KEEPALIVE = b"K"
BYE = b"B"
KINDS = frozenset({GREETING, CONTROL, MEDIA, KEEPALIVE, BYE})
TRANSPORT_KINDS = frozenset({GREETING, BYE})
"""The kinds sent as two frames ``[KIND, PAYLOAD]``; the others are one frame."""

TRANSPORT_NAME = "conf-zmq"
VERSION = 3
"""Version 1 sent media down on a PUB socket (named by ``pub_port`` in the greeting); 2 sent every message
as two frames ``[KIND, PAYLOAD]``; 3 sends the link's messages as one frame."""
MAX_PAYLOAD = 65_535
"""The largest control message or media packet, as on TCP (RFC 4571)."""
MAX_GREETING = 512
MAX_REASON = 200
MAX_ROUTING_ID = 255
SOCKET_MAX_FRAME = MAX_PAYLOAD + 64
"""ZMQ_MAXMSGSIZE on every socket: libzmq disconnects a peer sending a larger frame before buffering it."""
CONTROL_BACKLOG_LIMIT = 4 * 1024 * 1024
"""Control bytes waiting for a peer's full queue beyond which it is too slow to keep (as on TCP)."""
BACKLOG_POLL = 0.01
"""Seconds between tries to move waiting control messages into a socket's queue."""


class ControlBacklog:
    """Control messages that found a peer's queue full, kept in order to be sent once it drains, at most
    :data:`CONTROL_BACKLOG_LIMIT` bytes (either side of a link; sans-I/O: the sending is passed in)."""

    __slots__ = ("_queue", "bytes")

    def __init__(self) -> None:
        self._queue: deque[bytes] = deque()
        self.bytes = 0

    def __bool__(self) -> bool:
        return bool(self._queue)

    def add(self, data: bytes) -> bool:
        """Keep ``data`` for later; False once the backlog is over its limit (the peer is too slow)."""
        self._queue.append(data)
        self.bytes += len(data)
        return self.bytes <= CONTROL_BACKLOG_LIMIT

    def flush(self, send: Callable[[bytes], bool]) -> bool:
        """Hand the waiting messages to ``send`` in order until it refuses one; True once none wait."""
        queue = self._queue
        while queue:
            if not send(queue[0]):
                return False
            self.bytes -= len(queue.popleft())
        return True

    def clear(self) -> None:
        self._queue.clear()
        self.bytes = 0


def client_greeting() -> bytes:
    """The payload of the client's ``G`` message."""
    return json.dumps({"transport": TRANSPORT_NAME, "version": VERSION}).encode()


def server_greeting() -> bytes:
    """The payload of the server's ``G`` answer."""
    return json.dumps({"transport": TRANSPORT_NAME, "version": VERSION}).encode()


def _greeting_object(payload: bytes) -> dict[str, object]:
    if len(payload) > MAX_GREETING:
        raise ProtocolError(f"greeting of {len(payload)} bytes exceeds {MAX_GREETING}")
    try:
        value = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("greeting is not a JSON object") from None
    if not isinstance(value, dict) or value.get("transport") != TRANSPORT_NAME:
        raise ProtocolError(f"greeting is not a {TRANSPORT_NAME} greeting")
    if value.get("version") != VERSION:
        raise ProtocolError(f"greeting version {value.get('version')!r} is not {VERSION}")
    return value


def parse_client_greeting(payload: bytes) -> None:
    """Check a client's greeting; raise ProtocolError if it is not one this server speaks."""
    _greeting_object(payload)


def parse_server_greeting(payload: bytes) -> None:
    """Check the server's greeting; raise ProtocolError if it is not one this client speaks."""
    _greeting_object(payload)


def frames(kind: bytes, payload: bytes) -> list[bytes]:
    """The frames of one message: ``[KIND, PAYLOAD]`` for the transport's (``G``, ``B``), the packet
    itself for ``M``, the kind byte and the payload in one frame for the others."""
    if kind in TRANSPORT_KINDS:
        return [kind, payload]
    return [payload] if kind == MEDIA else [kind + payload]


def split(message: Sequence[bytes]) -> tuple[bytes, bytes]:
    """Check one DEALER/ROUTER message's frames (routing id already removed); return ``(kind,
    payload)``."""
    if len(message) == 2:
        kind, payload = message
        if kind not in TRANSPORT_KINDS:
            raise ProtocolError(f"two frames of kind {bytes(kind[:8])!r}: only G and B are two frames")
    elif len(message) == 1:
        (data,) = message
        if not data:
            raise ProtocolError("an empty message")
        if data[0] >> 6 == 2:
            kind, payload = MEDIA, data
        else:
            kind, payload = data[:1], data[1:]
            if kind not in KINDS or kind in TRANSPORT_KINDS:
                raise ProtocolError(f"unknown message kind {bytes(kind)!r}")
    else:
        raise ProtocolError(f"message of {len(message)} frames, expected 1 (or 2: G, B)")
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    if kind == KEEPALIVE and payload:
        raise ProtocolError("keep-alive with a payload")
    return kind, payload


def bye(reason: str) -> bytes:
    """The payload of a ``B`` message: the reason, cut to MAX_REASON bytes of UTF-8."""
    return reason.encode()[:MAX_REASON].decode(errors="ignore").encode()


def read_bye(payload: bytes) -> str:
    """The peer's reason, for a log line or a message: control characters (a terminal acts on them)
    become U+FFFD."""
    return CONTROL_CHARS.sub("\ufffd", payload[:MAX_REASON].decode(errors="replace")) or "closed"
