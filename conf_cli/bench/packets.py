"""Synthetic RTP for load tests, sans-I/O: a 12-byte RTP header, then the send time, then padding.

Payload layout: bytes 0-7 the sender's ``time.monotonic_ns()`` (big-endian), the rest zeros. The
monotonic clock is shared by every process on a Linux host, so a receiver on the same host computes
one-way latency as its own reading less this one.
"""

from __future__ import annotations

import struct

HEADER = struct.Struct("!BBHII")
STAMP = struct.Struct("!Q")
HEADER_BYTES = 12
MIN_PAYLOAD = STAMP.size
PAYLOAD_TYPE = 96
CLOCK_RATE = 90_000
_SEQ_STAMP = struct.Struct("!H4xIQ")  # sequence number, SSRC, send time: one unpack per packet


class PacketMaker:
    """Makes the RTP packets of one synthetic track: consecutive sequence numbers, a fixed payload size."""

    def __init__(self, ssrc: int, payload_bytes: int, first_seq: int = 0) -> None:
        if payload_bytes < MIN_PAYLOAD:
            raise ValueError(f"payload must hold at least {MIN_PAYLOAD} bytes (the send time)")
        self.ssrc = ssrc
        self.seq = first_seq & 0xFFFF
        self.sent = 0
        self._padding = bytes(payload_bytes - MIN_PAYLOAD)

    def make(self, now_ns: int) -> bytes:
        """The next packet, stamped ``now_ns``."""
        timestamp = (now_ns * CLOCK_RATE // 1_000_000_000) & 0xFFFFFFFF
        header = HEADER.pack(0x80, PAYLOAD_TYPE, self.seq, timestamp, self.ssrc)
        self.seq = (self.seq + 1) & 0xFFFF
        self.sent += 1
        return header + STAMP.pack(now_ns) + self._padding


def read(packet: bytes) -> tuple[int, int, int]:
    """(sequence number, SSRC, send time in ns) of a synthetic packet; ValueError if it is too short."""
    if len(packet) < HEADER_BYTES + MIN_PAYLOAD:
        raise ValueError(f"{len(packet)} bytes is too short for a synthetic RTP packet")
    seq, ssrc, stamp = _SEQ_STAMP.unpack_from(packet, 2)
    return seq, ssrc, stamp
