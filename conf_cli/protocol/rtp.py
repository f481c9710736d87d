"""RTP packets (RFC 3550 section 5.1), sans-I/O.

:class:`RtpPacket` is the fixed header, the CSRC list, the optional header extension (RFC 3550 section 5.3.1,
kept as ``(profile, data)``; RFC 8285 elements inside it are not interpreted here), the payload and the
padding. ``RtpPacket.parse(data)`` reads a datagram and ``bytes(packet)`` writes one.

:func:`is_rtcp` demultiplexes RTP and RTCP sharing one port (RFC 5761 section 4) and :func:`peek_ssrc`
reads the SSRC without building a packet; both sit on the forwarding hot path of the SFU.

Malformed input raises :class:`conf_cli.errors.ProtocolError` with an exact message. Every length in the
packet (CSRC count, extension length, padding length) is checked against the datagram.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TypeAlias

from conf_cli.errors import ProtocolError

__all__ = [
    "RTP_HEADER_SIZE",
    "RTP_VERSION",
    "Buffer",
    "RtpPacket",
    "header_fits",
    "is_rtcp",
    "payload_offset",
    "peek_ssrc",
]

RTP_VERSION = 2
RTP_HEADER_SIZE = 12

Buffer: TypeAlias = bytes | bytearray | memoryview

_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")
_WORD = struct.Struct("!I")


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet. The version is always 2.

    ``padding`` is the number of padding octets at the end of the packet, count octet included (0 means the
    P bit is clear). ``extension`` is ``(profile, data)`` with ``len(data)`` a multiple of 4, or ``None``.
    """

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: list[int] = field(default_factory=list)
    extension: tuple[int, bytes] | None = None
    padding: int = 0

    version = RTP_VERSION

    @classmethod
    def parse(cls, data: Buffer) -> RtpPacket:
        """Read one RTP packet from a datagram; raise ProtocolError if it is malformed."""
        size = len(data)
        if size < RTP_HEADER_SIZE:
            raise ProtocolError(f"RTP packet too short: {size} bytes, the fixed header needs 12")
        first, second, seq, timestamp, ssrc = _HEADER.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise ProtocolError(f"RTP version {first >> 6} is not 2")
        offset = RTP_HEADER_SIZE
        csrc_count = first & 0x0F
        csrc: list[int] = []
        if csrc_count:
            end = offset + 4 * csrc_count
            if end > size:
                raise ProtocolError(
                    f"RTP CSRC count {csrc_count} runs past the end of the {size}-byte packet"
                )
            csrc = list(struct.unpack_from(f"!{csrc_count}I", data, offset))
            offset = end
        extension: tuple[int, bytes] | None = None
        if first & 0x10:
            if offset + 4 > size:
                raise ProtocolError(f"RTP header extension runs past the end of the {size}-byte packet")
            profile, words = _EXT_HEADER.unpack_from(data, offset)
            end = offset + 4 + 4 * words
            if end > size:
                raise ProtocolError(f"RTP header extension runs past the end of the {size}-byte packet")
            extension = (profile, bytes(data[offset + 4 : end]))
            offset = end
        padding = 0
        end = size
        if first & 0x20:
            padding = data[-1]
            if padding == 0:
                raise ProtocolError("RTP padding length is 0")
            if padding > size - offset:
                raise ProtocolError(
                    f"RTP padding of {padding} bytes runs past the end of the {size}-byte packet"
                )
            end -= padding
        return cls(
            payload_type=second & 0x7F,
            sequence_number=seq,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[offset:end]),
            marker=bool(second & 0x80),
            csrc=csrc,
            extension=extension,
            padding=padding,
        )

    def __bytes__(self) -> bytes:
        """Write the packet; raise ValueError if a field does not fit its width."""
        if not 0 <= self.payload_type <= 0x7F:
            raise ValueError(f"RTP payload type {self.payload_type} is outside 0..127")
        if len(self.csrc) > 15:
            raise ValueError(f"RTP carries at most 15 CSRCs, got {len(self.csrc)}")
        if not 0 <= self.padding <= 0xFF:
            raise ValueError(f"RTP padding {self.padding} is outside 0..255")
        first = (RTP_VERSION << 6) | len(self.csrc)
        if self.padding:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        try:
            parts = [
                _HEADER.pack(
                    first,
                    (0x80 if self.marker else 0) | self.payload_type,
                    self.sequence_number,
                    self.timestamp,
                    self.ssrc,
                )
            ]
            if self.csrc:
                parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        except struct.error as exc:
            raise ValueError(f"RTP header field out of range: {exc}") from None
        if self.extension is not None:
            profile, ext = self.extension
            if len(ext) % 4 or len(ext) > 0xFFFF * 4:
                raise ValueError(f"RTP header extension of {len(ext)} bytes is not a whole number of words")
            if not 0 <= profile <= 0xFFFF:
                raise ValueError(f"RTP header extension profile {profile} is outside 0..65535")
            parts.append(_EXT_HEADER.pack(profile, len(ext) // 4))
            parts.append(ext)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)


def is_rtcp(data: Buffer) -> bool:
    """Tell RTCP from RTP on a shared port (RFC 5761 section 4): conf's one demultiplexing rule.

    Only the second octet is read. RTCP packet types 192..223 are RTP payload types 64..95 with the
    marker bit set, so the test is on the payload type with the marker bit masked off: 64..95 is RTCP,
    whatever the marker bit. Hence RTP payload types 64..95 must not be used on a multiplexed port (as
    RFC 5761 says); every part of conf that tells the two apart (hub, forwarder, transports, SRTP, the
    bench, the test peers) calls this function.
    """
    return len(data) >= 2 and 64 <= (data[1] & 0x7F) <= 95


def header_fits(data: Buffer) -> bool:
    """Whether an RTP packet is version 2 with its CSRC list and header extension inside the packet.

    What a forwarder can check without touching the payload: padding is not checked, as SRTP encrypts the
    padding count (RFC 3711 section 3.1) and the packet ends with its authentication tag.
    """
    size = len(data)
    if size < RTP_HEADER_SIZE or data[0] >> 6 != RTP_VERSION:
        return False
    first = data[0]
    end = RTP_HEADER_SIZE + 4 * (first & 0x0F)
    if first & 0x10:
        if end + 4 > size:
            return False
        end += 4 + 4 * (data[end + 2] << 8 | data[end + 3])
    return end <= size


def payload_offset(data: Buffer) -> int:
    """Where the payload of an RTP packet starts (after its CSRC list and header extension); the packet
    must pass :func:`header_fits`."""
    first = data[0]
    end = RTP_HEADER_SIZE + 4 * (first & 0x0F)
    if first & 0x10:
        end += 4 + 4 * (data[end + 2] << 8 | data[end + 3])
    return end


def peek_ssrc(data: Buffer) -> int:
    """Read the SSRC of an RTP packet, or the sender SSRC of an RTCP packet, without parsing it."""
    if is_rtcp(data):
        if len(data) < 8:
            raise ProtocolError(f"RTCP packet too short: {len(data)} bytes, the sender SSRC needs 8")
        return int(_WORD.unpack_from(data, 4)[0])
    if len(data) < RTP_HEADER_SIZE:
        raise ProtocolError(f"RTP packet too short: {len(data)} bytes, the fixed header needs 12")
    if data[0] >> 6 != RTP_VERSION:
        raise ProtocolError(f"RTP version {data[0] >> 6} is not 2")
    return int(_WORD.unpack_from(data, 8)[0])
