"""Receiving one remote track: RTP in, reception statistics, jitter buffer, depacketiser, decoder, sinks.

Packets are parsed and counted on arrival (:class:`~conf_cli.media.rtp_stream.ReceiverStats`) and pushed
into a short :class:`~conf_cli.media.jitter.JitterBuffer`, which hands out at once what is due (video in
order is always due: a picture is decoded as soon as its marker packet arrives) and a playout task pops
the rest on a timer. On a transport that delivers media in order (``Link.media_ordered``: TCP, ZeroMQ,
WebSocket) nothing is waited for: a hole is a packet the server dropped, never one still on its way, and
audio is held only :data:`ORDERED_AUDIO_DELAY` to smooth its arrival. Video goes
through the :class:`~conf_cli.media.h264.H264Depacketizer`; whole access units wait in a small bounded queue
for a worker thread that records them (without re-encoding) and decodes them. When a picture cannot be
decoded for want of a keyframe, a PLI goes to the publisher, at most every :data:`PLI_INTERVAL` seconds.
Audio is Opus-decoded the same way. With a recorder (an
:class:`~conf_cli.media.source.EncodedSink`, the capture plugin's ``recorder``), each access unit or Opus
packet is also written as it arrived, with its RTP timestamp, before decoding. Every second a
``track_stats`` event reports what arrived.
Malformed packets are counted and dropped. In an end-to-end encrypted meeting each payload is decrypted on
arrival (``unprotect``); a packet whose sender key has not arrived yet is dropped and counted (``no_key``),
and once the key comes a keyframe is asked for at once, so that the picture starts without waiting.

RTCP goes back to the publisher: every :data:`RTCP_INTERVAL` seconds a receiver report (RFC 3550 6.4.2) with
an XR reference time (RFC 3611 4.4) whose answer gives the round-trip time, and, as soon as the jitter
buffer notices a hole in a video track, a generic NACK (RFC 4585 6.2.1) for the missing sequence numbers,
asked again (at most :data:`NACK_RETRIES` times) for a packet still missing when its resend is overdue: the
NACK or the resend may be lost too. How long a resent packet takes to come back is measured (from NACKs
sent once only, as a retry makes the resend's origin ambiguous), and the video jitter buffer waits long
enough for the retries (within :data:`MAX_VIDEO_DELAY`) before it gives a hole up as lost and asks for a
keyframe, so a resend can fill it.

Audio is never resent: a lost Opus packet is rebuilt, best first, from the redundant copy a later RED
packet carries (RFC 2198: the copy is pushed into the jitter buffer as the missing packet, if it is still
waited for), from the in-band FEC data of the packet after it (decoded with libopus's FEC flag), and only
then concealed (Opus packet loss concealment). On a transport that may reorder, the audio jitter buffer's
target follows the path's measured interarrival jitter (:func:`~conf_cli.media.jitter.adaptive_delay`).
docs/media.md describes all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from conf_cli.errors import ConfError, ProtocolError
from conf_cli.media import libopus
from conf_cli.media.audio_level import read_audio_level
from conf_cli.media.codecs import H264Decoder, OpusDecoder
from conf_cli.media.congestion import DownlinkMonitor
from conf_cli.media.h264 import AccessUnit, H264Depacketizer
from conf_cli.media.jitter import Gap, JitterBuffer, adaptive_delay
from conf_cli.media.opus_rtp import opus_packet_samples
from conf_cli.media.red import PT_RED, unpack_red
from conf_cli.media.rtp_stream import FreezeMeter, RateMeter, ReceiverStats, track_stats
from conf_cli.media.source import EncodedSink, EncodedUnit, Sink
from conf_cli.protocol.control import Message
from conf_cli.protocol.rtcp import (
    Nack,
    Pli,
    ReceiverReport,
    SenderReport,
    build_compound,
    compact_ntp,
    ntp_from_unix,
    round_trip_time,
)
from conf_cli.protocol.rtcp_xr import ExtendedReport, rrtr
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.protocol.sframe import UnknownKey

log = logging.getLogger(__name__)

TARGET_DELAY = 0.04
ORDERED_AUDIO_DELAY = 0.01  # audio smoothing on a transport that delivers in order
PLI_INTERVAL = 0.5
STATS_INTERVAL = 1.0
PLAYOUT_TICK = 0.01
DECODE_QUEUE = 16
RTCP_INTERVAL = 1.0
MAX_NACK = 64  # sequence numbers in one NACK
NACK_MEMORY = 1024  # sequence numbers remembered as already asked for
NACK_MIN_AGE = 0.01  # a hole younger than this may be reordering, not loss
NACK_RETRIES = 2
"""Times a NACK is sent again for a packet still missing: a lost NACK or resend need not cost a keyframe."""
NACK_RETRY_AFTER = 1.5
"""A packet still missing this many resend delays after it was asked for is asked for again."""
FIRST_RESEND_DELAY = 0.1
"""The resend delay assumed (seconds) until one has been measured or the round trip is known."""
MAX_VIDEO_DELAY = 0.4  # the jitter buffer never waits longer than this for a resent packet
RESEND_MARGIN = 0.03
MAX_CONCEALED = 10  # frames of concealment played for one gap (200 ms); longer ones are counted only

MAX_RED_DISTANCE = 2  # packets back a RED block may repeat (what conf's sender sends)
AUDIO_ADAPT_INTERVAL = 0.1  # seconds between two updates of the audio jitter buffer's target


@dataclass(frozen=True, slots=True)
class LostAudio:
    """``count`` audio frames the jitter buffer gave up on, just before the packet queued after this."""

    count: int


SendMedia = Callable[[bytes], None]
Unprotect = Callable[[RtpPacket], RtpPacket]
Notify = Callable[[Message], None]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
MAX_FILE_PART = 64  # characters kept of a server-supplied name or kind in a file name
MAX_SAME_NAME = 1000  # numbered alternatives tried before a recording is refused


def _safe_part(text: str, default: str) -> str:
    """``text`` (from the server) as one harmless piece of a file name: letters, digits, ``_``, ``-``
    and inner dots only, never empty, ``.`` or ``..``, at most :data:`MAX_FILE_PART` characters."""
    return _UNSAFE.sub("_", text)[:MAX_FILE_PART].strip("._") or default


def recording_path(directory: Path, name: str, kind: str, ssrc: int, suffix: str) -> Path:
    """``DIR/<name>-<kind>-<ssrc>.<suffix>``, a new file directly inside ``directory``.

    ``name`` and ``kind`` come from the server, so each is made safe (:func:`_safe_part`): no separator
    or ``..`` survives, and the result is checked to lie in ``directory``. An existing file is never
    chosen (a server that announces the same track twice must not overwrite a recording): ``-2``,
    ``-3`` ... are added instead. ConfError if no such name can be found."""
    stem = f"{_safe_part(name, 'peer')}-{_safe_part(kind, 'track')}-{int(ssrc) & 0xFFFFFFFF}"
    folder = directory.resolve()
    for number in range(1, MAX_SAME_NAME + 1):
        path = directory / (f"{stem}.{suffix}" if number == 1 else f"{stem}-{number}.{suffix}")
        if path.resolve().parent != folder:  # cannot happen with the parts above; checked all the same
            raise ConfError(f"refusing to record outside {directory}: {path.name}")
        if not path.exists() and not path.is_symlink():
            return path
    raise ConfError(f"cannot record {stem}: {MAX_SAME_NAME} files of that name exist already")


class RemoteTrack:
    """One remote participant's track, from RTP packets to decoded frames."""

    def __init__(
        self,
        info: Message,
        *,
        local_ssrc: int,
        send_media: SendMedia,
        notify: Notify,
        recorder: EncodedSink | None = None,
        sinks: list[Sink] | None = None,
        ordered: bool = False,
        unprotect: Unprotect | None = None,
        on_downlink: Callable[[int, float], None] | None = None,
    ) -> None:
        self.name = str(info.get("name", ""))
        self.kind = str(info.get("kind", ""))
        self.ssrc = int(info["ssrc"])
        self.codec = str(info.get("codec", ""))
        layers = info.get("layers")
        self.layer_heights = (
            [
                int(layer["height"])
                for layer in layers
                if isinstance(layer, dict) and isinstance(layer.get("height"), int)
            ]
            if isinstance(layers, list)
            else []
        )
        """A simulcast track's layers' heights, lowest first: which one a decoded picture is from."""
        self.told_layer: int | None = None
        """The simulcast layer the server last said it sends us (``layer_switched``)."""
        self.size: tuple[int, int] | None = None
        """The size of the latest decoded picture (it changes when the server switches layers)."""
        self.audio = self.codec.lower() == "opus" or self.kind == "audio"
        clock_rate = 48_000 if self.audio else 90_000
        self.stats = ReceiverStats(self.ssrc, clock_rate)
        self.meter = RateMeter()
        self.ordered = ordered
        """The transport delivers media in order, if at all: never wait for a reordered or resent packet."""
        if self.audio:
            self.jitter = JitterBuffer(clock_rate, ORDERED_AUDIO_DELAY if ordered else adaptive_delay(0.0))
        else:
            self.jitter = JitterBuffer(clock_rate, 0.0 if ordered else TARGET_DELAY, hold=0.0)
        self.depacketizer = None if self.audio else H264Depacketizer()
        self.downlink = DownlinkMonitor(clock_rate) if on_downlink is not None and not self.audio else None
        """Watches a video track's arrivals for a queue building on our downlink; what it finds goes to
        ``on_downlink`` (the ``downlink`` request) once the track is known to be simulcast (the server told
        us its layer), so that the server moves us down a layer at once."""
        self._on_downlink = on_downlink
        self.malformed = 0
        self.dropped = 0
        self.decode_errors = 0
        self.freeze = FreezeMeter()
        """The longest wait between two decoded pictures (video), reported as ``freeze_ms``."""
        self.concealed = 0
        """Audio frames lost and concealed (nothing could rebuild them)."""
        self.red_recovered = 0
        """Audio packets rebuilt from a later packet's redundant (RED) block."""
        self.fec_recovered = 0
        """Audio frames rebuilt from the next packet's in-band FEC data."""
        self.volume = 1.0
        """Playback gain of an audio track (``/volume``: 0 to 2)."""
        self.level: int | None = None
        """The last audio level (RFC 6464, -dBov) the publisher put on a packet."""
        self._lost_frames = 0  # frames lost just before the next packet to decode (decoder thread)
        self._next_adapt = 0.0
        self.keyframe_requests = 0
        self.recorder = recorder
        self._clock_rate = clock_rate
        self._sinks = sinks or []
        self._local_ssrc = local_ssrc
        self._send_media = send_media
        self._notify = notify
        self._queue: asyncio.Queue[AccessUnit | RtpPacket | LostAudio | None] = asyncio.Queue(DECODE_QUEUE)
        self._video_decoder: H264Decoder | None = None
        self._audio_decoder: OpusDecoder | None = None
        self._last_pli = float("-inf")
        self._nacked: dict[int, tuple[float, int]] = {}
        """Sequence number -> when it was last asked for, and how many times."""
        self.resend_delay: float | None = None
        """How long a NACKed packet takes to arrive (smoothed; rising at once), in seconds."""
        self.nacks_sent = 0
        self.rtt: float | None = None
        """Round-trip time to the publisher in seconds, once an XR answer arrived."""
        self._tasks: list[asyncio.Task[None]] = []
        self.closed = False
        self._unprotect = unprotect
        """Decrypts each payload in an E2EE meeting; raises SFrameError (UnknownKey) when it cannot."""
        self.no_key = 0  # packets dropped because their sender's key had not arrived
        self.undecryptable = 0  # packets that failed authentication, replays, or under a wrong key
        self._awaiting_key = False

    def add_sink(self, sink: Sink) -> None:
        """Send this track's decoded frames to ``sink`` too, from the next picture on (the remote-control
        viewer joins a track that is already playing); it is closed with the track."""
        self._sinks = [*self._sinks, sink]  # a new list: the decoder thread may be walking the old one

    def remove_sink(self, sink: Sink) -> bool:
        """Stop feeding ``sink`` (the caller closes it); whether it was fed."""
        if sink not in self._sinks:
            return False
        self._sinks = [s for s in self._sinks if s is not sink]
        return True

    def describe(self) -> Message:
        return {"name": self.name, "kind": self.kind, "ssrc": self.ssrc, "codec": self.codec}

    def start(self) -> None:
        self._notify({"type": "track_started", **self.describe()})
        self._tasks = [
            asyncio.create_task(self._playout(), name=f"playout-{self.ssrc}"),
            asyncio.create_task(self._decode(), name=f"decode-{self.ssrc}"),
            asyncio.create_task(self._report(), name=f"stats-{self.ssrc}"),
        ]
        if self.depacketizer is not None:
            self._request_keyframe(time.monotonic())

    # -- arrival (on the event loop, per packet: keep it light) -----------------------------------------

    def receive(self, packet: RtpPacket, arrival: float | None = None) -> None:
        """A packet of this track, which reached this host at ``arrival`` (monotonic seconds; None:
        now). The arrival is what the jitter buffer, the statistics and the downlink monitor time it by:
        a process that waited for a core reads a burst, which did not queue on the network."""
        if self._unprotect is not None:
            try:
                packet = self._unprotect(packet)
            except UnknownKey:
                self.no_key += 1
                self._awaiting_key = True
                return
            except ProtocolError:
                self.undecryptable += 1
                return
        now = time.monotonic()
        if arrival is not None and arrival < now:
            now = arrival
        self.stats.update(packet, now)
        asked = self._nacked.get(packet.sequence_number) if self._nacked else None
        if asked is not None and asked[1] == 1 and (self.rtt is None or now - asked[0] >= self.rtt):
            # Sooner than a round trip, it is the original arriving late (reordered), not the resend: it
            # says nothing of how long resends take. (Under SRTP the resend that follows is dropped as a
            # replay, so a late original must not stand in for it.) Asked for more than once, the resend
            # may answer any of the asks: it is not timed either.
            self._resent(now - asked[0])
        jitter = self.jitter
        if self.audio:
            self._audio_arrived(packet, now)
            return
        monitor = self.downlink
        if monitor is not None and self._on_downlink is not None:
            told = monitor.arrived(packet.timestamp, len(packet.payload), now)
            if told is not None and self.told_layer is not None:
                self._on_downlink(told, monitor.queued)
        if jitter.push(packet, now) and jitter.due(now):
            for item in jitter.pop(now):
                self._play(item)

    def _audio_arrived(self, packet: RtpPacket, now: float) -> None:
        """Into the jitter buffer: the packet (its RED primary), and the older packet its redundant block
        repeats if that one is still missing; the target delay follows the measured jitter."""
        jitter = self.jitter
        if packet.extension is not None:
            level = read_level(packet)
            if level is not None:
                self.level = level
        recovered: list[RtpPacket] = []
        if packet.payload_type == PT_RED:
            try:
                blocks = unpack_red(packet.payload)
                primary = blocks[-1]
                samples = opus_packet_samples(primary.data)
            except ProtocolError:
                self.malformed += 1
                return
            for block in blocks[:-1]:
                back = block.offset // samples if block.offset % samples == 0 else 0
                if block.data and 1 <= back <= MAX_RED_DISTANCE:
                    recovered.append(
                        RtpPacket(
                            block.payload_type,
                            (packet.sequence_number - back) & 0xFFFF,
                            (packet.timestamp - block.offset) & 0xFFFFFFFF,
                            packet.ssrc,
                            block.data,
                        )
                    )
            packet = RtpPacket(
                primary.payload_type,
                packet.sequence_number,
                packet.timestamp,
                packet.ssrc,
                primary.data,
                packet.marker,
            )
        pushed = jitter.push(packet, now)
        if recovered:
            missing = set(jitter.missing(now))
            for copy in recovered:
                if copy.sequence_number in missing and jitter.push(copy, now):
                    self.red_recovered += 1
        if not self.ordered and now >= self._next_adapt:
            self._next_adapt = now + AUDIO_ADAPT_INTERVAL
            jitter.target_delay = adaptive_delay(self.stats.jitter / self._clock_rate)
        if (pushed or recovered) and jitter.due(now):
            for item in jitter.pop(now):
                self._play(item)

    def key_arrived(self) -> None:
        """The sender's key came: if its packets were dropped waiting for it, ask for a keyframe now."""
        if self._awaiting_key:
            self._awaiting_key = False
            if self.depacketizer is not None:
                self.depacketizer.needs_keyframe = True
                self._last_pli = float("-inf")
                self._request_keyframe(time.monotonic())

    def resend_wait(self) -> float:
        """How long a resend should take to come back (seconds): as measured, but never less than the
        round trip, nor than :data:`FIRST_RESEND_DELAY` until the round trip is known (a packet that
        came back sooner than that may have been a late original, not the resend)."""
        floor = FIRST_RESEND_DELAY if self.rtt is None else self.rtt
        return floor if self.resend_delay is None else max(self.resend_delay, floor)

    def _resent(self, delay: float) -> None:
        """A NACKed packet came back after ``delay``: wait at least that long before giving up on a hole."""
        estimate = self.resend_delay
        if estimate is None or delay > estimate:
            estimate = delay
        else:
            estimate += (delay - estimate) / 8
        self.resend_delay = estimate
        self._wait_for_resends()

    def _wait_for_resends(self) -> None:
        """Hold a hole in the video long enough for the last retry's resend (asked again every
        :data:`NACK_RETRY_AFTER` resend delays), within :data:`MAX_VIDEO_DELAY`; once a resend was timed."""
        if self.ordered or self.audio or self.resend_delay is None:
            return
        wait = self.resend_wait() * (1 + NACK_RETRY_AFTER * NACK_RETRIES) + RESEND_MARGIN
        self.jitter.target_delay = min(MAX_VIDEO_DELAY, max(TARGET_DELAY, wait))

    def sender_report(self, report: SenderReport) -> None:
        self.stats.on_sender_report(report, time.monotonic())

    def extended_report(self, report: ExtendedReport) -> None:
        """The publisher's DLRR answer to our reference time: the round trip, if it is about us."""
        for ssrc, lrr, delay in report.dlrr:
            if ssrc == self._local_ssrc:
                rtt = round_trip_time(compact_ntp(time.time()), lrr, delay)
                if rtt is not None:
                    self.rtt = rtt
                    self._wait_for_resends()

    # -- feedback ---------------------------------------------------------------------------------------

    def _send_rtcp(self, data: bytes) -> None:
        with contextlib.suppress(Exception):  # a closing link: the track is about to end anyway
            self._send_media(data)

    def _send_nacks(self, now: float) -> None:
        if self.audio:
            return  # a resent audio packet would come too late to play: it is concealed instead
        nacked = self._nacked
        retry = self.resend_wait() * NACK_RETRY_AFTER
        missing: list[int] = []
        for seq in self.jitter.missing(now, NACK_MIN_AGE):
            asked = nacked.get(seq)
            if asked is None:
                nacked[seq] = (now, 1)
            elif asked[1] <= NACK_RETRIES and now - asked[0] >= retry:
                nacked[seq] = (now, asked[1] + 1)
            else:
                continue
            missing.append(seq)
        if not missing:
            return
        while len(nacked) > NACK_MEMORY:
            del nacked[next(iter(nacked))]
        for start in range(0, len(missing), MAX_NACK):
            self.nacks_sent += 1
            self._send_rtcp(bytes(Nack(self._local_ssrc, self.ssrc, missing[start : start + MAX_NACK])))

    def receiver_report(self, now: float) -> bytes:
        """A compound of a receiver report about this track and an XR reference time."""
        report = ReceiverReport(self._local_ssrc, [self.stats.report_block(now)])
        return build_compound([report, rrtr(self._local_ssrc, ntp_from_unix(time.time()))])

    # -- playout ----------------------------------------------------------------------------------------

    async def _playout(self) -> None:
        while True:
            now = time.monotonic()
            self._send_nacks(now)
            for item in self.jitter.pop(now):
                self._play(item)
            if (
                self.depacketizer is not None
                and self.depacketizer.needs_keyframe
                and self.stats.packets_received
            ):
                self._request_keyframe(now)
            deadline = self.jitter.deadline()
            delay = PLAYOUT_TICK if deadline is None else min(PLAYOUT_TICK, max(0.002, deadline - now))
            await asyncio.sleep(delay)

    def _play(self, item: RtpPacket | Gap) -> None:
        if self.depacketizer is None:
            self._enqueue(LostAudio(item.count) if isinstance(item, Gap) else item)
            return
        for unit in self.depacketizer.push(item):
            self._enqueue(unit)

    def _enqueue(self, item: AccessUnit | RtpPacket | LostAudio) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.depacketizer is not None:
                self.depacketizer.needs_keyframe = True  # what follows depends on the dropped picture

    def _request_keyframe(self, now: float) -> None:
        if now - self._last_pli < PLI_INTERVAL:
            return
        self._last_pli = now
        self.keyframe_requests += 1
        with contextlib.suppress(Exception):  # a closing link: the track is about to end anyway
            self._send_media(bytes(Pli(self._local_ssrc, self.ssrc)))

    # -- decoding (in a worker thread) ------------------------------------------------------------------

    async def _decode(self) -> None:
        while (item := await self._queue.get()) is not None:
            if isinstance(item, LostAudio):
                self._lost_frames += item.count  # rebuilt or concealed with the packet that follows
                continue
            size = len(item.data) if isinstance(item, AccessUnit) else len(item.payload)
            frames = await asyncio.to_thread(self._process, item)
            now = time.monotonic()
            self.meter.record(now, size, frames)
            if frames and not self.audio:
                self.freeze.picture(now, self.size)

    def _record(self, unit: EncodedUnit) -> None:
        recorder = self.recorder
        if recorder is None:
            return
        try:
            recorder.write(unit)
        except Exception as exc:  # a full disk or a failing sink stops the recording, never the track
            log.warning("recording %s's %s stopped: %s", self.name, self.kind, exc)
            self.recorder = None
            with contextlib.suppress(Exception):
                recorder.close()

    def _process(self, item: AccessUnit | RtpPacket) -> int:
        frames: list[av.VideoFrame] | list[av.AudioFrame]
        if isinstance(item, AccessUnit):
            self._record(
                EncodedUnit("h264", item.data, item.timestamp, self._clock_rate, item.keyframe, time.time())
            )
            if self._video_decoder is None:
                self._video_decoder = H264Decoder()
            frames = self._video_decoder.decode(item.data)
            self.decode_errors = self._video_decoder.errors
            if frames:
                self.size = (frames[-1].width, frames[-1].height)
        else:
            self._record(
                EncodedUnit("opus", item.payload, item.timestamp, self._clock_rate, True, time.time())
            )
            if self._audio_decoder is None:
                self._audio_decoder = OpusDecoder()
            decoder = self._audio_decoder
            audio: list[av.AudioFrame] = []
            lost, self._lost_frames = self._lost_frames, 0
            if lost:  # in order: concealment for the older frames, then FEC for the one just before
                fec = libopus.has_fec(item.payload)
                concealed = lost - 1 if fec else lost
                for _ in range(min(concealed, MAX_CONCEALED)):
                    audio += decoder.conceal()
                self.concealed += concealed
                if fec:
                    audio += decoder.decode_fec(item.payload)
                    self.fec_recovered += 1
            frames = audio + decoder.decode(item.payload)
            self.decode_errors = decoder.errors
            if self.volume != 1.0:
                frames = [scale_volume(frame, self.volume) for frame in frames]
        for sink in self._sinks:
            for frame in frames:
                sink.write(frame)
        return len(frames)

    # -- statistics -------------------------------------------------------------------------------------

    @property
    def layer(self) -> int:
        """Which simulcast layer the pictures come from (0 the lowest): as the server last said
        (``layer_switched``), else the one nearest their height; 0 for a track of one layer."""
        if self.told_layer is not None:
            return self.told_layer
        if self.size is None or not self.layer_heights:
            return 0
        height = self.size[1]
        return min(range(len(self.layer_heights)), key=lambda i: abs(self.layer_heights[i] - height))

    def stats_event(self) -> Message:
        now = time.monotonic()
        figures = track_stats(now, self.meter, self.stats).as_dict()
        figures["fps"] = round(float(figures["fps"]), 2)
        figures["bitrate"] = round(float(figures["bitrate"]))
        figures["loss_rate"] = round(float(figures["loss_rate"]), 4)
        figures["jitter_ms"] = round(float(figures["jitter_ms"]), 2)
        return {
            "type": "track_stats",
            **self.describe(),
            **figures,
            "packets": self.stats.packets_received,
            "malformed": self.malformed,
            "dropped": self.dropped,
            "decode_errors": self.decode_errors,
            "keyframe_requests": self.keyframe_requests,
            "nacks": self.nacks_sent,
            **({"rtt_ms": round(self.rtt * 1000, 1)} if self.rtt is not None else {}),
            **(
                {
                    "recovered": self.red_recovered + self.fec_recovered,
                    "red_recovered": self.red_recovered,
                    "fec_recovered": self.fec_recovered,
                    "concealed": self.concealed,
                    "late": self.jitter.late,
                    "target_delay_ms": round(self.jitter.target_delay * 1000, 1),
                    **({"level": self.level} if self.level is not None else {}),
                }
                if self.audio
                else {
                    "width": self.size[0],
                    "height": self.size[1],
                    "layer": self.layer,
                    "freeze_ms": round((self.freeze.take(now) or 0.0) * 1000),
                    **(
                        {"switch_freeze_ms": round(switched * 1000)}
                        if (switched := self.freeze.take_switch()) is not None
                        else {}
                    ),
                }
                if self.size is not None
                else {}
            ),
            **(
                {"no_key": self.no_key, "undecryptable": self.undecryptable}
                if self._unprotect is not None
                else {}
            ),
        }

    async def _report(self) -> None:
        next_rtcp = 0.0
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            now = time.monotonic()
            if self.stats.valid and now >= next_rtcp:
                next_rtcp = now + RTCP_INTERVAL
                self._send_rtcp(self.receiver_report(now))
            self._notify(self.stats_event())

    async def close(self, reason: str) -> None:
        """Stop the track, finish any recording, and report ``track_ended``."""
        if self.closed:
            return
        self.closed = True
        playout, decode, report = self._tasks or (None, None, None)
        for task in (playout, report):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if decode is not None:
            # Let the worker finish the unit in hand, so the recording is not closed under its feet.
            while self._queue.full():
                self._queue.get_nowait()
            self._queue.put_nowait(None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(decode), 2.0)
            decode.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await decode
        self._notify({**self.stats_event(), "type": "track_ended", "reason": reason})
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.close)
        for sink in self._sinks:
            await asyncio.to_thread(sink.close)


def read_level(packet: RtpPacket) -> int | None:
    """The audio level (RFC 6464) in a parsed packet's header extension, or None."""
    level = read_audio_level(bytes(RtpPacket(0, 0, 0, 0, extension=packet.extension)))
    return None if level is None else level[0]


def scale_volume(frame: av.AudioFrame, gain: float) -> av.AudioFrame:
    """A 16-bit audio frame ``gain`` times as loud (clipped to full scale)."""
    samples = frame.to_ndarray().astype(np.float32) * gain
    scaled = av.AudioFrame.from_ndarray(
        np.clip(samples, -32768, 32767).astype(np.int16), format=frame.format.name, layout=frame.layout.name
    )
    scaled.sample_rate = frame.sample_rate
    scaled.pts = frame.pts
    if frame.time_base is not None:
        scaled.time_base = frame.time_base
    return scaled
