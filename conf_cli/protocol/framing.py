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

    # One frame at a time, for a reader that may stop after any frame and hand on the rest unread (the
    # worker front hands a connection, from its first create or join on, to a worker).

    def push(self, data: bytes) -> None:
        """Add bytes without taking frames out."""
        self._buffer += data

    def peek(self) -> bytes | None:
        """The next complete frame, left in place; None until one is whole."""
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        (length,) = _LENGTH.unpack_from(buffer)
        if len(buffer) - 2 < length:
            return None
        return bytes(buffer[2 : 2 + length])

    def skip(self) -> None:
        """Drop the frame :meth:`peek` returned."""
        if self.peek() is not None:
            (length,) = _LENGTH.unpack_from(self._buffer)
            del self._buffer[: 2 + length]

    def held(self) -> bytes:
        """Every byte held, from the next frame on, framing included."""
        return bytes(self._buffer)
