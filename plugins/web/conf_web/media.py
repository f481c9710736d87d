"""Forwarding RTP between a browser's peer connection and a meeting, without decoding. Sans-I/O.

Browser → meeting (:class:`Inbound`): the browser's packets keep their payload, sequence numbers and
timestamps; they take the track's conf SSRC and payload type (96 H.264, 111 Opus) and lose their header
extensions, but for the audio level (RFC 6464), which audio packets carry on in conf's own extension.
Packets without payload (the browser's bandwidth probes) are not forwarded; the sequence numbers after
them are shifted down so that receivers see no loss, and NACKs are shifted back.

Meeting → browser (:class:`Outbound`): one negotiated send slot carries one meeting track at a time,
under the slot's own SSRC and payload type, without header extensions; a RED packet (RFC 2198) goes as its
primary Opus block, which every browser plays. When the slot passes to another track, sequence numbers
and timestamps continue from where the last track left them, so the browser's receiver sees one stream.

In an end-to-end encrypted meeting a payload is an SFrame bound to 11 bytes of its RTP header (the SFrame
*metadata*, docs/protocol.md). The page encrypts and decrypts whole frames and never sees the RTP headers
the meeting uses, so between the page and this service each SFrame travels behind its metadata: towards
the page the service puts the meeting packet's metadata in front of the payload (:meth:`Outbound.rewrite`
with ``sealed``); from the page it takes the metadata the page bound its SFrame to and makes the meeting
packet's header of it (:meth:`Inbound.rewrite_sealed`). Video needs framing besides, since conf seals
each H.264 RTP payload while Chromium packetises and depacketises H.264 itself: :class:`SealedVideo`
takes the page's sealed payloads out of the NAL units it wrapped them in, and towards the page each
sealed payload goes in an IDR slice NAL unit of its own (docs/web.md says why). The service reads no
payload: a page or a sender that lies about the header only makes its own frames fail authentication at
the receivers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from conf_cli import ProtocolError
from conf_cli.media.audio_level import audio_level_extension
from conf_cli.media.red import primary_only
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.protocol.sframe import RTP_METADATA, rtp_metadata

PAYLOAD_TYPES = {"audio": 111, "video": 96, "screen": 96}
CODECS = {"audio": "opus", "video": "H264", "screen": "H264"}
TIMESTAMP_GAP = {"audio": 960, "video": 3000, "screen": 3000}  # one frame's worth between two tracks
WRAP_HEADER = 0x61  # the NAL header (type 1) of a sealed payload wrapped by the page (static/h264.js)
MAX_WRAPPED = 4096  # bytes of one wrapped payload: the page's are under 1,000
_EMULATION = re.compile(b"\x00\x00\x03")
# Towards the page, each sealed payload of a meeting's video goes in an IDR slice NAL unit (first_mb 0,
# slice_type 7, pps_id 0, then the payload escaped, then 0x80), and each frame's first packet is a STAP-A
# that also carries this parameter set pair (H.264 baseline): Chromium then takes every frame for a
# keyframe and hands it to the page's receive transform, which opens the payloads and puts the frame
# together itself. The service cannot tell a real keyframe in sealed payloads.
SEALED_IDR = bytes([0x65, 0x88, 0x80])
FRAME_SPS = bytes.fromhex("6742c03eda0507e840000003004007a12023c2010a80")
FRAME_PPS = bytes.fromhex("68ce0fc8")


def escape(data: bytes) -> bytes:
    """``data`` with H.264 emulation prevention: ``03`` before any byte up to 3 that follows two zeros."""
    if b"\x00\x00" not in data:
        return data
    out = bytearray()
    zeros = 0
    for byte in data:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _stap_a(*nals: bytes) -> bytes:
    return b"\x78" + b"".join(len(nal).to_bytes(2, "big") + nal for nal in nals)


class SealedVideo:
    """In an E2EE meeting, the sealed H.264 payloads in the RTP packets of the page's camera or screen.

    conf seals each H.264 RTP payload, so the page packetises its frames itself and gives Chromium's
    H.264 packetiser one NAL unit per sealed payload: ``0x61``, the payload (SFrame metadata and SFrame)
    with emulation prevention, ``0x80``. Chromium sends such units whole, several in a STAP-A, or in
    FU-A fragments; this takes them out again. A fragmented unit with a packet missing is dropped.
    """

    def __init__(self) -> None:
        self._fragments = bytearray()
        self._next: int | None = None  # the sequence number the next FU-A fragment must have

    def payloads(self, sequence: int, payload: bytes) -> list[bytes]:
        """The sealed payloads completed by one of the browser's RTP packets."""
        if not payload:
            return []
        kind = payload[0] & 0x1F
        if kind == 28 and len(payload) > 2:  # FU-A
            start, end = payload[1] & 0x80, payload[1] & 0x40
            if start:
                self._fragments = bytearray([(payload[0] & 0xE0) | (payload[1] & 0x1F)])
            elif self._next != sequence or len(self._fragments) + len(payload) > MAX_WRAPPED:
                self._next = None  # a fragment is missing: the unit is lost
                return []
            self._fragments += payload[2:]
            self._next = (sequence + 1) & 0xFFFF
            if not end:
                return []
            self._next = None
            return self._unwrap(bytes(self._fragments))
        if kind == 24:  # STAP-A
            out: list[bytes] = []
            at = 1
            while at + 2 <= len(payload):
                size = int.from_bytes(payload[at : at + 2], "big")
                out += self._unwrap(payload[at + 2 : at + 2 + size])
                at += 2 + size
            return out
        return self._unwrap(payload)

    @staticmethod
    def _unwrap(nal: bytes) -> list[bytes]:
        if len(nal) < 3 or nal[0] != WRAP_HEADER or nal[-1] != 0x80 or len(nal) > MAX_WRAPPED:
            return []  # not a sealed payload (nothing else may leave the page in such a meeting)
        return [_EMULATION.sub(b"\x00\x00", nal[1:-1])]


