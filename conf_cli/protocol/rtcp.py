"""RTCP packets (RFC 3550 section 6, RFC 4585 section 6, RFC 5104 section 4.3.1), sans-I/O.

One dataclass per packet type conf uses: :class:`SenderReport` and :class:`ReceiverReport` with their
:class:`ReportBlock` (RFC 3550 sections 6.4.1, 6.4.2), :class:`Sdes` (6.5), :class:`Bye` (6.6), the generic
:class:`Nack` (RFC 4585 6.2.1), :class:`Pli` (RFC 4585 6.3.1), :class:`Fir` (RFC 5104 4.3.1) and
:class:`CongestionFeedback` (RFC 8888 3.1, with its :class:`CcfbBlock` per stream). Any other
packet type or feedback format is kept as :class:`UnknownRtcp` so a compound packet still parses.

:func:`parse_compound` reads a datagram into a list of packets, ``bytes(packet)`` writes one packet and
:func:`build_compound` writes several into one datagram. Reduced-size RTCP (RFC 5506) is accepted: the first
packet need not be a report. Every length and count field is checked against the datagram; malformed input
raises :class:`conf_cli.errors.ProtocolError` with an exact message.

The NTP helpers convert wall-clock seconds to the 64-bit NTP format of a sender report and to the middle 32
bits ("compact NTP", units of 1/65536 s) used by LSR and DLSR; :func:`round_trip_time` applies RFC 3550
section 6.4.1 (A - LSR - DLSR).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeAlias

from conf_cli.errors import ProtocolError
from conf_cli.protocol.rtp import Buffer

__all__ = [
    "NTP_UNIX_OFFSET",
    "RTCP_BYE",
    "RTCP_PSFB",
    "RTCP_RR",
    "RTCP_RTPFB",
    "RTCP_SDES",
    "RTCP_SR",
    "SDES_CNAME",
    "Bye",
    "CcfbBlock",
    "CongestionFeedback",
    "Fir",
    "Nack",
    "Pli",
    "ReceiverReport",
    "ReportBlock",
    "RtcpPacket",
    "Sdes",
    "SdesChunk",
    "SenderReport",
    "UnknownRtcp",
    "build_compound",
    "compact_ntp",
    "ntp_from_unix",
    "ntp_middle",
    "parse_compound",
    "round_trip_time",
    "unix_from_ntp",
]

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_RTPFB = 205
RTCP_PSFB = 206

SDES_CNAME = 1
FMT_NACK = 1
FMT_PLI = 1
FMT_FIR = 4
FMT_CCFB = 11
MAX_CCFB_REPORTS = 16_384
"""Packets one RFC 8888 report block may report on (section 3.1)."""
CCFB_ATO_UNKNOWN = 0x1FFF
"""An arrival time offset of 8191/1024 s or more (RFC 8888 section 3.1: too long ago to say)."""

NTP_UNIX_OFFSET = 2_208_988_800
"""Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01)."""

_HEADER = struct.Struct("!BBH")
_SSRC = struct.Struct("!I")
_SENDER_INFO = struct.Struct("!IQIII")
_BLOCK = struct.Struct("!IIIIII")
_FEEDBACK = struct.Struct("!II")
_NACK_PAIR = struct.Struct("!HH")
_FIR_ENTRY = struct.Struct("!IB3x")
_CCFB_BLOCK = struct.Struct("!IHH")


def _pack(st: struct.Struct, *values: int) -> bytes:
    try:
        return st.pack(*values)
    except struct.error as exc:
        raise ValueError(f"RTCP field out of range: {exc}") from None


def _header(count: int, packet_type: int, body: bytes) -> bytes:
    """The common header for a body whose length is a multiple of 4."""
    if not 0 <= count <= 31:
        raise ValueError(f"RTCP count {count} is outside 0..31")
    return _HEADER.pack(0x80 | count, packet_type, len(body) // 4) + body


@dataclass(slots=True)
class ReportBlock:
    """Reception statistics about one source (RFC 3550 section 6.4.1).

    ``packets_lost`` is the 24-bit signed cumulative count, ``highest_sequence`` the extended highest
    sequence number, ``lsr`` and ``dlsr`` are in compact NTP units (1/65536 s).
    """

    ssrc: int
    fraction_lost: int = 0
    packets_lost: int = 0
    highest_sequence: int = 0
    jitter: int = 0
    lsr: int = 0
    dlsr: int = 0

    SIZE = 24

    @classmethod
    def _read(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, lost_word, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr)

    def __bytes__(self) -> bytes:
        if not 0 <= self.fraction_lost <= 0xFF:
            raise ValueError(f"RTCP fraction lost {self.fraction_lost} is outside 0..255")
        if not -0x800000 <= self.packets_lost <= 0x7FFFFF:
            raise ValueError(f"RTCP cumulative lost {self.packets_lost} does not fit 24 signed bits")
        lost_word = (self.fraction_lost << 24) | (self.packets_lost & 0xFFFFFF)
        return _pack(_BLOCK, self.ssrc, lost_word, self.highest_sequence, self.jitter, self.lsr, self.dlsr)


def _read_blocks(kind: str, count: int, body: bytes, offset: int) -> list[ReportBlock]:
    need = offset + ReportBlock.SIZE * count
    if len(body) < need:
        raise ProtocolError(
            f"RTCP {kind} with {count} report blocks needs {need + 4} bytes, has {len(body) + 4}"
        )
    return [ReportBlock._read(body, offset + ReportBlock.SIZE * i) for i in range(count)]


@dataclass(slots=True)
class SenderReport:
    """SR (RFC 3550 section 6.4.1). ``ntp_timestamp`` is the full 64-bit NTP time of ``rtp_timestamp``."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[ReportBlock] = field(default_factory=list)

    @classmethod
    def _parse(cls, count: int, body: bytes) -> SenderReport:
        if len(body) < 24:
            raise ProtocolError(
                f"RTCP SR with {count} report blocks needs {28 + 24 * count} bytes, has {len(body) + 4}"
            )
        ssrc, ntp, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(body)
        return cls(ssrc, ntp, rtp_ts, packets, octets, _read_blocks("SR", count, body, 24))

    def __bytes__(self) -> bytes:
        info = _pack(
            _SENDER_INFO,
            self.ssrc,
            self.ntp_timestamp,
            self.rtp_timestamp,
            self.packet_count,
            self.octet_count,
        )
        return _header(len(self.reports), RTCP_SR, info + b"".join(bytes(r) for r in self.reports))


