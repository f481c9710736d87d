"""Publishing local media: capture, encode, packetise and send one source's tracks into the meeting.

A :class:`Publisher` runs one open :class:`~conf_cli.media.source.Source`. Frames come off the capture
thread through a :class:`~conf_cli.media.source.ThreadedSource` (which drops the oldest frame when encoding
falls behind); each is encoded in a worker thread, so the event loop never waits on a codec. Video (camera,
screen, file, pattern) becomes H.264 (payload type 96, 90 kHz), audio becomes Opus (payload type 111,
48 kHz). A source that yields both kinds (a file with sound) gives two tracks. Each track has its own random
SSRC and is announced with a ``publish`` request before its first packet.

A video track is published as up to three simulcast layers when its picture is large enough
(:func:`plan_layers`): the full picture and, for each halving down to :data:`MIN_LAYER_HEIGHT` lines, a
smaller encoding of the same frames at a third and a tenth of the bit rate (a screen keeps its resolution
for the middle layer and gives up frame rate instead). Each layer has its own encoder, RTP sender and
SSRC; the track's SSRC is its highest layer's, and ``publish`` lists them all (docs/protocol.md,
"Simulcast"). The server tells the publisher which layers someone receives (``layers_active``): the
others are paused (not encoded at all), and a paused layer resumes with a keyframe when it is asked for
again (by ``layers_active`` or a PLI for it). An end-to-end encrypted meeting gets one layer.

In an end-to-end encrypted meeting each RTP packet's payload is encrypted (``protect``, an SFrame per
payload, :mod:`conf_cli.client.media.e2ee`) just before it is sent; RTCP stays in the clear.

The encoders follow the uplink (:mod:`conf_cli.media.congestion`): each publisher holds a
:class:`~conf_cli.media.congestion.BitrateController`, fed either the server's RFC 8888 reports on its
packets' arrival (``"feedback": "ccfb"`` in ``publish``: rtp://, zmq://) or samples of the link's send
queue (tcp://). Audio keeps its share; video gets the rest (never more than the ``bitrate`` asked for). An
H.264 encoder restarts on a new bit rate, so a video target changes only by more than
:data:`RETARGET_CHANGE`, at most every :data:`RETARGET_DOWN` seconds down and :data:`RETARGET_UP` up. Every
:data:`STATS_INTERVAL` seconds a ``publish_stats`` event tells each track's ``target_bitrate`` and the
estimate, ``available_bitrate``.

Feedback from receivers (routed by the server to the owner of ``media_ssrc``) is answered here: PLI and FIR
make the next frame a keyframe, NACK resends the packets still in the sender's history. Every
:data:`SENDER_REPORT_INTERVAL` seconds each track sends a sender report, with a DLRR block (RFC 3611 4.5)
answering the reference times receivers sent, so that each receiver can time its round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import av
import numpy as np

from conf_cli.errors import ConfError
from conf_cli.media import libopus
from conf_cli.media.audio_level import SILENCE, audio_level_extension
from conf_cli.media.codecs import H264Encoder, OpusEncoder
from conf_cli.media.congestion import AUDIO_BITRATE, MAX_BITRATE, BitrateController, LayerAllocator
from conf_cli.media.h264 import H264Packetizer, split_annexb
from conf_cli.media.red import PT_RED, RedEncoder, RedSwitch
from conf_cli.media.rtp_stream import RateMeter, RtpSender
from conf_cli.media.source import CapturedFrame, EncodedUnit, Source, SourceFactory, ThreadedSource
from conf_cli.protocol.control import Message
from conf_cli.protocol.rtcp import (
    CongestionFeedback,
    Fir,
    Nack,
    Pli,
    ReceiverReport,
    RtcpPacket,
    SenderReport,
    build_compound,
    ntp_middle,
)
from conf_cli.protocol.rtcp_xr import dlrr
from conf_cli.token_bucket import TokenBucket

log = logging.getLogger(__name__)

PT_H264 = 96
PT_OPUS = 111
MTU = 1200
SENDER_REPORT_INTERVAL = 2.0
DEFAULT_VIDEO_BITRATE = 1_500_000
DEFAULT_FPS = 30.0
MAX_REFERENCE_TIMES = 64  # receivers whose XR reference time is answered
REFERENCE_TIME_AGE = 5.0  # seconds an unanswered reference time is kept
RESEND_INTERVAL = 0.05  # a packet is resent at most once in this many seconds ...
RESEND_RATE = 1_000_000.0  # ... and a track resends at most this many bytes a second (at once too)
MIN_LAYER_HEIGHT = 180
"""A simulcast layer below the highest has at least this many lines: a 720p source gives three layers
(720, 360, 180), a 360p one two, anything smaller one."""
LAYER_SHARES = (1.0, 1 / 3, 1 / 10)
"""Each layer's share of the video bit rate, highest first (1.2 Mbit/s, 400 and 120 kbit/s)."""
RETARGET_CHANGE = 0.15
"""A new encoder target must differ from the current one by more than this share ..."""
RETARGET_DOWN = 1.0
"""... and come at least this many seconds after the last change when it lowers the rate ..."""
RETARGET_UP = 2.0
"""... or this many when it raises it (an H.264 encoder restarts, with a keyframe, on each change)."""
QUEUE_SAMPLE_INTERVAL = 0.05
"""Seconds between samples of a stream link's send queue."""
STATS_INTERVAL = 1.0