@dataclass
class Inbound:
    """One of the browser's tracks (microphone, camera or screen) entering the meeting as ``ssrc``."""

    kind: str
    ssrc: int
    published: bool = False
    browser_ssrc: int | None = None
    skipped: int = 0
    packets: int = 0
    sealed_video: SealedVideo = field(default_factory=SealedVideo)

    def rewrite(
        self, ssrc: int, sequence: int, timestamp: int, marker: bool, payload: bytes, level: int | None = None
    ) -> bytes | None:
        """The conf packet for one of the browser's RTP packets, or None if it carries no media. An audio
        packet gets conf's audio level extension with the browser's ``level`` (RFC 6464), when it sent one:
        the server's active speaker counts browsers too."""
        if self.browser_ssrc != ssrc:
            self.browser_ssrc = ssrc
            self.skipped = 0
        if not payload:
            self.skipped += 1
            return None
        self.packets += 1
        packet = RtpPacket(
            PAYLOAD_TYPES[self.kind],
            (sequence - self.skipped) & 0xFFFF,
            timestamp,
            self.ssrc,
            payload,
            marker,
            extension=audio_level_extension(level) if level is not None and self.kind == "audio" else None,
        )
        return bytes(packet)

    def rewrite_sealed_packet(self, ssrc: int, sequence: int, payload: bytes) -> list[bytes]:
        """In an E2EE meeting: the conf packets for one of the browser's RTP packets (Opus: one; H.264:
        one per sealed payload it completes, see :class:`SealedVideo`)."""
        self.browser_ssrc = ssrc
        sealed = [payload] if self.kind == "audio" else self.sealed_video.payloads(sequence, payload)
        return [p for p in map(self.rewrite_sealed, sealed) if p is not None]

    def rewrite_sealed(self, payload: bytes) -> bytes | None:
        """In an E2EE meeting: the conf packet for one of the browser's payloads, which is the SFrame
        metadata the page chose (its marker, payload type, sequence number, timestamp and our SSRC) and
        the SFrame. None if it names another SSRC or payload type, or carries no SFrame."""
        if len(payload) <= RTP_METADATA.size:
            self.skipped += 1
            return None
        first, sequence, timestamp, ssrc = RTP_METADATA.unpack_from(payload)
        if ssrc != self.ssrc or first & 0x7F != PAYLOAD_TYPES[self.kind]:
            return None
        self.packets += 1
        packet = RtpPacket(
            first & 0x7F, sequence, timestamp, ssrc, payload[RTP_METADATA.size :], bool(first & 0x80)
        )
        return bytes(packet)

    def browser_sequence(self, sequence: int) -> int:
        """The browser's sequence number for one the meeting asks for again (a NACK)."""
        return (sequence + self.skipped) & 0xFFFF