@dataclass(slots=True)
class ReceiverReport:
    """RR (RFC 3550 section 6.4.2)."""

    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)

    @classmethod
    def _parse(cls, count: int, body: bytes) -> ReceiverReport:
        if len(body) < 4:
            raise ProtocolError(
                f"RTCP RR with {count} report blocks needs {8 + 24 * count} bytes, has {len(body) + 4}"
            )
        return cls(_SSRC.unpack_from(body)[0], _read_blocks("RR", count, body, 4))

    def __bytes__(self) -> bytes:
        body = _pack(_SSRC, self.ssrc) + b"".join(bytes(r) for r in self.reports)
        return _header(len(self.reports), RTCP_RR, body)


@dataclass(slots=True)
class SdesChunk:
    """The items describing one source: ``(item type, value)`` pairs, e.g. ``(SDES_CNAME, b"alice@host")``."""

    ssrc: int
    items: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def cname(self) -> str | None:
        for kind, value in self.items:
            if kind == SDES_CNAME:
                return value.decode("utf-8", errors="replace")
        return None

    def __bytes__(self) -> bytes:
        parts = [_pack(_SSRC, self.ssrc)]
        for kind, value in self.items:
            if not 1 <= kind <= 255:
                raise ValueError(f"RTCP SDES item type {kind} is outside 1..255")
            if len(value) > 255:
                raise ValueError(f"RTCP SDES item of {len(value)} bytes is longer than 255")
            parts.append(bytes((kind, len(value))) + value)
        chunk = b"".join(parts)
        # At least one null octet ends the item list, then nulls up to the next 32-bit boundary.
        return chunk + bytes(4 - len(chunk) % 4)


