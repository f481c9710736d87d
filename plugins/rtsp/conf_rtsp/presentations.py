"""What a session plays or records: a file, a meeting track, or a player's streams into a meeting.

Each holds where its packets go (the session's deliveries) and answers PLAY, PAUSE and the end of the
session (``close``).
"""

from __future__ import annotations

from .delivery import Delivery
from .files import FileStream, MediaFile
from .meeting import Announced, Publisher, Viewer
from .session import SessionTrack, StateError


class FilePresentation:
    """A file played to one session."""

    def __init__(self, media: MediaFile, base: str) -> None:
        self.media = media
        self.base = base
        self.deliveries: dict[int, Delivery] = {}
        self.stream: FileStream | None = None

    def _send(self, index: int, packet: bytes, rtcp: bool) -> None:
        delivery = self.deliveries.get(index)
        if delivery is not None:
            delivery.send(packet, rtcp)

    def prepare(self) -> FileStream:
        """The session's stream, made at its first PLAY (before it sends, so RTP-Info names its start)."""
        if self.stream is None:
            self.stream = FileStream(self.media, list(self.deliveries), self._send)
        return self.stream

    def play(self) -> None:
        self.prepare().play()

    def pause(self) -> None:
        if self.stream is not None:
            self.stream.pause()

    async def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


class ViewerPresentation:
    """A meeting track played to one session.

    Packets go on unchanged but for their sequence numbers, which skip what was sent in the meeting
    while the session was paused, so the player counts as lost only packets that were.
    """

    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer
        self.delivery: Delivery | None = None
        self.seq_offset = 0
        self._last_in: int | None = None
        self._resumed = False
        viewer.sink = self._send

    def _send(self, packet: bytes, rtcp: bool) -> None:
        if self.delivery is None:
            return
        if not rtcp and len(packet) >= 4:
            seq = int.from_bytes(packet[2:4], "big")
            if self._resumed and self._last_in is not None:
                self.seq_offset = (self.seq_offset + seq - self._last_in - 1) & 0xFFFF
            self._resumed = False
            if self._last_in is None or (seq - self._last_in) & 0xFFFF < 0x8000:
                self._last_in = seq
            if self.seq_offset:
                packet = packet[:2] + ((seq - self.seq_offset) & 0xFFFF).to_bytes(2, "big") + packet[4:]
        self.delivery.send(packet, rtcp)

    def play(self) -> None:
        self._resumed = True
        self.viewer.play()

    def pause(self) -> None:
        self.viewer.pause()

    async def close(self) -> None:
        await self.viewer.close()


class PublisherPresentation:
    """A player's streams going into a meeting."""

    def __init__(self, publisher: Publisher, base: str) -> None:
        self.publisher = publisher
        self.base = base

    def stream(self, control: str) -> Announced | None:
        for stream in self.publisher.streams:
            if stream.control == control:
                return stream
        return None

    def receive(self, track: SessionTrack, data: bytes) -> None:
        stream = self.stream(track.control)
        if stream is not None:
            self.publisher.receive(stream, data)

    def play(self) -> None:
        raise StateError("PLAY is not valid on a published stream; use RECORD")

    def pause(self) -> None:
        pass

    async def close(self) -> None:
        await self.publisher.close()