@dataclass
class Outbound:
    """A send slot of the browser's peer connection (``mid``) and the meeting track it carries now."""

    mid: str
    kind: str  # "audio" or "video" (camera and screen tracks both go in video slots)
    ssrc: int = 0  # the slot's SSRC and payload type, known once negotiated
    payload_type: int = 0
    source: int | None = None  # the meeting track's SSRC
    owner: str = ""
    source_kind: str = ""
    _seq_offset: int | None = None
    _ts_offset: int = 0
    _last_seq: int = field(default=0)
    _last_ts: int = field(default=0)
    _frame_ts: int | None = None  # the RTP timestamp of the last sealed video packet
    packets: int = 0

    def assign(self, source: int | None, owner: str = "", source_kind: str = "") -> None:
        """Carry the meeting track ``source`` from now on (None: nothing)."""
        self.source, self.owner, self.source_kind = source, owner, source_kind
        self._seq_offset = None

    def rewrite(self, data: bytes, sealed: bool = False) -> bytes | None:
        """The packet to send to the browser for one of the track's RTP packets (None if malformed);
        ``sealed`` (an E2EE meeting): its payload goes behind the packet's own SFrame metadata."""
        try:
            packet = primary_only(RtpPacket.parse(data))  # browsers get plain Opus, not RED
        except ProtocolError:
            return None
        if self._seq_offset is None:
            first = self.packets == 0
            self._seq_offset = 0 if first else (self._last_seq + 1 - packet.sequence_number) & 0xFFFF
            gap = TIMESTAMP_GAP.get(self.source_kind, 3000)
            self._ts_offset = 0 if first else (self._last_ts + gap - packet.timestamp) & 0xFFFFFFFF
        sequence = (packet.sequence_number + self._seq_offset) & 0xFFFF
        timestamp = (packet.timestamp + self._ts_offset) & 0xFFFFFFFF
        if ((sequence - self._last_seq) & 0xFFFF) < 0x8000 or self.packets == 0:
            self._last_seq, self._last_ts = sequence, timestamp
        self.packets += 1
        payload = packet.payload
        if sealed:
            payload = rtp_metadata(packet) + payload
            if self.kind == "video":
                unit = SEALED_IDR + escape(payload) + b"\x80"
                first = packet.timestamp != self._frame_ts
                self._frame_ts = packet.timestamp
                payload = _stap_a(FRAME_SPS, FRAME_PPS, unit) if first else unit
        out = RtpPacket(self.payload_type, sequence, timestamp, self.ssrc, payload, packet.marker)
        return bytes(out)

    def source_sequence(self, sequence: int) -> int:
        """The meeting track's sequence number for one the browser asks for again (a NACK)."""
        return (sequence - (self._seq_offset or 0)) & 0xFFFF

    def describe(self) -> dict[str, object]:
        return {"name": self.owner, "kind": self.source_kind, "ssrc": self.source}
