"""The ZeroMQ framing of conf, sans-I/O: message kinds, the transport greeting, limits.

Every message between a client's DEALER and the server's ROUTER is exactly two frames, ``[KIND, PAYLOAD]``
(the ROUTER sees the DEALER's routing id in front). ``KIND`` is one ASCII byte:

``G`` greeting (transport-level, before any conf message), ``C`` a conf control message (JSON), ``M`` an
RTP/RTCP packet, ``K`` a keep-alive (empty payload), ``B`` goodbye (payload: a UTF-8 reason, maybe empty).

Media goes both ways as ``M`` on the same connection: the server sends each packet to each client the
meeting core chose, addressed by its routing id. docs/protocol.md describes the same.
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

TRANSPORT_NAME = "conf-zmq"
VERSION = 2
"""Version 1 sent media down on a PUB socket (named by ``pub_port`` in the greeting); 2 sends it as ``M``."""
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


def split(frames: Sequence[bytes]) -> tuple[bytes, bytes]:
    """Check one DEALER/ROUTER message (routing id already removed); return ``(kind, payload)``."""
    if len(frames) != 2:
        raise ProtocolError(f"message of {len(frames)} frames, expected 2")
    kind, payload = frames
    if kind not in KINDS:
        raise ProtocolError(f"unknown message kind {bytes(kind[:8])!r}")
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    if kind == MEDIA and (not payload or payload[0] >> 6 != 2):
        raise ProtocolError("media payload is not RTP/RTCP version 2")
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
