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
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conf_cli import ProtocolError
from conf_cli.media.audio_level import audio_level_extension
from conf_cli.media.red import primary_only
from conf_cli.protocol.rtp import RtpPacket

PAYLOAD_TYPES = {"audio": 111, "video": 96, "screen": 96}
CODECS = {"audio": "opus", "video": "H264", "screen": "H264"}
TIMESTAMP_GAP = {"audio": 960, "video": 3000, "screen": 3000}  # one frame's worth between two tracks


@dataclass
class Inbound:
    """One of the browser's tracks (microphone, camera or screen) entering the meeting as ``ssrc``."""

    kind: str
    ssrc: int
    published: bool = False
    browser_ssrc: int | None = None
    skipped: int = 0
    packets: int = 0

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
    packets: int = 0

    def assign(self, source: int | None, owner: str = "", source_kind: str = "") -> None:
        """Carry the meeting track ``source`` from now on (None: nothing)."""
        self.source, self.owner, self.source_kind = source, owner, source_kind
        self._seq_offset = None

    def rewrite(self, data: bytes) -> bytes | None:
        """The packet to send to the browser for one of the track's RTP packets (None if malformed)."""
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
        out = RtpPacket(self.payload_type, sequence, timestamp, self.ssrc, packet.payload, packet.marker)
        return bytes(out)

    def source_sequence(self, sequence: int) -> int:
        """The meeting track's sequence number for one the browser asks for again (a NACK)."""
        return (sequence - (self._seq_offset or 0)) & 0xFFFF

    def describe(self) -> dict[str, object]:
        return {"name": self.owner, "kind": self.source_kind, "ssrc": self.source}