@dataclass(slots=True)
class Sdes:
    """SDES (RFC 3550 section 6.5)."""

    chunks: list[SdesChunk] = field(default_factory=list)

    @classmethod
    def for_cname(cls, ssrc: int, cname: str) -> Sdes:
        return cls([SdesChunk(ssrc, [(SDES_CNAME, cname.encode())])])

    @classmethod
    def _parse(cls, count: int, body: bytes) -> Sdes:
        size = len(body)
        chunks: list[SdesChunk] = []
        pos = 0
        for index in range(count):
            error = f"RTCP SDES chunk {index + 1} of {count} runs past the end of the {size + 4}-byte packet"
            if pos + 4 > size:
                raise ProtocolError(error)
            chunk = SdesChunk(_SSRC.unpack_from(body, pos)[0])
            pos += 4
            while True:
                if pos >= size:
                    raise ProtocolError(error)
                kind = body[pos]
                if kind == 0:
                    pos = (pos + 4) & ~3
                    break
                if pos + 2 > size or pos + 2 + body[pos + 1] > size:
                    raise ProtocolError(error)
                end = pos + 2 + body[pos + 1]
                chunk.items.append((kind, bytes(body[pos + 2 : end])))
                pos = end
            chunks.append(chunk)
        return cls(chunks)

    def __bytes__(self) -> bytes:
        return _header(len(self.chunks), RTCP_SDES, b"".join(bytes(c) for c in self.chunks))


@dataclass(slots=True)
class Bye:
    """BYE (RFC 3550 section 6.6); an empty ``reason`` is left out of the packet."""

    sources: list[int] = field(default_factory=list)
    reason: str = ""

    @classmethod
    def _parse(cls, count: int, body: bytes) -> Bye:
        size = len(body)
        pos = 4 * count
        if pos > size:
            raise ProtocolError(f"RTCP BYE with {count} sources needs {pos + 4} bytes, has {size + 4}")
        sources = list(struct.unpack_from(f"!{count}I", body))
        reason = ""
        if pos < size:
            length = body[pos]
            if pos + 1 + length > size:
                raise ProtocolError(
                    f"RTCP BYE reason of {length} bytes runs past the end of the {size + 4}-byte packet"
                )
            reason = _reason_text(body[pos + 1 : pos + 1 + length])
        return cls(sources, reason)

    def __bytes__(self) -> bytes:
        body = b"".join(_pack(_SSRC, s) for s in self.sources)
        if self.reason:
            text = self.reason.encode()
            if len(text) > 255:
                raise ValueError(f"RTCP BYE reason of {len(text)} bytes is longer than 255")
            reason = bytes((len(text),)) + text
            body += reason + bytes(-len(reason) % 4)
        return _header(len(self.sources), RTCP_BYE, body)


def _reason_text(raw: bytes) -> str:
    """A BYE reason as text that can be written back: invalid UTF-8 becomes U+FFFD (three bytes each), so
    the text is cut at a character boundary to the 255 bytes a reason may hold."""
    text = raw.decode("utf-8", errors="replace")
    if len(text.encode()) > 255:
        text = text.encode()[:255].decode("utf-8", errors="ignore")
    return text


def _nack_pairs(lost: Iterable[int]) -> list[tuple[int, int]]:
    """Fold sequence numbers (in sequence order) into RFC 4585 (PID, BLP) pairs."""
    pairs: list[list[int]] = []
    for seq in lost:
        seq &= 0xFFFF
        if pairs:
            distance = (seq - pairs[-1][0]) & 0xFFFF
            if distance == 0:
                continue
            if distance <= 16:
                pairs[-1][1] |= 1 << (distance - 1)
                continue
        pairs.append([seq, 0])
    return [(pid, blp) for pid, blp in pairs]