SendMedia = Callable[[bytes], None]
Protect = Callable[[bytes], bytes | None]
SendControl = Callable[[Message], None]
Notify = Callable[[Message], None]
QueueProbe = Callable[[], tuple[int, int, int] | None]
"""A stream link's send queue: (bytes waiting, bytes written since it opened, packets it refused), or None."""


def find_source_factory(sources: Mapping[str, Any], name: str) -> SourceFactory:
    """The factory registered as ``name``; ConfError naming the loaded ones if there is none."""
    factory = sources.get(name)
    if factory is not None:
        return factory
    known = ", ".join(sorted(sources)) or "none"
    raise ConfError(f"no source plugin named {name!r} (loaded: {known}); see `conf plugins`")


def open_source(sources: Mapping[str, Any], name: str, options: Mapping[str, Any]) -> Source:
    """Open source ``name`` (blocking: call it from a thread); ConfError with one clear line if it fails."""
    factory = find_source_factory(sources, name)
    try:
        return factory.open(options)
    except ConfError:
        raise
    except Exception as exc:  # a device or a file that cannot be opened, whatever the library raised
        raise ConfError(f"cannot open {name}: {exc}") from None


def plan_layers(kind: str, width: int, height: int, bitrate: int) -> list[tuple[int, int, int, int]]:
    """The simulcast layers of a ``kind`` picture of ``width`` x ``height`` at ``bitrate``: ``(width,
    height, bit rate, frame divisor)`` for each, lowest first. A camera, file or pattern halves its size
    for each lower layer (the lowest at half the frame rate); a screen keeps its full size for the middle
    layer at a third of the frames (text stays readable), and halves it for the lowest at a sixth."""
    layers: list[tuple[int, int, int, int]] = [(width, height, bitrate, 1)]
    for step in (1, 2):
        if height >> step < MIN_LAYER_HEIGHT:
            break
        share = int(bitrate * LAYER_SHARES[step])
        if kind == "screen":
            scale = 0 if step == 1 else 1
            layers.append((width >> scale, height >> scale, share, 3 * step))
        else:  # the smallest at half the frame rate: a thumbnail needs no more, and costs half as much
            layers.append((width >> step, height >> step, share, step))
    return layers[::-1]


