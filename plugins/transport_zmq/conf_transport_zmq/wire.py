"""The ZeroMQ framing of conf, sans-I/O: message kinds, the transport greeting, PUB topics, limits.

Every message between a client's DEALER and the server's ROUTER is exactly two frames, ``[KIND, PAYLOAD]``
(the ROUTER sees the DEALER's routing id in front). ``KIND`` is one ASCII byte:

``G`` greeting (transport-level, before any conf message), ``C`` a conf control message (JSON), ``M`` an
RTP/RTCP packet, ``K`` a keep-alive (empty payload), ``B`` goodbye (payload: a UTF-8 reason, maybe empty).

Media fanned out on the server's PUB socket is ``[TOPIC, PACKET]``: ``TOPIC`` is the RTP packet's SSRC,
4 bytes big-endian, so a SUB subscribes to exactly one track. docs/protocol.md describes the same.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from conf_cli.errors import ProtocolError
from conf_cli.protocol.control import CONTROL_CHARS
from conf_cli.protocol.rtp import is_rtcp

GREETING = b"G"
CONTROL = b"C"
MEDIA = b"M"
KEEPALIVE = b"K"
BYE = b"B"
KINDS = frozenset({GREETING, CONTROL, MEDIA, KEEPALIVE, BYE})

TRANSPORT_NAME = "conf-zmq"
VERSION = 1
MAX_PAYLOAD = 65_535
"""The largest control message or media packet, as on TCP (RFC 4571)."""
MAX_GREETING = 512
MAX_REASON = 200
MAX_ROUTING_ID = 255
SOCKET_MAX_FRAME = MAX_PAYLOAD + 64
"""ZMQ_MAXMSGSIZE on every socket: libzmq disconnects a peer sending a larger frame before buffering it."""
TOPIC_SIZE = 4


def client_greeting() -> bytes:
    """The payload of the client's ``G`` message."""
    return json.dumps({"transport": TRANSPORT_NAME, "version": VERSION}).encode()


def server_greeting(pub_port: int) -> bytes:
    """The payload of the server's ``G`` answer: where its PUB socket listens (same host as the ROUTER)."""
    return json.dumps({"transport": TRANSPORT_NAME, "version": VERSION, "pub_port": pub_port}).encode()


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


def parse_server_greeting(payload: bytes) -> int:
    """Read the server's greeting; return its PUB port."""
    port = _greeting_object(payload).get("pub_port")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65_536:
        raise ProtocolError(f"greeting has no valid pub_port: {port!r}")
    return port


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


def topic(ssrc: int) -> bytes:
    """The PUB/SUB topic of track ``ssrc``."""
    return (ssrc & 0xFFFFFFFF).to_bytes(TOPIC_SIZE, "big")


def rtp_topic(packet: bytes) -> bytes | None:
    """The topic an RTP packet is published under, or None for RTCP and anything that is not RTP."""
    if len(packet) < 12 or packet[0] >> 6 != 2 or is_rtcp(packet):
        return None
    return packet[8:12]


def split_published(frames: Sequence[bytes]) -> bytes:
    """Check one PUB message as a SUB receives it; return the packet."""
    if len(frames) != 2:
        raise ProtocolError(f"published message of {len(frames)} frames, expected 2")
    name, packet = frames
    if len(packet) > MAX_PAYLOAD:
        raise ProtocolError(f"published packet of {len(packet)} bytes exceeds {MAX_PAYLOAD}")
    if rtp_topic(packet) != name:
        raise ProtocolError("published packet does not match its topic")
    return packet
