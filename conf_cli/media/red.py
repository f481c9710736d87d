"""RTP payload for redundant audio data (RFC 2198), sans-I/O, as WebRTC carries Opus in it.

A RED payload is a list of blocks: one 4-byte header per redundant block (F bit set, the block's payload
type, its timestamp offset back from the packet's timestamp in 14 bits and its length in 10 bits), then
the 1-byte header of the primary block (F bit clear, its payload type), then the blocks' data in the same
order, the primary last (RFC 2198 section 3). conf sends one or two redundant blocks, older Opus packets
of the same stream (:class:`RedEncoder` says which), under the RED payload type :data:`PT_RED`
(``a=rtpmap:63 red/48000/2`` and ``a=fmtp:63 111/111`` in SDP terms): a receiver that misses a packet
rebuilds it from the redundant copy carried by a later one. Conf's sender only repeats the packets just
before, so a block's timestamp offset over the packet duration says how many packets back it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from conf_cli.errors import ProtocolError
from conf_cli.protocol.rtp import RtpPacket

__all__ = [
    "MAX_BLOCK",
    "MAX_OFFSET",
    "PT_RED",
    "RedBlock",
    "RedEncoder",
    "RedSwitch",
    "pack_red",
    "primary_only",
    "unpack_red",
]

PT_RED = 63
"""The RED payload type conf uses for Opus (what browsers offer; outside RTCP's 64..95)."""
MAX_OFFSET = (1 << 14) - 1
MAX_BLOCK = (1 << 10) - 1


@dataclass(frozen=True, slots=True)
class RedBlock:
    """One block: ``payload_type``, ``offset`` (RTP timestamp units before the packet's) and ``data``."""

    payload_type: int
    offset: int
    data: bytes


def pack_red(primary_type: int, primary: bytes, redundant: list[RedBlock]) -> bytes:
    """A RED payload: the ``redundant`` blocks (oldest first) then ``primary``. ValueError if a block's
    offset or length does not fit its field (14 and 10 bits)."""
    if not 0 <= primary_type <= 0x7F:
        raise ValueError(f"payload type {primary_type} is outside 0..127")
    headers = bytearray()
    for block in redundant:
        if not 0 <= block.offset <= MAX_OFFSET:
            raise ValueError(f"RED timestamp offset {block.offset} does not fit 14 bits")
        if len(block.data) > MAX_BLOCK:
            raise ValueError(f"RED block of {len(block.data)} bytes does not fit 10 bits")
        if not 0 <= block.payload_type <= 0x7F:
            raise ValueError(f"payload type {block.payload_type} is outside 0..127")
        word = (0x80 | block.payload_type) << 24 | block.offset << 10 | len(block.data)
        headers += word.to_bytes(4, "big")
    headers.append(primary_type)
    return bytes(headers) + b"".join(block.data for block in redundant) + primary


def unpack_red(payload: bytes) -> list[RedBlock]:
    """The blocks of a RED payload, oldest first, the primary last (offset 0). ProtocolError if the headers
    run past the payload or the lengths do not add up."""
    headers: list[tuple[int, int, int]] = []
    offset = 0
    size = len(payload)
    while True:
        if offset >= size:
            raise ProtocolError(f"RED header runs past the end of the {size}-byte payload")
        first = payload[offset]
        if not first & 0x80:
            headers.append((first & 0x7F, 0, -1))
            offset += 1
            break
        if offset + 4 > size:
            raise ProtocolError(f"RED header runs past the end of the {size}-byte payload")
        word = int.from_bytes(payload[offset : offset + 4], "big")
        headers.append(((word >> 24) & 0x7F, (word >> 10) & MAX_OFFSET, word & MAX_BLOCK))
        offset += 4
    blocks = []
    for payload_type, back, length in headers:
        if length < 0:
            length = size - offset
        if offset + length > size:
            raise ProtocolError(f"RED block of {length} bytes runs past the end of the {size}-byte payload")
        blocks.append(RedBlock(payload_type, back, payload[offset : offset + length]))
        offset += length
    return blocks


RED_HOLD = 10.0
"""Seconds RED stays on after the last receiver report that showed loss."""
RED_LOSS_THRESHOLD = 1
"""A report's fraction lost (in 256ths) from which RED turns on: any loss at all."""


class RedSwitch:
    """Whether to send RED: on while receivers report loss, off :data:`RED_HOLD` seconds after the last
    report that showed some (sans-I/O: ``now`` is passed in)."""

    def __init__(self, hold: float = RED_HOLD, threshold: int = RED_LOSS_THRESHOLD) -> None:
        self.hold = hold
        self.threshold = threshold
        self._lossy_until = float("-inf")

    def report(self, fraction_lost: int, now: float) -> None:
        """A receiver report block about the stream: ``fraction_lost`` out of 256 since its last one."""
        if fraction_lost >= self.threshold:
            self._lossy_until = now + self.hold

    def active(self, now: float) -> bool:
        return now < self._lossy_until


class RedEncoder:
    """Builds the RED payloads of one Opus stream: each packet's Opus data as the primary block, and as
    redundant blocks the two packets before it, but for the one just before when the new packet carries
    in-band FEC for it (Opus LBRR): then that one block, as in WebRTC, is all it takes.

    So FEC and RED together rebuild any loss of up to two packets in a row, at the cost of one copy
    where the encoder coded FEC and two where it did not (silence-like frames its voice activity detector
    passes over, usually small). ``distances`` of the last payload says which packets back it repeated.
    Only packets that follow each other without a gap in time (DTX leaves gaps) are repeated, so a
    receiver finds a redundant block's sequence number from its timestamp offset: ``offset / duration``
    packets back.
    """

    def __init__(self, payload_type: int) -> None:
        self.payload_type = payload_type
        self.distances: tuple[int, ...] = ()
        self._history: list[tuple[int, bytes]] = []  # (timestamp, Opus data) of the last two packets

    def wrap(self, data: bytes, timestamp: int, duration: int, fec: bool) -> bytes:
        """The RED payload for the Opus packet ``data`` with RTP timestamp ``timestamp``, lasting
        ``duration`` ticks; ``fec``: it carries in-band FEC for the packet before it."""
        history = self._history
        if history and (timestamp - history[-1][0]) & 0xFFFFFFFF != duration:
            history.clear()  # a gap in time (DTX) or a restart: what came before is not adjacent
        redundant: list[RedBlock] = []
        used = []
        for distance in (2,) if fec else (2, 1):  # oldest first, as RFC 2198 orders blocks
            if len(history) >= distance:
                old_ts, old = history[-distance]
                offset = (timestamp - old_ts) & 0xFFFFFFFF
                if 0 < offset <= MAX_OFFSET and len(old) <= MAX_BLOCK:
                    redundant.append(RedBlock(self.payload_type, offset, old))
                    used.append(distance)
        self.distances = tuple(used)
        history.append((timestamp, data))
        del history[:-2]
        return pack_red(self.payload_type, data, redundant)

    def reset(self) -> None:
        """Forget the history (RED was off for a while: old packets are no use)."""
        self._history.clear()


def primary_only(packet: RtpPacket) -> RtpPacket:
    """``packet`` as a player that knows no RED wants it: a RED packet becomes its primary block under the
    block's payload type (browsers and RTSP players behind conf's gateways get plain Opus). Any other
    packet is returned as is; ProtocolError for a malformed RED payload."""
    if packet.payload_type != PT_RED:
        return packet
    primary = unpack_red(packet.payload)[-1]
    packet.payload_type = primary.payload_type
    packet.payload = primary.data
    return packet
