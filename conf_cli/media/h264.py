"""H.264 over RTP in packetization mode 1 (RFC 6184), sans-I/O.

:func:`split_annexb` cuts an encoder's Annex-B byte stream (ITU-T H.264 Annex B) into NAL units.
:class:`H264Packetizer` turns the NAL units of one access unit into RTP payloads: single NAL unit packets
(RFC 6184 section 5.6), STAP-A aggregates for runs of small NAL units such as SPS+PPS (5.7.1) and FU-A
fragments for NAL units larger than the MTU (5.8). :class:`H264Depacketizer` does the reverse on the
receiving side: it rebuilds access units from in-order RTP packets (a jitter buffer restores the order) and
hands them out as Annex-B bytes.

A receiver must never decode a damaged picture, nor a picture that refers to one. Any sequence gap inside
an access unit, a missing FU-A fragment or a malformed payload drops the whole access unit, counts it in
``frames_lost`` and sets ``needs_keyframe`` (the receiver answers with a PLI); until the next IDR picture
arrives with its parameter sets, intact pictures are dropped too and counted in ``frames_skipped``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from conf_cli.errors import ProtocolError
from conf_cli.media.jitter import Gap
from conf_cli.protocol.rtp import Buffer, RtpPacket

__all__ = [
    "MAX_ACCESS_UNIT",
    "NAL_IDR",
    "NAL_PPS",
    "NAL_SPS",
    "AccessUnit",
    "H264Depacketizer",
    "H264Packetizer",
    "join_annexb",
    "opens_keyframe",
    "parse_stap_a",
    "split_annexb",
]

NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
STAP_A = 24
FU_A = 28

START_CODE = b"\x00\x00\x00\x01"
MAX_ACCESS_UNIT = 4 * 1024 * 1024
"""The largest access unit a depacketizer reassembles; a bigger one is dropped as damaged."""

_MAX_MISORDER = 100


def split_annexb(data: Buffer) -> list[bytes]:
    """The NAL units of an Annex-B stream, without start codes (3- or 4-byte) or trailing zero bytes."""
    data = bytes(data)
    nals: list[bytes] = []
    start = data.find(b"\x00\x00\x01")
    while start != -1:
        following = data.find(b"\x00\x00\x01", start + 3)
        nal = data[start + 3 : len(data) if following == -1 else following].rstrip(b"\x00")
        if nal:
            nals.append(nal)
        start = following
    return nals


def join_annexb(nal_units: Iterable[bytes]) -> bytes:
    """An Annex-B stream of NAL units, each behind a 4-byte start code."""
    return b"".join(START_CODE + nal for nal in nal_units)


def parse_stap_a(payload: Buffer) -> list[bytes]:
    """The NAL units aggregated in a STAP-A payload (RFC 6184 section 5.7.1)."""
    size = len(payload)
    nals: list[bytes] = []
    pos = 1
    while pos < size:
        if pos + 2 > size:
            raise ProtocolError(f"H.264 STAP-A size field runs past the end of the {size}-byte payload")
        length = payload[pos] << 8 | payload[pos + 1]
        if length == 0:
            raise ProtocolError("H.264 STAP-A holds a NAL unit of size 0")
        end = pos + 2 + length
        if end > size:
            raise ProtocolError(
                f"H.264 STAP-A NAL unit of {length} bytes runs past the end of the {size}-byte payload"
            )
        nals.append(bytes(payload[pos + 2 : end]))
        pos = end
    if not nals:
        raise ProtocolError("H.264 STAP-A carries no NAL units")
    return nals


class H264Packetizer:
    """RTP payloads for H.264 access units; ``mtu`` is the largest payload, RTP header not included."""

    def __init__(self, mtu: int = 1200) -> None:
        if mtu < 3:
            raise ValueError(f"H.264 payload size {mtu} is too small, it must be at least 3")
        self.mtu = mtu

    def packetize(self, nal_units: Iterable[bytes]) -> list[bytes]:
        """The payloads for the NAL units of ONE access unit, in order; the last one gets the marker bit."""
        payloads: list[bytes] = []
        group: list[bytes] = []
        group_size = 1
        for nal in nal_units:
            if not nal:
                continue
            if len(nal) > self.mtu:
                self._flush(group, payloads)
                group, group_size = [], 1
                payloads.extend(self._fragment(nal))
            elif group and group_size + 2 + len(nal) <= self.mtu:
                group.append(nal)
                group_size += 2 + len(nal)
            else:
                self._flush(group, payloads)
                group, group_size = [nal], 3 + len(nal)
        self._flush(group, payloads)
        return payloads

    @staticmethod
    def _flush(group: list[bytes], payloads: list[bytes]) -> None:
        if len(group) == 1:
            payloads.append(group[0])
        elif group:
            forbidden = 0
            nri = 0
            parts = []
            for nal in group:
                forbidden |= nal[0] & 0x80
                nri = max(nri, nal[0] & 0x60)
                parts.append(len(nal).to_bytes(2, "big") + nal)
            payloads.append(bytes((forbidden | nri | STAP_A,)) + b"".join(parts))

    def _fragment(self, nal: bytes) -> list[bytes]:
        indicator = (nal[0] & 0xE0) | FU_A
        kind = nal[0] & 0x1F
        body = memoryview(nal)[1:]
        count = -(-len(body) // (self.mtu - 2))
        share, extra = divmod(len(body), count)
        fragments = []
        pos = 0
        for index in range(count):
            size = share + (1 if index < extra else 0)
            header = kind | (0x80 if index == 0 else 0) | (0x40 if index == count - 1 else 0)
            fragments.append(bytes((indicator, header)) + body[pos : pos + size])
            pos += size
        return fragments


@dataclass(slots=True)
class AccessUnit:
    """One complete picture as Annex-B bytes, with its RTP timestamp; ``keyframe`` if it has an IDR slice."""

    data: bytes
    timestamp: int
    keyframe: bool


class H264Depacketizer:
    """Rebuilds access units from in-order RTP packets, dropping damaged ones and what depends on them.

    ``push`` each packet (or a :class:`~conf_cli.media.jitter.Gap` from the jitter buffer) and collect the
    access units it completes. An access unit ends at the marker bit or when the RTP timestamp changes.
    ``needs_keyframe`` starts true: decoding can only begin at an IDR picture. Parameter sets known out of
    band (SDP ``sprop-parameter-sets``) can be given as ``parameter_sets``.
    """

    def __init__(self, max_access_unit: int = MAX_ACCESS_UNIT, parameter_sets: Iterable[bytes] = ()) -> None:
        self.max_access_unit = max_access_unit
        self.needs_keyframe = True
        self.frames = 0
        self.frames_lost = 0
        self.frames_skipped = 0
        self._sps: bytes | None = None
        self._pps: bytes | None = None
        for nal in parameter_sets:
            self._remember(nal)
        self._last_seq: int | None = None
        self._gap = False
        self._timestamp: int | None = None
        self._nals: list[bytes] = []
        self._size = 0
        self._fu: bytearray | None = None
        self._damaged = False

    def push(self, item: RtpPacket | Gap) -> list[AccessUnit]:
        """Take the next packet in sequence order; return the access units it completes (zero, one or two)."""
        if isinstance(item, Gap):
            self._lose()
            self._last_seq = (item.seq + item.count - 1) & 0xFFFF
            return []
        seq = item.sequence_number
        if self._last_seq is not None:
            if (self._last_seq - seq) & 0xFFFF <= _MAX_MISORDER:
                return []  # a duplicate, or older than what was already taken
            if (seq - self._last_seq) & 0xFFFF != 1:
                self._lose()
        self._last_seq = seq
        after_gap, self._gap = self._gap, False
        out: list[AccessUnit] = []
        if self._timestamp is not None and item.timestamp != self._timestamp:
            out.extend(self._finish())
        if self._timestamp is None:
            self._timestamp = item.timestamp
            # Lost packets just before may have been this access unit's start, unless it visibly starts
            # here: an access unit opening with its SPS (a keyframe with in-band parameter sets) is whole.
            self._damaged = after_gap and not _opens_with_sps(item.payload)
        if not self._damaged:
            self._add(item.payload)
        if item.marker:
            out.extend(self._finish())
        return out

    def _lose(self) -> None:
        """Packets are missing here: the open access unit and the one the next packet opens may both have
        lost some, so both are dropped (the next one is kept if it visibly starts with its SPS)."""
        self.needs_keyframe = True
        self._gap = True
        if self._timestamp is not None:
            self._damage()

    def _damage(self) -> None:
        self._damaged = True
        self._nals = []
        self._fu = None

    def _add(self, payload: bytes) -> None:
        if not payload:
            self._damage()
            return
        kind = payload[0] & 0x1F
        if self._fu is not None and kind != FU_A:
            self._damage()  # the FU-A in progress never ended
        elif 1 <= kind <= 23:
            self._append(payload)
        elif kind == STAP_A:
            try:
                nals = parse_stap_a(payload)
            except ProtocolError:
                self._damage()
                return
            for nal in nals:
                self._append(nal)
        elif kind == FU_A:
            self._add_fragment(payload)
        elif kind not in (0, 30, 31):
            self._damage()  # STAP-B, MTAP and FU-B belong to the interleaved mode

    def _add_fragment(self, payload: bytes) -> None:
        if len(payload) < 2:
            self._damage()
            return
        header = payload[1]
        if header & 0x80:
            if self._fu is not None:
                self._damage()
                return
            self._fu = bytearray(((payload[0] & 0xE0) | (header & 0x1F),))
        elif self._fu is None or (self._fu[0] & 0x1F) != (header & 0x1F):
            self._damage()
            return
        self._fu += payload[2:]
        self._size += len(payload) - 2
        if self._size > self.max_access_unit:
            self._damage()
        elif header & 0x40:
            nal = bytes(self._fu)
            self._fu = None
            self._size -= len(nal) - 1
            self._append(nal)

    def _append(self, nal: bytes) -> None:
        self._size += len(nal)
        if self._size > self.max_access_unit:
            self._damage()
            return
        self._nals.append(nal)
        self._remember(nal)

    def _remember(self, nal: bytes) -> None:
        kind = nal[0] & 0x1F
        if kind == NAL_SPS:
            self._sps = nal
        elif kind == NAL_PPS:
            self._pps = nal

    def _finish(self) -> list[AccessUnit]:
        nals, timestamp = self._nals, self._timestamp
        damaged = self._damaged or self._fu is not None
        self._timestamp = None
        self._nals = []
        self._size = 0
        self._fu = None
        self._damaged = False
        if damaged:
            self.frames_lost += 1
            self.needs_keyframe = True
            return []
        if not nals or timestamp is None:
            return []
        kinds = {nal[0] & 0x1F for nal in nals}
        keyframe = NAL_IDR in kinds
        if self.needs_keyframe:
            if not keyframe or self._sps is None or self._pps is None:
                self.frames_skipped += 1
                return []
            missing = [nal for kind, nal in ((NAL_SPS, self._sps), (NAL_PPS, self._pps)) if kind not in kinds]
            nals = missing + nals
            self.needs_keyframe = False
        self.frames += 1
        return [AccessUnit(join_annexb(nals), timestamp, keyframe)]


def opens_keyframe(payload: Buffer) -> bool:
    """Whether an RTP payload is the first packet of a keyframe: an SPS (conf's encoder repeats its
    parameter sets before every IDR picture), alone or first in a STAP-A, or an IDR slice, whole or the
    start of its fragments (FU-A). The server switches a subscriber between simulcast layers here."""
    if not payload:
        return False
    kind = payload[0] & 0x1F
    if kind in (NAL_SPS, NAL_IDR):
        return True
    if kind == STAP_A:
        return len(payload) > 3 and payload[3] & 0x1F in (NAL_SPS, NAL_IDR)
    return kind == FU_A and len(payload) > 1 and payload[1] & 0x80 != 0 and payload[1] & 0x1F == NAL_IDR


def _opens_with_sps(payload: bytes) -> bool:
    """Whether an RTP payload starts with an SPS, alone or first in a STAP-A."""
    if not payload:
        return False
    kind = payload[0] & 0x1F
    if kind == NAL_SPS:
        return True
    return kind == STAP_A and len(payload) > 3 and payload[3] & 0x1F == NAL_SPS


_HIGH_PROFILES = frozenset((100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135))


class _Bits:
    """Reads an RBSP (emulation prevention removed) bit by bit; IndexError past its end."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def bit(self) -> int:
        byte = self.data[self.at >> 3]
        self.at += 1
        return (byte >> (7 - ((self.at - 1) & 7))) & 1

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = value << 1 | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while not self.bit():
            zeros += 1
            if zeros > 31:
                raise IndexError("exp-Golomb code too long")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        value = self.ue()
        return (value + 1) // 2 if value & 1 else -(value // 2)


