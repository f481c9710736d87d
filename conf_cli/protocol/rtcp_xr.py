"""RTCP extended reports (RFC 3611) for round-trip times measured by receivers, sans-I/O.

RFC 3550 lets only a sender measure the round-trip time (from the LSR and DLSR of a receiver report). A
receiver that is not sending measures it with two XR blocks: it sends a Receiver Reference Time block
(RRTR, section 4.4) holding its NTP time; the sender answers with a DLRR block (section 4.5) holding, per
receiver, the middle 32 bits of that time (LRR) and how long it held it (DLRR); the receiver computes
``A - LRR - DLRR`` with :func:`conf_cli.protocol.rtcp.round_trip_time`.

XR packets travel inside RTCP compounds as :class:`~conf_cli.protocol.rtcp.UnknownRtcp` of type 207;
:func:`read_xr` picks these two block types out of one and :func:`rrtr` / :func:`dlrr` write them. Other
block types are skipped. Malformed input raises :class:`conf_cli.errors.ProtocolError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from conf_cli.errors import ProtocolError
from conf_cli.protocol.rtcp import UnknownRtcp

__all__ = ["RTCP_XR", "ExtendedReport", "dlrr", "read_xr", "rrtr"]

RTCP_XR = 207
BT_RRTR = 4
BT_DLRR = 5
MAX_DLRR_ENTRIES = 31

_BLOCK_HEADER = struct.Struct("!BBH")
_DLRR_ENTRY = struct.Struct("!III")


@dataclass(slots=True)
class ExtendedReport:
    """What conf reads from one XR packet: its sender, an RRTR time and DLRR entries (ssrc, lrr, dlrr)."""

    ssrc: int
    rrtr: int | None = None
    dlrr: list[tuple[int, int, int]] = field(default_factory=list)


def rrtr(ssrc: int, ntp_timestamp: int) -> UnknownRtcp:
    """An XR packet from ``ssrc`` with one RRTR block (its 64-bit NTP time now)."""
    body = struct.pack("!I", ssrc) + _BLOCK_HEADER.pack(BT_RRTR, 0, 2) + struct.pack("!Q", ntp_timestamp)
    return UnknownRtcp(RTCP_XR, 0, body)


def dlrr(ssrc: int, entries: list[tuple[int, int, int]]) -> UnknownRtcp:
    """An XR packet from ``ssrc`` with one DLRR block of ``(receiver ssrc, lrr, dlrr)`` entries."""
    entries = entries[:MAX_DLRR_ENTRIES]
    block = b"".join(_DLRR_ENTRY.pack(*entry) for entry in entries)
    body = struct.pack("!I", ssrc) + _BLOCK_HEADER.pack(BT_DLRR, 0, 3 * len(entries)) + block
    return UnknownRtcp(RTCP_XR, 0, body)


def read_xr(packet: UnknownRtcp) -> ExtendedReport | None:
    """The RRTR and DLRR blocks of an XR packet; None for another packet type."""
    if packet.packet_type != RTCP_XR:
        return None
    body = packet.body
    if len(body) < 4:
        raise ProtocolError(f"RTCP XR needs 8 bytes, has {len(body) + 4}")
    report = ExtendedReport(int.from_bytes(body[:4], "big"))
    offset = 4
    while offset + 4 <= len(body):
        block_type, _, words = _BLOCK_HEADER.unpack_from(body, offset)
        end = offset + 4 + 4 * words
        if end > len(body):
            raise ProtocolError(f"RTCP XR block of type {block_type} runs past the end of the packet")
        if block_type == BT_RRTR and words == 2:
            report.rrtr = int.from_bytes(body[offset + 4 : end], "big")
        elif block_type == BT_DLRR:
            for start in range(offset + 4, end - 11, 12):
                report.dlrr.append(_DLRR_ENTRY.unpack_from(body, start))
        offset = end
    return report