@dataclass(slots=True)
class Nack:
    """Generic NACK (RFC 4585 section 6.2.1): the sequence numbers of ``media_ssrc`` the receiver misses.

    ``lost`` is in sequence order; on the wire it becomes (PID, BLP) pairs and parsing expands them back.
    """

    sender_ssrc: int
    media_ssrc: int
    lost: list[int] = field(default_factory=list)

    @classmethod
    def _parse(cls, sender: int, media: int, fci: bytes) -> Nack:
        if not fci:
            raise ProtocolError("RTCP NACK carries no lost packets")
        if len(fci) % 4:
            raise ProtocolError(f"RTCP NACK of {len(fci)} FCI bytes is not a whole number of 4-byte entries")
        lost: list[int] = []
        for pid, blp in _NACK_PAIR.iter_unpack(fci):
            lost.append(pid)
            lost.extend((pid + bit + 1) & 0xFFFF for bit in range(16) if blp >> bit & 1)
        return cls(sender, media, lost)

    def __bytes__(self) -> bytes:
        pairs = _nack_pairs(self.lost)
        if not pairs:
            raise ValueError("RTCP NACK needs at least one lost packet")
        fci = b"".join(_NACK_PAIR.pack(pid, blp) for pid, blp in pairs)
        return _header(FMT_NACK, RTCP_RTPFB, _pack(_FEEDBACK, self.sender_ssrc, self.media_ssrc) + fci)


@dataclass(slots=True)
class Pli:
    """Picture Loss Indication (RFC 4585 section 6.3.1): ask ``media_ssrc`` for a keyframe."""

    sender_ssrc: int
    media_ssrc: int

    def __bytes__(self) -> bytes:
        return _header(FMT_PLI, RTCP_PSFB, _pack(_FEEDBACK, self.sender_ssrc, self.media_ssrc))


@dataclass(slots=True)
class Fir:
    """Full Intra Request (RFC 5104 section 4.3.1): ``(media ssrc, command sequence number)`` entries."""

    sender_ssrc: int
    entries: list[tuple[int, int]] = field(default_factory=list)

    @classmethod
    def _parse(cls, sender: int, fci: bytes) -> Fir:
        if len(fci) % 8:
            raise ProtocolError(f"RTCP FIR of {len(fci)} FCI bytes is not a whole number of 8-byte entries")
        return cls(sender, [(ssrc, seq) for ssrc, seq in _FIR_ENTRY.iter_unpack(fci)])

    def __bytes__(self) -> bytes:
        fci = b"".join(_pack(_FIR_ENTRY, ssrc, seq) for ssrc, seq in self.entries)
        return _header(FMT_FIR, RTCP_PSFB, _pack(_FEEDBACK, self.sender_ssrc, 0) + fci)


@dataclass(slots=True)
class CcfbBlock:
    """One RTP stream's part of an RFC 8888 report: a metric per packet from ``begin_seq`` on.

    Each metric is the 16-bit field of section 3.1: R (received, top bit), ECN (2 bits) and the arrival
    time offset (13 bits, 1/1024 s before the report timestamp). A packet not received has metric 0.
    """

    ssrc: int
    begin_seq: int
    metrics: list[int] = field(default_factory=list)

    def arrivals(self) -> list[tuple[int, int | None]]:
        """``(sequence number, arrival time offset in 1/1024 s, or None if lost)`` per reported packet;
        a packet received too long before the report (offset 0x1FFF) counts as received at that offset."""
        begin = self.begin_seq
        return [
            ((begin + i) & 0xFFFF, metric & 0x1FFF if metric & 0x8000 else None)
            for i, metric in enumerate(self.metrics)
        ]

    @classmethod
    def received(cls, ssrc: int, begin_seq: int, offsets: list[int | None]) -> CcfbBlock:
        """A block from arrival time offsets (1/1024 s, capped at 0x1FFF; None: not received), ECN 0."""
        return cls(
            ssrc,
            begin_seq & 0xFFFF,
            [0 if o is None else 0x8000 | min(CCFB_ATO_UNKNOWN, max(0, o)) for o in offsets],
        )


