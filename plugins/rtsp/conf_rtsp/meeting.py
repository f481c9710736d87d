"""The gateway's participants: an RTSP viewer of one meeting track, and an RTSP publisher into a meeting.

Each is an ordinary conf client on the server's in-process link, so the hub checks the passcode in a
normal ``join`` and forwards media by its usual rules. A viewer passes its track's RTP (and the
publisher's sender reports) on to the player unchanged, and asks the publisher for a keyframe (RTCP
PLI) when the player starts. A publisher re-stamps the RTP it is sent with the SSRC it announced in the
meeting, and puts the stream's H.264 parameter sets in band before each keyframe that lacks them, as
conf receivers expect.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from conf_cli import ConfError, ProtocolError, RequestRefused
from conf_cli.media.red import PT_RED, primary_only
from conf_cli.protocol.control import Message
from conf_cli.protocol.rtcp import Pli
from conf_cli.protocol.rtp import RtpPacket, is_rtcp, peek_ssrc
from conf_cli.protocol.sdp import MediaDescription, SessionDescription

if TYPE_CHECKING:
    from conf_cli import Participant, ServiceContext

log = logging.getLogger("conf.rtsp")

PT_H264, PT_OPUS = 96, 111
STAP_A, FU_A = 24, 28
NAL_IDR, NAL_SPS, NAL_PPS = 5, 7, 8

_STATUS = {
    "wrong_passcode": 401,
    "unknown_meeting": 404,
    "meeting_locked": 403,
    "meeting_full": 453,
    "forbidden": 403,
    "not_allowed": 403,
    "bad_request": 400,
    "e2ee_required": 403,  # an end-to-end encrypted meeting: a gateway never holds its media keys
    "rate_limited": 503,  # too many failed attempts from this address: try again later
}
ADMIT_TIMEOUT = 30.0  # seconds a player's request waits in a meeting's waiting room for the host


class Refused(Exception):
    """A request the gateway answers with ``status`` and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _admitted(client: Participant, meeting: str) -> Message:
    """Wait in the meeting's waiting room until the host admits us (``joined``); Refused otherwise."""
    try:
        async with asyncio.timeout(ADMIT_TIMEOUT):
            while True:
                event = await client.events.get()
                if event["type"] == "joined":
                    return event
                if event["type"] in ("denied", "meeting_closed", "disconnected"):
                    raise Refused(403, f"not admitted to meeting {meeting}")
    except TimeoutError:
        raise Refused(403, f"not admitted to meeting {meeting} within {ADMIT_TIMEOUT:g} s") from None


async def join_meeting(
    context: ServiceContext, meeting: str, names: list[str], passcode: str | None, origin: str
) -> tuple[Participant, Message]:
    """Join ``meeting`` as the first of ``names`` not taken; raise Refused with the hub's reason."""
    # the hub refuses us an end-to-end encrypted meeting: we cannot read its media
    client = context.participant(origin, e2ee_capable=False)
    try:
        await client.connect()
        for attempt, name in enumerate(names, 1):
            try:
                joined = await client.join(meeting, name[:64], passcode or None)
            except RequestRefused as exc:
                if exc.code == "name_taken" and attempt < len(names):
                    continue
                raise Refused(_STATUS.get(exc.code, 403), str(exc)) from None
            if joined["type"] == "waiting":
                joined = await _admitted(client, meeting)
            return client, joined
    except ConfError as exc:
        await client.close()
        raise Refused(503, str(exc)) from None
    except BaseException:
        await client.close()
        raise
    raise AssertionError("unreachable")


def track_media(kind: str, codec: str, control: str) -> MediaDescription:
    """The SDP media section of a meeting track."""
    if codec.lower() == "opus":
        return MediaDescription(
            "audio",
            0,
            "RTP/AVP",
            [str(PT_OPUS)],
            [
                ("rtpmap", f"{PT_OPUS} opus/48000/2"),
                ("fmtp", f"{PT_OPUS} useinbandfec=1"),
                ("control", control),
            ],
        )
    return MediaDescription(
        "video",
        0,
        "RTP/AVP",
        [str(PT_H264)],
        [
            ("rtpmap", f"{PT_H264} H264/90000"),
            ("fmtp", f"{PT_H264} packetization-mode=1;profile-level-id=42C01F"),
            ("control", control),
        ],
    )