class OutgoingTrack:
    """One published track (or one simulcast layer of one): its encoder, its RTP sender and what it has
    sent. A simulcast track holds its lower layers in :attr:`lower`."""

    def __init__(
        self,
        kind: str,
        audio: bool,
        fps: float,
        bitrate: int,
        rng: random.Random,
        size: tuple[int, int] | None = None,
        divisor: int = 1,
    ) -> None:
        self.kind = kind
        self.audio = audio
        self.codec = "opus" if audio else "H264"
        self.ssrc = rng.randrange(1, 1 << 32)
        self.sender = RtpSender(
            self.ssrc, PT_OPUS if audio else PT_H264, 48_000 if audio else 90_000, rng=rng
        )
        self.packetizer = None if audio else H264Packetizer(MTU)
        self.fps = fps
        self.bitrate = bitrate
        self.target_bitrate = AUDIO_BITRATE if audio else bitrate
        """What the encoder is asked for (bit/s); congestion control moves it."""
        self.meter = RateMeter(1.0)
        self._retargeted = -1e9
        self.video_encoder: H264Encoder | None = None
        self.audio_encoder: OpusEncoder | None = OpusEncoder(dtx=True) if audio else None
        self.red_switch = RedSwitch()
        """RED (RFC 2198) goes on while receivers report loss of this track."""
        self.red = RedEncoder(PT_OPUS)
        self.red_packets = 0
        """Packets sent with a redundant block."""
        self._red_was_on = False
        self.confirmed = False
        self.stopped = False
        self.frames = 0
        self.keyframes = 0
        self.last_pts = 0
        self.last_capture = 0.0
        self.last_report = 0.0
        self.resent = 0
        """Packets sent again on a NACK."""
        self.resend_budget = TokenBucket(RESEND_RATE, RESEND_RATE)
        self._resent_at: dict[int, float] = {}  # sequence number -> when it was last resent
        self._first = True
        self.size = size
        """The picture size this layer encodes; None: the source's own."""
        self.divisor = divisor
        """Encode one frame in this many (a screen's lower layers give up frame rate)."""
        self.lower: list[OutgoingTrack] = []
        """Simulcast: the lower layers, lowest first (this track is the highest)."""
        self.paused = False
        """Dynacast: nobody receives this layer, so it is not encoded."""
        self.congested = False
        """Congestion control: the uplink leaves this layer too little, so it is not encoded."""
        self.standing_in = False
        """Congestion control: sent though nobody receives it, in place of a higher layer the uplink cannot
        carry now (its subscribers are moved here by the server)."""
        self.allocator: LayerAllocator | None = None
        """A simulcast track's split of its video target among its layers (set by :func:`simulcast_track`)."""
        self._count = 0

    @property
    def layers(self) -> list[OutgoingTrack]:
        """Every layer of this track, lowest first (itself alone without simulcast)."""
        return [*self.lower, self]

    @property
    def idle(self) -> bool:
        """Whether this layer is not encoded now (nobody receives it, or the uplink leaves it too little)."""
        return (self.paused and not self.standing_in) or self.congested

    def set_paused(self, paused: bool) -> None:
        """Pause or resume this layer (dynacast); it resumes with a keyframe."""
        was = self.idle
        self.paused = paused
        self._resumed(was)

    def set_congested(self, congested: bool, standing_in: bool = False) -> None:
        """Pause or resume this layer for congestion control; it resumes with a keyframe."""
        was = self.idle
        self.congested, self.standing_in = congested, standing_in
        self._resumed(was)

    def _resumed(self, was_idle: bool) -> None:
        if was_idle and not self.idle:
            self.request_keyframe()

    def adapt_layers(self, video: int, now: float) -> None:
        """Share a video target of ``video`` bit/s among this simulcast track's layers
        (:class:`~conf_cli.media.congestion.LayerAllocator`): each retargets to its share, upper ones
        pause when the uplink narrows and resume when it widens."""
        allocator = self.allocator
        if allocator is None:
            return
        layers = self.layers
        shares = allocator.allocate(video, now, [not layer.paused for layer in layers])
        for layer, share, sent in zip(layers, shares, allocator.sent, strict=True):
            layer.set_congested(not sent and not layer.paused, standing_in=sent and layer.paused)
            if share > 0:
                layer.retarget(share, now)

    @property
    def sending_bitrate(self) -> int:
        """What this track's encoders are asked for now: every layer that is encoded."""
        return sum(layer.target_bitrate for layer in self.layers if not layer.idle)

    def encode_layers(self, captured: CapturedFrame) -> list[tuple[OutgoingTrack, list[EncodedUnit]]]:
        """Encode one frame in every layer that is not paused (blocking: runs in a worker thread).

        Highest first: each smaller picture is scaled from the last one scaled, not from the source, so
        the three layers of a 720p picture cost one conversion each, the smaller ones on fewer pixels
        (:func:`scaled`)."""
        out = []
        picture = captured.frame
        for layer in reversed(self.layers):
            layer._count += 1
            if layer.idle or (layer._count - 1) % layer.divisor:
                continue
            given = captured
            if layer is not self and isinstance(picture, av.VideoFrame) and layer.size is not None:
                width, height = layer.size
                if (picture.width, picture.height) != (width, height):
                    picture = scaled(picture, width, height)
                given = CapturedFrame(picture, captured.capture_time)
            out.append((layer, layer.encode(given)))
        return out

    def encode(self, captured: CapturedFrame) -> list[EncodedUnit]:
        """Encode one frame (blocking: runs in a worker thread)."""
        target = self.target_bitrate
        if self.audio_encoder is not None:
            if self.audio_encoder.bitrate != target:
                self.audio_encoder.set_bitrate(target)
            return self.audio_encoder.encode(captured)
        if self.video_encoder is None:
            frame = captured.frame
            width, height = self.size or (frame.width, frame.height)  # type: ignore[union-attr]
            self.video_encoder = H264Encoder(width, height, self.fps / self.divisor, target)
        elif self.video_encoder.bitrate != target:
            self.video_encoder.set_bitrate(target)
        return self.video_encoder.encode(captured)

    def retarget(self, bitrate: int, now: float) -> bool:
        """Ask the encoder for ``bitrate`` from its next frame, if the change is worth a restart (see
        :data:`RETARGET_CHANGE`); True if the target changed."""
        current = self.target_bitrate
        change = (bitrate - current) / current
        back_to_full = not self.audio and bitrate == self.bitrate != current
        if abs(change) <= RETARGET_CHANGE and not back_to_full:
            return False
        if now - self._retargeted < (RETARGET_DOWN if change < 0 else RETARGET_UP):
            return False
        self.target_bitrate = bitrate
        self._retargeted = now
        return True

    def request_keyframe(self) -> None:
        if self.video_encoder is not None:
            self.video_encoder.request_keyframe()

    def packets(self, unit: EncodedUnit, now: float | None = None) -> list[bytes]:
        """The RTP packets of one encoded unit. An audio packet carries its level (RFC 6464) and, while
        receivers report loss (``now`` is the monotonic clock), a RED payload with an older packet."""
        self.frames += 1
        self.keyframes += unit.keyframe
        talkspurt = unit.pts != self.last_pts + unit.duration  # after DTX's silence, or the first
        self.last_pts, self.last_capture = unit.pts, unit.capture_time
        if self.packetizer is None:
            marker, self._first = self._first or talkspurt, False
            level = SILENCE if unit.level is None else unit.level
            extension = audio_level_extension(level)
            red = self.red_switch.active(time.monotonic() if now is None else now)
            if red != self._red_was_on:
                self._red_was_on = red
                self.red.reset()
            if not red:
                return self.sender.packetize([unit.data], unit.pts, marker=marker, extension=extension)
            timestamp = self.sender.rtp_timestamp(unit.pts)
            payload = self.red.wrap(unit.data, timestamp, unit.duration, libopus.has_fec(unit.data))
            self.red_packets += 1
            return self.sender.packetize(
                [payload], unit.pts, marker=marker, extension=extension, payload_type=PT_RED
            )
        payloads = self.packetizer.packetize(split_annexb(unit.data))
        return self.sender.packetize(payloads, unit.pts, marker=True)

    def sender_report(self, now: float, references: Mapping[int, tuple[int, float]]) -> bytes:
        """An SR, and a DLRR for the receivers' reference times: ``{ssrc: (NTP time, when it came)}``."""
        ticks = self.last_pts + self.sender.ticks(max(0.0, now - self.last_capture))
        parts: list[RtcpPacket] = [self.sender.sender_report(now, ticks)]
        entries = [
            (ssrc, ntp_middle(ntp), min(0xFFFFFFFF, int((now - arrived) * 65536)))
            for ssrc, (ntp, arrived) in references.items()
        ]
        if entries:
            parts.append(dlrr(self.ssrc, entries))
        return build_compound(parts)

    def resends(self, nack: Nack, now: float) -> list[bytes]:
        """The packets to send again for ``nack``: each still kept, at most once per
        :data:`RESEND_INTERVAL`, within the track's byte budget (the server limits NACKs too; this keeps
        a publisher from being made to flood by whoever its NACKs come from)."""
        out: list[bytes] = []
        resent_at = self._resent_at
        for packet in self.sender.handle_nack(nack):
            seq = packet[2] << 8 | packet[3]
            last = resent_at.get(seq)
            if last is not None and now - last < RESEND_INTERVAL:
                continue
            if not self.resend_budget.take(len(packet), now):
                break
            resent_at.pop(seq, None)
            resent_at[seq] = now
            out.append(packet)
        while len(resent_at) > 1024:
            del resent_at[next(iter(resent_at))]
        self.resent += len(out)
        return out

    def loss_reported(self, part: ReceiverReport | SenderReport, now: float) -> None:
        """A receiver's report: its blocks about this track turn RED on while they show loss."""
        for block in part.reports:
            if block.ssrc == self.ssrc:
                self.red_switch.report(block.fraction_lost, now)

    def describe(self) -> Message:
        described: Message = {"kind": self.kind, "ssrc": self.ssrc, "codec": self.codec}
        if self.lower:
            described["layers"] = [
                {"ssrc": layer.ssrc, "width": width, "height": height, "bitrate": layer.bitrate}
                for layer, (width, height) in ((layer, layer.size or (0, 0)) for layer in self.layers)
            ]
        return described