@dataclass(slots=True)
class CongestionFeedback:
    """RTP congestion control feedback (RFC 8888, RTPFB FMT 11): which packets of each stream arrived and
    when, relative to ``report_timestamp`` (compact NTP, the middle 32 bits of the NTP time it was sent)."""

    sender_ssrc: int
    blocks: list[CcfbBlock] = field(default_factory=list)
    report_timestamp: int = 0

    @classmethod
    def _parse(cls, body: bytes) -> CongestionFeedback:
        if len(body) < 8:
            raise ProtocolError(f"RTCP congestion feedback needs 12 bytes, has {len(body) + 4}")
        sender = _SSRC.unpack_from(body)[0]
        end = len(body) - 4
        offset = 4
        blocks: list[CcfbBlock] = []
        while offset < end:
            if end - offset < _CCFB_BLOCK.size:
                raise ProtocolError(
                    f"RTCP congestion feedback report block at byte {offset + 4} needs 8 bytes, has "
                    f"{end - offset}"
                )
            ssrc, begin, count = _CCFB_BLOCK.unpack_from(body, offset)
            if count > MAX_CCFB_REPORTS:
                raise ProtocolError(
                    f"RTCP congestion feedback block reports {count} packets, at most {MAX_CCFB_REPORTS}"
                )
            offset += _CCFB_BLOCK.size
            size = 2 * count + (2 * count) % 4
            if end - offset < size:
                raise ProtocolError(
                    f"RTCP congestion feedback block of {count} reports needs {size} bytes, has "
                    f"{end - offset}"
                )
            metrics = list(struct.unpack_from(f"!{count}H", body, offset))
            blocks.append(CcfbBlock(ssrc, begin, metrics))
            offset += size
        return cls(sender, blocks, _SSRC.unpack_from(body, end)[0])

    def __bytes__(self) -> bytes:
        parts = [_pack(_SSRC, self.sender_ssrc)]
        for block in self.blocks:
            count = len(block.metrics)
            if count > MAX_CCFB_REPORTS:
                raise ValueError(f"RFC 8888 block of {count} reports: at most {MAX_CCFB_REPORTS}")
            parts.append(_pack(_CCFB_BLOCK, block.ssrc, block.begin_seq, count))
            try:
                parts.append(struct.pack(f"!{count}H", *block.metrics) + bytes((2 * count) % 4))
            except struct.error as exc:
                raise ValueError(f"RTCP field out of range: {exc}") from None
        parts.append(_pack(_SSRC, self.report_timestamp))
        return _header(FMT_CCFB, RTCP_RTPFB, b"".join(parts))


@dataclass(slots=True)
class UnknownRtcp:
    """A packet type (or feedback format, in ``count``) conf does not interpret; kept so it can be relayed."""

    packet_type: int
    count: int
    body: bytes = b""

    def __bytes__(self) -> bytes:
        if len(self.body) % 4:
            raise ValueError(f"RTCP body of {len(self.body)} bytes is not a whole number of words")
        if not 0 <= self.packet_type <= 255:
            raise ValueError(f"RTCP packet type {self.packet_type} is outside 0..255")
        return _header(self.count, self.packet_type, self.body)


RtcpPacket: TypeAlias = (
    SenderReport | ReceiverReport | Sdes | Bye | Nack | Pli | Fir | CongestionFeedback | UnknownRtcp
)


def _parse_feedback(packet_type: int, fmt: int, body: bytes) -> RtcpPacket:
    if packet_type == RTCP_RTPFB and fmt == FMT_CCFB:
        return CongestionFeedback._parse(body)
    if len(body) < 8:
        raise ProtocolError(f"RTCP feedback packet needs 12 bytes, has {len(body) + 4}")
    sender, media = _FEEDBACK.unpack_from(body)
    if packet_type == RTCP_RTPFB and fmt == FMT_NACK:
        return Nack._parse(sender, media, body[8:])
    if packet_type == RTCP_PSFB and fmt == FMT_PLI:
        return Pli(sender, media)
    if packet_type == RTCP_PSFB and fmt == FMT_FIR:
        return Fir._parse(sender, body[8:])
    return UnknownRtcp(packet_type, fmt, body + bytes(-len(body) % 4))