def sps_picture_size(nal: bytes) -> tuple[int, int] | None:
    """The picture size (width, height, after cropping) a sequence parameter set NAL unit gives; None if
    ``nal`` is not one or is malformed (ITU-T H.264 section 7.3.2.1.1)."""
    if len(nal) < 5 or nal[0] & 0x1F != NAL_SPS:
        return None
    bits = _Bits(nal[1:].replace(b"\x00\x00\x03", b"\x00\x00"))
    try:
        profile = bits.bits(8)
        bits.bits(16)  # constraint flags, level
        bits.ue()  # seq_parameter_set_id
        chroma = 1
        if profile in _HIGH_PROFILES:
            chroma = bits.ue()
            separate = bits.bit() if chroma == 3 else 0
            if separate:
                chroma = 0
            bits.ue(), bits.ue(), bits.bit()  # bit depths, transform bypass
            if bits.bit():  # seq_scaling_matrix_present_flag
                for index in range(12 if chroma == 3 else 8):
                    if bits.bit():
                        last = following = 8
                        for _ in range(16 if index < 6 else 64):
                            if following:
                                following = (last + bits.se() + 256) % 256
                            last = following or last
        bits.ue()  # log2_max_frame_num_minus4
        order = bits.ue()
        if order == 0:
            bits.ue()
        elif order == 1:
            bits.bit(), bits.se(), bits.se()
            for _ in range(min(bits.ue(), 255)):
                bits.se()
        bits.ue(), bits.bit()  # max_num_ref_frames, gaps_in_frame_num_value_allowed_flag
        width_mbs, height_units = bits.ue() + 1, bits.ue() + 1
        frames_only = bits.bit()
        if not frames_only:
            bits.bit()
        bits.bit()  # direct_8x8_inference_flag
        crop = (bits.ue(), bits.ue(), bits.ue(), bits.ue()) if bits.bit() else (0, 0, 0, 0)
    except IndexError:
        return None
    unit_x = 2 if chroma in (1, 2) else 1
    unit_y = (2 if chroma == 1 else 1) * (2 - frames_only)
    width = width_mbs * 16 - unit_x * (crop[0] + crop[1])
    height = (2 - frames_only) * height_units * 16 - unit_y * (crop[2] + crop[3])
    return (width, height) if width > 0 and height > 0 else None


def payload_picture_size(payload: bytes) -> tuple[int, int] | None:
    """The picture size of the SPS an RTP payload carries (alone or in a STAP-A), if it carries one."""
    if not payload:
        return None
    kind = payload[0] & 0x1F
    if kind == NAL_SPS:
        return sps_picture_size(payload)
    if kind == STAP_A:
        at = 1
        while at + 2 <= len(payload):
            size = int.from_bytes(payload[at : at + 2], "big")
            nal = payload[at + 2 : at + 2 + size]
            if nal and nal[0] & 0x1F == NAL_SPS:
                return sps_picture_size(nal)
            at += 2 + size
    return None