def scaled(picture: av.VideoFrame, width: int, height: int) -> av.VideoFrame:
    """``picture`` at ``width`` x ``height`` in ``yuv420p``. Halving a ``yuv420p`` picture keeps every
    other sample of each plane (a third of what swscale costs here, and a small layer loses little to
    it); any other size goes through swscale's fast bilinear scaler."""
    w, h = picture.width, picture.height
    if (
        picture.format.name == "yuv420p"
        and (w, h) == (2 * width, 2 * height)
        and width % 2 == 0 == height % 2
    ):
        half = av.VideoFrame(width, height, "yuv420p")
        for source, target in zip(picture.planes, half.planes, strict=True):
            rows = np.frombuffer(memoryview(source), np.uint8).reshape(-1, source.line_size)
            out = np.frombuffer(memoryview(target), np.uint8).reshape(-1, target.line_size)
            out[:, : target.width] = rows[::2, : 2 * target.width : 2]
        return half
    return picture.reformat(width, height, "yuv420p", interpolation="FAST_BILINEAR")


def simulcast_track(
    kind: str, width: int, height: int, fps: float, bitrate: int, rng: random.Random
) -> OutgoingTrack:
    """A video track of ``width`` x ``height`` with the simulcast layers :func:`plan_layers` gives it."""
    planned = plan_layers(kind, width, height, bitrate)
    track = OutgoingTrack(kind, False, fps, bitrate, rng, (width, height))
    for layer_width, layer_height, layer_bitrate, divisor in planned[:-1]:
        size = (layer_width, layer_height)
        track.lower.append(OutgoingTrack(kind, False, fps, layer_bitrate, rng, size, divisor))
    if track.lower:
        track.allocator = LayerAllocator([layer.bitrate for layer in track.layers])
    return track