class Viewer:
    """A player watching one participant's track through a meeting link of its own."""

    def __init__(
        self, client: Participant, joined: Message, participant: str, kind: str, on_end: Callable[[str], None]
    ) -> None:
        self.client = client
        self.participant = participant
        self.kind = kind
        self.on_end = on_end
        self.sink: Callable[[bytes, bool], None] | None = None
        self.playing = False
        self.ended = False
        self.local_ssrc = secrets.randbelow((1 << 32) - 1) + 1
        self.ssrc: int | None = None
        self.codec = "opus" if kind == "audio" else "H264"
        for track in joined.get("tracks", []):
            if self._matches(track):
                self.ssrc, self.codec = int(track["ssrc"]), str(track["codec"])
        if self.ssrc is None:
            raise Refused(404, f"{participant!r} shares no {kind} in meeting {client.meeting} now")
        client.media_handler = self._media
        self._events = asyncio.create_task(self._watch())

    def _matches(self, event: Message) -> bool:
        return (
            str(event.get("name", "")).casefold() == self.participant.casefold()
            and event.get("kind") == self.kind
        )

    def describe(self, base: str, host: str) -> SessionDescription:
        family = "IP6" if ":" in host else "IP4"
        return SessionDescription(
            origin=f"- {self.local_ssrc} 1 IN {family} {host}",
            name=f"{self.participant} {self.kind} in {self.client.meeting}",
            connection=f"IN {family} {'::' if family == 'IP6' else '0.0.0.0'}",
            attributes=[("control", "*")],
            media=[track_media(self.kind, self.codec, "trackID=0")],
        )

    def play(self) -> None:
        self.playing = True
        self.request_keyframe()

    def pause(self) -> None:
        self.playing = False

    def request_keyframe(self) -> None:
        link = self.client.link
        if self.kind != "audio" and self.ssrc is not None and link is not None and not link.is_closing:
            link.send_media(bytes(Pli(self.local_ssrc, self.ssrc)))

    def _media(self, packet: bytes) -> None:
        if not self.playing or self.sink is None or self.ssrc is None:
            return
        try:
            if peek_ssrc(packet) != self.ssrc:
                return
            rtcp = is_rtcp(packet)
            if not rtcp and packet[1] & 0x7F == PT_RED:  # players get plain Opus, not RED
                packet = bytes(primary_only(RtpPacket.parse(packet)))
        except ProtocolError:
            return
        self.sink(packet, rtcp)

    async def _watch(self) -> None:
        while True:
            event = await self.client.events.get()
            kind = event["type"]
            if kind == "share_started" and self._matches(event):
                self.ssrc = int(event["ssrc"])
                if self.playing:
                    self.request_keyframe()
            elif kind == "share_stopped" and self._matches(event):
                self.ssrc = None
            elif kind in ("meeting_closed", "kicked", "disconnected", "left"):
                self.ended = True
                self.on_end(kind)
                return

    async def close(self) -> None:
        self._events.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._events
        await self.client.close()


@dataclass
class Announced:
    """One stream of an ANNOUNCE: what the publisher sends, and how it goes on into the meeting."""

    control: str
    kind: str
    codec: str
    payload_type: int
    ssrc: int = field(default_factory=lambda: secrets.randbelow((1 << 32) - 1) + 1)
    parameter_sets: list[bytes] = field(default_factory=list)
    seq_offset: int = 0
    sets_timestamp: int | None = None
    packets: int = 0


def announced_streams(sdp: SessionDescription) -> list[Announced]:
    """The streams of an ANNOUNCE's SDP; raise Refused (415) for a codec a meeting cannot carry."""
    streams: list[Announced] = []
    for index, media in enumerate(sdp.media):
        rtpmap = media.rtpmap()
        encoding = rtpmap.encoding.upper() if rtpmap else "?"
        control = media.control or f"streamid={index}"
        if media.media == "video" and encoding == "H264":
            sets: list[bytes] = []
            for part in media.fmtp().get("sprop-parameter-sets", "").split(","):
                with contextlib.suppress(binascii.Error, ValueError):
                    if part:
                        sets.append(base64.b64decode(part, validate=True))
            assert rtpmap is not None
            streams.append(Announced(control, "video", "H264", rtpmap.payload_type, parameter_sets=sets))
        elif media.media == "audio" and encoding == "OPUS":
            assert rtpmap is not None
            streams.append(Announced(control, "audio", "opus", rtpmap.payload_type))
        else:
            raise Refused(
                415,
                f"a meeting carries H.264 video and Opus audio, not {media.media} {encoding}: "
                "encode with -c:v libx264 -c:a libopus",
            )
    if not streams:
        raise Refused(415, "the SDP announces no stream")
    if len({s.kind for s in streams}) != len(streams):
        raise Refused(415, "announce at most one video and one audio stream")
    return streams