def parse_compound(data: Buffer) -> list[RtcpPacket]:
    """Read every RTCP packet of a (possibly compound) datagram; raise ProtocolError if any is malformed."""
    total = len(data)
    if total == 0:
        raise ProtocolError("RTCP datagram is empty")
    packets: list[RtcpPacket] = []
    offset = 0
    while offset < total:
        remaining = total - offset
        if remaining < 4:
            raise ProtocolError(f"RTCP packet too short: {remaining} bytes, the header needs 4")
        first, packet_type, length = _HEADER.unpack_from(data, offset)
        if first >> 6 != 2:
            raise ProtocolError(f"RTCP version {first >> 6} is not 2")
        size = (length + 1) * 4
        if size > remaining:
            raise ProtocolError(
                f"RTCP length field says {size} bytes but only {remaining} remain in the datagram"
            )
        end = offset + size
        body_end = end
        if first & 0x20:
            padding = data[end - 1]
            if padding == 0:
                raise ProtocolError("RTCP padding length is 0")
            if padding > size - 4:
                raise ProtocolError(
                    f"RTCP padding of {padding} bytes runs past the end of the {size}-byte packet"
                )
            body_end -= padding
        body = bytes(data[offset + 4 : body_end])
        count = first & 0x1F
        packet: RtcpPacket
        if packet_type == RTCP_SR:
            packet = SenderReport._parse(count, body)
        elif packet_type == RTCP_RR:
            packet = ReceiverReport._parse(count, body)
        elif packet_type == RTCP_SDES:
            packet = Sdes._parse(count, body)
        elif packet_type == RTCP_BYE:
            packet = Bye._parse(count, body)
        elif packet_type in (RTCP_RTPFB, RTCP_PSFB):
            packet = _parse_feedback(packet_type, count, body)
        else:
            packet = UnknownRtcp(packet_type, count, body + bytes(-len(body) % 4))
        packets.append(packet)
        offset = end
    return packets


def build_compound(packets: Iterable[RtcpPacket]) -> bytes:
    """Write packets one after another into one datagram."""
    return b"".join(bytes(p) for p in packets)


def ntp_from_unix(seconds: float) -> int:
    """The 64-bit NTP timestamp (32.32 fixed point since 1900) of a Unix time in seconds."""
    whole = math.floor(seconds)
    fraction = min(int((seconds - whole) * (1 << 32)), 0xFFFFFFFF)
    return ((whole + NTP_UNIX_OFFSET) & 0xFFFFFFFF) << 32 | fraction


def unix_from_ntp(ntp: int) -> float:
    """The Unix time in seconds of a 64-bit NTP timestamp (era 0, i.e. until 2036)."""
    return (ntp >> 32) - NTP_UNIX_OFFSET + (ntp & 0xFFFFFFFF) / (1 << 32)


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of a 64-bit NTP timestamp: the LSR of a report block (units of 1/65536 s)."""
    return (ntp >> 16) & 0xFFFFFFFF


def compact_ntp(seconds: float) -> int:
    """The compact NTP time (middle 32 bits) of a Unix time: the arrival time A of RFC 3550 section 6.4.1."""
    return ntp_middle(ntp_from_unix(seconds))


def round_trip_time(arrival: int, lsr: int, dlsr: int) -> float | None:
    """Round-trip time in seconds from a report block (RFC 3550 section 6.4.1): A - LSR - DLSR.

    All three are compact NTP values (1/65536 s); ``arrival`` is when the report arrived. ``None`` when no
    sender report has been received yet (LSR is 0) or the result is negative (a bogus DLSR).
    """
    if lsr == 0:
        return None
    units = (arrival - lsr - dlsr) & 0xFFFFFFFF
    if units >= 0x80000000:
        return None
    return units / 65536