class Publisher:
    """Publishes the tracks of one open source until it ends, is stopped, or the server stops them."""

    def __init__(
        self,
        source_name: str,
        source: Source,
        *,
        send_control: SendControl,
        send_media: SendMedia,
        notify: Notify,
        fps: float = DEFAULT_FPS,
        bitrate: int = DEFAULT_VIDEO_BITRATE,
        rng: random.Random | None = None,
        protect: Protect | None = None,
        red: bool = True,
        simulcast: bool = True,
        feedback: bool = False,
        queue: QueueProbe | None = None,
    ) -> None:
        self.source_name = source_name
        self.red = red
        """Whether loss in receiver reports may turn RED on (rtp://; not where media comes in order)."""
        self.source = source
        self.kind: str = source.kind
        self._send_control = send_control
        self._send_media = send_media
        self._notify = notify
        self._fps = fps
        self._bitrate = bitrate
        self._rng = rng or random.SystemRandom()
        self._protect = protect
        """Encrypts each RTP packet's payload (an E2EE meeting); None drops a packet it cannot encrypt."""
        self._simulcast = simulcast and protect is None
        """Publish video as simulcast layers (never end-to-end encrypted: the server rewrites headers)."""
        self._feedback = feedback
        """Ask the server for RFC 8888 feedback on each track (rtp://, zmq://)."""
        self._queue = queue
        """Samples the link's send queue (a stream link that can measure it: tcp://)."""
        nominal = bitrate * sum(LAYER_SHARES) if self._simulcast else bitrate  # every layer's, at most
        start = (nominal + AUDIO_BITRATE) / 0.95
        self.controller = BitrateController(start, high=max(MAX_BITRATE, start))
        """The uplink's estimate; its video share is what the video encoder is asked for."""
        self._report_clock: float | None = None  # the last feedback report's timestamp, unwrapped, in s
        self._report_stamp = 0
        self._last_queue_sample = -1e9
        self._stats_task: asyncio.Task[None] | None = None
        self.tracks: dict[bool, OutgoingTrack] = {}  # by "is audio"
        self._references: dict[int, tuple[int, float]] = {}  # receiver SSRC -> (its NTP time, arrival)
        self._frames: ThreadedSource | None = None
        self._task: asyncio.Task[None] | None = None
        self.finished = False

    @property
    def kinds(self) -> set[str]:
        kinds = {t.kind for t in self.tracks.values() if not t.stopped}
        return kinds or ({self.kind} if not self.tracks else set())

    def owns(self, ssrc: int) -> OutgoingTrack | None:
        """The track, or simulcast layer, whose SSRC is ``ssrc``."""
        for track in self.tracks.values():
            for layer in track.layers:
                if layer.ssrc == ssrc:
                    return layer
        return None

    def layers_active(self, ssrc: int, active: list[int]) -> None:
        """Dynacast (``layers_active``): encode only the layers of track ``ssrc`` someone receives."""
        track = next((t for t in self.tracks.values() if t.ssrc == ssrc), None)
        if track is None or not track.lower:
            return
        wanted = set(active)
        for layer in track.layers:
            layer.set_paused(layer.ssrc not in wanted)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"publish-{self.source_name}")
        self._stats_task = asyncio.create_task(self._report_stats(), name=f"stats-{self.source_name}")

    async def _report_stats(self) -> None:
        while not self.finished:
            await asyncio.sleep(STATS_INTERVAL)
            for track in list(self.tracks.values()):
                if not track.stopped:
                    self._notify(self.stats_event(track))

    def stats_event(self, track: OutgoingTrack) -> Message:
        """A ``publish_stats`` event: what ``track`` sends, what its encoder is asked for, the estimate."""
        now = time.monotonic()
        controller = self.controller
        event: Message = {
            "type": "publish_stats",
            "source": self.source_name,
            **track.describe(),
            "frames": track.frames,
            "bitrate": round(sum(layer.meter.bitrate(now) for layer in track.layers)),
            "target_bitrate": track.sending_bitrate,
            "available_bitrate": round(controller.target),
            "estimator": "feedback" if self._feedback else ("queue" if self._queue is not None else "none"),
        }
        if track.lower:
            event["layers"] = [
                {
                    **described,
                    "target_bitrate": 0 if layer.idle else layer.target_bitrate,
                    "sent_bitrate": round(layer.meter.bitrate(now)),
                    **({"paused": "congestion" if layer.congested else "dynacast"} if layer.idle else {}),
                }
                for layer, described in zip(track.layers, track.describe()["layers"], strict=True)
            ]
        return event

    async def _run(self) -> None:
        reason = "ended"
        frames = ThreadedSource(self.source, maxsize=4, name=f"capture-{self.source_name}")
        self._frames = frames
        try:
            async with frames:
                async for captured in frames:
                    track = self._track_for(captured)
                    if track is None:
                        if self.tracks and all(t.stopped for t in self.tracks.values()):
                            reason = "stopped"
                            break
                        continue
                    encoded = await asyncio.to_thread(track.encode_layers, captured)
                    if track.stopped:
                        continue
                    for layer, units in encoded:
                        for unit in units:
                            self._send(layer, unit)
        except asyncio.CancelledError:
            reason = "stopped"
            raise
        except Exception as exc:  # a device, codec or library failure ends this share, never the meeting
            reason = "error"
            log.debug("publishing %s failed", self.source_name, exc_info=True)
            self._notify({"type": "error", "code": "media", "message": f"{self.source_name}: {exc}"})
        finally:
            self.finished = True
            if self._stats_task is not None:
                self._stats_task.cancel()
            for track in self.tracks.values():
                self._end_track(track, reason, unpublish=reason in ("ended", "error"))

    def _track_for(self, captured: CapturedFrame) -> OutgoingTrack | None:
        audio = captured.is_audio
        track = self.tracks.get(audio)
        if track is None:
            if self.tracks and all(t.stopped for t in self.tracks.values()):
                return None
            kind = "audio" if audio else ("video" if self.kind == "audio" else self.kind)
            frame = captured.frame
            if not audio and self._simulcast and isinstance(frame, av.VideoFrame):
                track = simulcast_track(kind, frame.width, frame.height, self._fps, self._bitrate, self._rng)
            else:
                track = OutgoingTrack(kind, audio, self._fps, self._bitrate, self._rng)
            self.tracks[audio] = track
            self._adapt(time.monotonic())
            with contextlib.suppress(ConfError):  # the link is down: republish() sends it once back
                self._send_control(self._publish_request(track))
            self._notify({"type": "publish_started", "source": self.source_name, **track.describe()})
        return None if track.stopped else track

    def _publish_request(self, track: OutgoingTrack) -> Message:
        publish: Message = {"type": "publish", **track.describe()}
        if self._feedback:
            publish["feedback"] = "ccfb"
        return publish

    def republish(self) -> None:
        """Publish every live track again, as it was (after a resume), and make its next picture a
        keyframe for those who receive it anew."""
        for track in self.tracks.values():
            if not track.stopped:
                with contextlib.suppress(ConfError):
                    self._send_control(self._publish_request(track))
        self.request_keyframes()

    def _send(self, track: OutgoingTrack, unit: EncodedUnit) -> None:
        clock = time.monotonic()
        controller = self.controller
        for packet in track.packets(unit):
            if self._protect is not None:
                protected = self._protect(packet)
                if protected is None:
                    continue
                packet = protected
                track.sender.remember(packet)  # a resend is these very bytes
            self._send_media(packet)
            track.meter.record(clock, len(packet))
            if self._feedback:
                controller.on_sent(track.ssrc, packet[2] << 8 | packet[3], len(packet), clock)
        if self._queue is not None and clock - self._last_queue_sample >= QUEUE_SAMPLE_INTERVAL:
            self._last_queue_sample = clock
            sample = self._queue()
            if sample is not None:
                queued, written, dropped = sample
                controller.on_queue(queued, written, clock, dropped)
        self._adapt(clock)
        now = time.time()
        if now - track.last_report >= SENDER_REPORT_INTERVAL:
            track.last_report = now
            references = self._references
            for ssrc in [s for s, (_, arrived) in references.items() if now - arrived > REFERENCE_TIME_AGE]:
                del references[ssrc]
            self._send_media(track.sender_report(now, references))

    def _adapt(self, now: float) -> None:
        """Give each live track its share of the estimate (audio first), within the bit rate asked for."""
        live = [t for t in self.tracks.values() if not t.stopped]
        audio_tracks = sum(1 for t in live if t.audio)
        controller = self.controller
        for track in live:
            if track.audio:
                track.retarget(controller.audio_bitrate(), now)
            elif track.allocator is not None:
                track.adapt_layers(controller.video_bitrate(audio_tracks), now)
            else:
                track.retarget(min(track.bitrate, controller.video_bitrate(audio_tracks)), now)

    def congestion_feedback(self, report: CongestionFeedback) -> None:
        """The server's RFC 8888 report on our packets' arrival: feed the estimator, retarget encoders."""
        ours = [block for block in report.blocks if self.owns(block.ssrc) is not None]
        if not ours:
            return
        stamp = report.report_timestamp
        if self._report_clock is None:
            self._report_clock = 0.0
        else:  # the 32-bit timestamp (1/65536 s) wraps; only its steps matter
            step = ((stamp - self._report_stamp + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            self._report_clock += step / 65536
        self._report_stamp = stamp
        clock = self._report_clock
        reports = [
            (block.ssrc, seq, None if offset is None else clock - offset / 1024)
            for block in ours
            for seq, offset in block.arrivals()
        ]
        now = time.monotonic()
        self.controller.on_feedback(reports, now)
        self._adapt(now)

    def reference_time(self, ssrc: int, ntp_timestamp: int) -> None:
        """A receiver's XR reference time (RFC 3611 4.4), answered in the next sender reports."""
        references = self._references
        references.pop(ssrc, None)
        references[ssrc] = (ntp_timestamp, time.time())
        while len(references) > MAX_REFERENCE_TIMES:
            del references[next(iter(references))]

    def feedback(self, part: RtcpPacket) -> None:
        """Answer a PLI, FIR or NACK about one of our tracks; note the loss receiver reports show."""
        if isinstance(part, ReceiverReport | SenderReport):
            if not self.red:
                return
            now = time.monotonic()
            for outgoing in self.tracks.values():
                if outgoing.audio:
                    outgoing.loss_reported(part, now)
        elif isinstance(part, Pli):
            track = self.owns(part.media_ssrc)
            if track is not None:  # someone needs this layer: a paused one resumes
                track.set_paused(False)
                track.request_keyframe()
        elif isinstance(part, Fir):
            for ssrc, _ in part.entries:
                track = self.owns(ssrc)
                if track is not None:
                    track.request_keyframe()
        elif isinstance(part, Nack):
            track = self.owns(part.media_ssrc)
            if track is not None and not track.stopped:
                for packet in track.resends(part, time.monotonic()):
                    self._send_media(packet)  # as first sent (end-to-end encrypted): byte for byte

    def request_keyframes(self) -> None:
        """Make the next picture of every video track a keyframe (a new key in an E2EE meeting)."""
        for track in self.tracks.values():
            for layer in track.layers:
                layer.request_keyframe()

    def confirm(self, ssrc: int) -> None:
        track = self.owns(ssrc)
        if track is not None:
            track.confirmed = True

    def track_stopped(self, ssrc: int, reason: str) -> None:
        """The server stopped one of our tracks (forbidden, replaced ...): stop sending it."""
        track = self.owns(ssrc)
        if track is not None:
            self._end_track(track, reason, unpublish=False)
            self._stop_if_idle()

    def refused(self) -> None:
        """The server refused a ``publish``: stop the tracks it has not confirmed."""
        for track in self.tracks.values():
            if not track.confirmed:
                self._end_track(track, "refused", unpublish=False)
        self._stop_if_idle()

    def unpublish(self, kind: str) -> bool:
        """Stop sending ``kind`` and ask the server to end it; True if this publisher had it."""
        found = False
        for track in self.tracks.values():
            if track.kind == kind and not track.stopped:
                found = True
                self._end_track(track, "stopped", unpublish=True)
        if not self.tracks and self.kind == kind:
            found = True
        if found:
            self._stop_if_idle(force=not self.tracks)
        return found

    def _end_track(self, track: OutgoingTrack, reason: str, *, unpublish: bool) -> None:
        if track.stopped:
            return
        track.stopped = True
        if unpublish:
            with contextlib.suppress(ConfError):
                self._send_control({"type": "unpublish", "kind": track.kind})
        self._notify(
            {
                "type": "publish_stopped",
                "source": self.source_name,
                **track.describe(),
                "reason": reason,
                "frames": track.frames,
                "resent": track.resent,
                **({"red_packets": track.red_packets} if track.audio else {}),
            }
        )

    def _stop_if_idle(self, force: bool = False) -> None:
        if force or (self.tracks and all(t.stopped for t in self.tracks.values())):
            self.source.close()

    async def stop(self) -> None:
        """Stop capturing and sending; the server is asked to end every live track."""
        for track in self.tracks.values():
            self._end_track(track, "stopped", unpublish=True)
        self.source.close()
        if self._stats_task is not None:
            self._stats_task.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._frames is not None:
            await self._frames.stop()