def _nal_types(payload: bytes) -> tuple[list[int], bool]:
    """The NAL types an H.264 RTP payload starts or holds, and whether it starts an IDR picture."""
    if not payload:
        return [], False
    kind = payload[0] & 0x1F
    if kind == FU_A:
        if len(payload) < 2 or not payload[1] & 0x80:
            return [], False
        inner = payload[1] & 0x1F
        return [inner], inner == NAL_IDR
    if kind == STAP_A:
        types, pos = [], 1
        while pos + 2 < len(payload):
            size = int.from_bytes(payload[pos : pos + 2], "big")
            if size == 0 or pos + 2 + size > len(payload):
                break
            types.append(payload[pos + 2] & 0x1F)
            pos += 2 + size
        return types, NAL_IDR in types
    return [kind], kind == NAL_IDR


class Publisher:
    """An RTSP publisher's streams, announced in a meeting and forwarded into it."""

    def __init__(self, client: Participant, streams: list[Announced], on_end: Callable[[str], None]) -> None:
        self.client = client
        self.streams = streams
        self.on_end = on_end
        self.started = False
        self.refused: str | None = None
        client.media_handler = lambda packet: None  # what the meeting sends back is not for the player
        self._events = asyncio.create_task(self._watch())

    def start(self) -> None:
        if not self.started:
            self.started = True
            for stream in self.streams:
                self.client.send(
                    {"type": "publish", "kind": stream.kind, "ssrc": stream.ssrc, "codec": stream.codec}
                )

    def receive(self, stream: Announced, data: bytes) -> None:
        """One RTP packet of ``stream`` from the player."""
        if not self.started or is_rtcp(data):
            return
        try:
            packet = RtpPacket.parse(data)
        except ProtocolError:
            return
        if packet.payload_type != stream.payload_type:
            return
        out: list[RtpPacket] = []
        if stream.kind == "video":
            types, idr = _nal_types(packet.payload)
            if NAL_SPS in types:
                stream.sets_timestamp = packet.timestamp
                if len(types) == 1 and packet.payload:
                    self._remember(stream, packet.payload)
            if idr and stream.sets_timestamp != packet.timestamp and stream.parameter_sets:
                sets = b"".join(len(s).to_bytes(2, "big") + s for s in stream.parameter_sets)
                nri = max(s[0] & 0x60 for s in stream.parameter_sets)
                out.append(
                    RtpPacket(
                        PT_H264,
                        (packet.sequence_number + stream.seq_offset) & 0xFFFF,
                        packet.timestamp,
                        stream.ssrc,
                        bytes((nri | STAP_A,)) + sets,
                    )
                )
                stream.seq_offset += 1
                stream.sets_timestamp = packet.timestamp
        packet.ssrc = stream.ssrc
        packet.payload_type = PT_H264 if stream.kind == "video" else PT_OPUS
        packet.sequence_number = (packet.sequence_number + stream.seq_offset) & 0xFFFF
        packet.csrc = []
        packet.extension = None
        out.append(packet)
        link = self.client.link
        if link is None or link.is_closing:
            return
        for item in out:
            stream.packets += 1
            link.send_media(bytes(item))

    @staticmethod
    def _remember(stream: Announced, nal: bytes) -> None:
        kind = nal[0] & 0x1F
        kept = [s for s in stream.parameter_sets if s[0] & 0x1F != kind]
        stream.parameter_sets = sorted([*kept, nal], key=lambda s: s[0] & 0x1F)

    async def _watch(self) -> None:
        while True:
            event = await self.client.events.get()
            kind = event["type"]
            if kind == "error" and event.get("re") == "publish":
                self.refused = str(event.get("message", "refused"))
                log.info("RTSP publisher %s refused: %s", self.client.name, self.refused)
            elif kind in ("meeting_closed", "kicked", "disconnected", "left"):
                self.on_end(kind)
                return

    async def close(self) -> None:
        self._events.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._events
        await self.client.close()
