"""Stream framing (RFC 4571): a 16-bit big-endian length before every frame.

One TCP connection carries both control messages and media: a frame whose first byte is ``{`` is a JSON
control message, a frame whose first two bits are ``10`` is an RTP or RTCP packet (version 2). An empty
frame is a keep-alive. The decoder is sans-I/O: feed it bytes, take complete frames out.
"""

from __future__ import annotations

import struct

from conf_cli.errors import ProtocolError

MAX_FRAME_BYTES = 65_535
_LENGTH = struct.Struct("!H")


def frame(payload: bytes) -> bytes:
    """Prefix ``payload`` with its length."""
    if len(payload) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME_BYTES}")
    return _LENGTH.pack(len(payload)) + payload


def is_control(payload: bytes) -> bool:
    """True for a JSON control message, False for an RTP/RTCP packet."""
    return payload[:1] == b"{"


def is_media(payload: bytes) -> bool:
    """True for an RTP or RTCP packet (version 2)."""
    return bool(payload) and payload[0] >> 6 == 2


class FrameDecoder:
    """Reassembles length-prefixed frames from arbitrary chunks of a byte stream."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held that do not yet make a whole frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return every frame now complete (empty keep-alive frames included)."""
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        offset = 0
        end = len(buffer)
        while end - offset >= 2:
            (length,) = _LENGTH.unpack_from(buffer, offset)
            if end - offset - 2 < length:
                break
            frames.append(bytes(buffer[offset + 2 : offset + 2 + length]))
            offset += 2 + length
        if offset:
            del buffer[:offset]
        return frames
