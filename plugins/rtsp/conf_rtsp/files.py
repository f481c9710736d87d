"""Files of the served folder as RTSP presentations: their SDP, and their streams sent in real time.

The first video and first audio stream of a file are served. H.264 and Opus go out as they are in the
file (RFC 6184, RFC 7587); MJPEG goes out as RFC 2435 JPEG (payload type 26), each picture coded again
with the standard Huffman tables if the file's are not. Other codecs are decoded and encoded to H.264 or
Opus with conf's own encoders. A :class:`FileStream` demuxes in a thread, paced by the file's
timestamps, and hands each packet to the event loop; PAUSE holds it, PLAY carries on where it stopped.

Probing a file (opening it with FFmpeg to learn its streams) never runs on the event loop:
:class:`MediaProbes` does it in a small pool of threads, with a timeout, once per version of a file (its
path, modification time and size), however many players ask.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from conf_cli import ConfError, ProtocolError
from conf_cli.media.codecs import H264Encoder, OpusEncoder
from conf_cli.media.h264 import H264Packetizer, split_annexb
from conf_cli.media.rtp_stream import RtpSender
from conf_cli.protocol.rtcp import Bye, build_compound
from conf_cli.protocol.sdp import MediaDescription, SessionDescription

from .jpeg_rtp import PT_JPEG, JpegPacketizer, parse_jpeg

log = logging.getLogger("conf.rtsp")

PT_H264 = 96
PT_OPUS = 111
MTU = 1200
NAL_IDR, NAL_SPS, NAL_PPS = 5, 7, 8
SENDER_REPORT_INTERVAL = 2.0
PROBE_TIMEOUT = 10.0
"""Seconds a request waits for a file to be probed."""
PROBE_THREADS = 2
PROBE_CACHE = 256
"""Probed files (and probe failures) remembered."""


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc).strip() or type(exc).__name__


@dataclass
class FileTrack:
    """One served stream of a file."""

    index: int
    kind: str  # "video" or "audio"
    encoding: str  # "H264", "JPEG" or "opus"
    copy: bool
    """Sent as stored (H.264, Opus, MJPEG) rather than decoded and encoded again."""
    parameter_sets: list[bytes] = field(default_factory=list)
    nal_length: int = 0
    """The size of the NAL length prefix of H.264 stored as avcC (MP4); 0 for Annex B."""

    @property
    def payload_type(self) -> int:
        return {"H264": PT_H264, "JPEG": PT_JPEG, "opus": PT_OPUS}[self.encoding]

    @property
    def clock_rate(self) -> int:
        return 48_000 if self.encoding == "opus" else 90_000

    @property
    def control(self) -> str:
        return f"trackID={self.index}"

    def media(self) -> MediaDescription:
        pt = str(self.payload_type)
        attributes: list[tuple[str, str | None]] = []
        if self.encoding == "H264":
            fmtp = "packetization-mode=1"
            if len(self.parameter_sets) >= 2 and len(self.parameter_sets[0]) >= 4:
                sps = self.parameter_sets[0]
                fmtp += f";profile-level-id={sps[1:4].hex().upper()}"
                sprop = ",".join(base64.b64encode(p).decode() for p in self.parameter_sets)
                fmtp += f";sprop-parameter-sets={sprop}"
            attributes += [("rtpmap", f"{pt} H264/90000"), ("fmtp", f"{pt} {fmtp}")]
        elif self.encoding == "opus":
            attributes += [("rtpmap", f"{pt} opus/48000/2")]
        else:
            attributes += [("rtpmap", f"{pt} JPEG/90000")]
        attributes.append(("control", self.control))
        return MediaDescription(self.kind, 0, "RTP/AVP", [pt], attributes)


def _avcc(extradata: bytes) -> tuple[int, list[bytes]]:
    """NAL length size and parameter sets of an avcC record (ISO/IEC 14496-15 5.2.4.1)."""
    if len(extradata) < 7 or extradata[0] != 1:
        raise ProtocolError("not an avcC record")
    nal_length = (extradata[4] & 3) + 1
    sets: list[bytes] = []
    pos = 5
    for count_mask in (0x1F, 0xFF):
        if pos >= len(extradata):
            break
        count = extradata[pos] & count_mask
        pos += 1
        for _ in range(count):
            size = int.from_bytes(extradata[pos : pos + 2], "big")
            sets.append(bytes(extradata[pos + 2 : pos + 2 + size]))
            pos += 2 + size
    return nal_length, sets


def _split_lengths(data: bytes, size: int) -> list[bytes]:
    nals: list[bytes] = []
    pos = 0
    while pos + size <= len(data):
        length = int.from_bytes(data[pos : pos + size], "big")
        pos += size
        if length == 0 or pos + length > len(data):
            break
        nals.append(data[pos : pos + length])
        pos += length
    return nals


class MediaFile:
    """A file of the served folder, probed: its streams and duration."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            container = av.open(str(path), "r")
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise ConfError(f"cannot read {path.name}: {_reason(exc)}") from None
        try:
            self.tracks: list[FileTrack] = []
            self.duration = float(container.duration / av.time_base) if container.duration else None
            if container.streams.video:
                self.tracks.append(self._video(container.streams.video[0]))
            if container.streams.audio:
                stream = container.streams.audio[0]
                name = stream.codec_context.name
                self.tracks.append(FileTrack(stream.index, "audio", "opus", name == "opus"))
        finally:
            container.close()
        if not self.tracks:
            raise ConfError(f"{path.name} has no video or audio stream")

    @staticmethod
    def _video(stream: Any) -> FileTrack:
        name = stream.codec_context.name
        if name == "mjpeg":
            return FileTrack(stream.index, "video", "JPEG", True)
        if name != "h264":
            return FileTrack(stream.index, "video", "H264", False)
        extradata = bytes(stream.codec_context.extradata or b"")
        if extradata[:1] == b"\x01":
            nal_length, sets = _avcc(extradata)
            return FileTrack(stream.index, "video", "H264", True, sets, nal_length)
        sets = [n for n in split_annexb(extradata) if n and n[0] & 0x1F in (NAL_SPS, NAL_PPS)]
        return FileTrack(stream.index, "video", "H264", True, sets)

    def describe(self, base: str, host: str) -> SessionDescription:
        attributes: list[tuple[str, str | None]] = [("control", "*")]
        if self.duration:
            attributes.append(("range", f"npt=0-{self.duration:.3f}"))
        family = "IP6" if ":" in host else "IP4"
        return SessionDescription(
            origin=f"- {int(time.time())} 1 IN {family} {host}",
            name=self.path.name,
            connection=f"IN {family} {'::' if family == 'IP6' else '0.0.0.0'}",
            attributes=attributes,
            media=[track.media() for track in self.tracks],
        )


_ProbeKey = tuple[str, int, int]


class MediaProbes:
    """Files probed in worker threads and remembered by (path, mtime, size): one probe per file version.

    Requests for a file being probed share that probe. A probe that outlasts ``timeout`` fails the
    requests waiting for it (its thread finishes on its own; the pool has ``threads`` of them, so slow
    files delay other probes, never the event loop). Failures are remembered like successes, until the
    file changes.
    """

    def __init__(
        self, timeout: float = PROBE_TIMEOUT, threads: int = PROBE_THREADS, size: int = PROBE_CACHE
    ) -> None:
        self.timeout = timeout
        self.size = size
        self.probed = 0
        """Files opened to probe them, for the statistics (and the tests)."""
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="conf-rtsp-probe")
        self._known: OrderedDict[_ProbeKey, asyncio.Future[MediaFile]] = OrderedDict()

    async def get(self, path: Path) -> MediaFile:
        """The probed file at ``path``; :class:`ConfError` if it cannot be read or takes too long."""
        try:
            stat = path.stat()
        except OSError as exc:
            raise ConfError(f"cannot read {path.name}: {_reason(exc)}") from None
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        future = self._known.get(key)
        if future is None:
            for old in [k for k in self._known if k[0] == key[0]]:  # an earlier version of the file
                del self._known[old]
            future = asyncio.get_running_loop().run_in_executor(self._pool, self._probe, path)
            future.add_done_callback(lambda f: f.cancelled() or f.exception())  # seen, if never awaited
            self._known[key] = future
            while len(self._known) > self.size:
                self._known.popitem(last=False)
        else:
            self._known.move_to_end(key)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.timeout)
        except TimeoutError:
            raise ConfError(f"{path.name} could not be read within {self.timeout:g} s") from None

    def _probe(self, path: Path) -> MediaFile:
        self.probed += 1
        return MediaFile(path)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._known.clear()


class _Converter:
    """Turns one stream's demuxed packets into (RTP payloads, media ticks, marker) units. In the thread."""

    def __init__(self, track: FileTrack, stream: Any) -> None:
        self.track = track
        self.time_base: Fraction = stream.time_base or Fraction(1, 90_000)
        self.start = stream.start_time or 0
        self.h264 = H264Packetizer(MTU) if track.encoding == "H264" else None
        self.jpeg = JpegPacketizer(MTU) if track.encoding == "JPEG" else None
        self.decoder: Any = None if track.copy else stream.codec_context
        self.video_encoder: H264Encoder | None = None
        self.audio_encoder: OpusEncoder | None = (
            None if track.copy or track.kind != "audio" else OpusEncoder()
        )
        self.recoder: Any = None
        self.jpeg_decoder: Any = None
        self.rate = float(stream.average_rate or 25) if track.kind == "video" else 50.0

    def reset(self) -> None:
        """Forget decoding state after a seek."""
        if self.decoder is not None:
            with contextlib.suppress(AttributeError):
                self.decoder.flush_buffers()

    def ticks(self, pts: int | None) -> int:
        if pts is None:
            return 0
        return round((pts - self.start) * self.time_base * self.track.clock_rate)

    def convert(self, packet: av.Packet) -> list[tuple[list[bytes], int, bool]]:
        track = self.track
        if not track.copy:
            return self._transcode(packet)
        data = bytes(packet)
        ticks = self.ticks(packet.pts)
        if track.encoding == "opus":
            return [([data], ticks, False)]
        if track.encoding == "JPEG":
            return [(self._jpeg_payloads(data), ticks, True)]
        assert self.h264 is not None
        nals = _split_lengths(data, track.nal_length) if track.nal_length else split_annexb(data)
        if any(n and n[0] & 0x1F == NAL_IDR for n in nals) and not any(
            n and n[0] & 0x1F == NAL_SPS for n in nals
        ):
            nals = track.parameter_sets + nals  # every keyframe carries its parameter sets in band
        return [(self.h264.packetize(nals), ticks, True)]

    def _jpeg_payloads(self, data: bytes) -> list[bytes]:
        assert self.jpeg is not None
        try:
            picture = parse_jpeg(data)
            if picture.standard_huffman:
                return self.jpeg.packetize(picture)
        except ProtocolError:
            pass
        return self.jpeg.packetize(parse_jpeg(self._recode_jpeg(data)))

    def _recode_jpeg(self, data: bytes) -> bytes:
        """Code a picture again as baseline 4:2:0 with the standard Huffman tables."""
        if self.jpeg_decoder is None:
            self.jpeg_decoder = av.CodecContext.create("mjpeg", "r")
        frames = self.jpeg_decoder.decode(av.Packet(data))
        if not frames:
            raise ProtocolError("a picture of the file does not decode")
        frame = frames[0]
        if self.recoder is None:
            self.recoder = av.CodecContext.create("mjpeg", "w")
            self.recoder.width, self.recoder.height = frame.width, frame.height
            self.recoder.pix_fmt = "yuvj420p"
            self.recoder.time_base = Fraction(1, 90_000)
            self.recoder.options = {"huffman": "default", "qscale": "3"}
            self.recoder.flags |= av.codec.context.Flags.qscale
            self.recoder.global_quality = 3 * 118  # FF_QP2LAMBDA
        picture = frame.reformat(format="yuvj420p")
        picture.pts = None
        return b"".join(bytes(p) for p in self.recoder.encode(picture))

    def _transcode(self, packet: av.Packet) -> list[tuple[list[bytes], int, bool]]:
        units: list[tuple[list[bytes], int, bool]] = []
        for frame in self.decoder.decode(packet):
            when = float((frame.pts or 0) * (frame.time_base or self.time_base))
            if self.track.kind == "audio":
                assert self.audio_encoder is not None
                for unit in self.audio_encoder.encode(frame, when):
                    units.append(([unit.data], unit.pts, False))
            else:
                if self.video_encoder is None:
                    self.video_encoder = H264Encoder(frame.width, frame.height, self.rate, 2_000_000)
                for unit in self.video_encoder.encode(frame, when):
                    assert self.h264 is not None
                    units.append((self.h264.packetize(split_annexb(unit.data)), unit.pts, True))
        return units


Send = Callable[[int, bytes, bool], None]
"""``send(stream index, packet, rtcp)``: called on the event loop."""


class FileStream:
    """A file's streams sent as RTP in real time from a thread; ``play``, ``pause`` and ``close``."""

    def __init__(self, media: MediaFile, indexes: list[int], send: Send) -> None:
        self.media = media
        self.tracks = [t for t in media.tracks if t.index in indexes]
        self.senders = {t.index: RtpSender(_new_ssrc(), t.payload_type, t.clock_rate) for t in self.tracks}
        self._send = send
        self._loop = asyncio.get_running_loop()
        self._playing = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.position = 0.0
        """Media time (seconds) of the last packet sent."""
        self.ended = False
        self.error: str | None = None
        self._lock = threading.Lock()
        self._seek_to: float | None = None

    def rtp_info(self, base: str) -> str:
        parts = []
        for track in self.tracks:
            sender = self.senders[track.index]
            ticks = round(self.position * track.clock_rate)
            parts.append(
                f"url={base}/{track.control};seq={sender.sequence_number};rtptime={sender.rtp_timestamp(ticks)}"
            )
        return ",".join(parts)

    def seek(self, seconds: float) -> None:
        """Go on from ``seconds`` (the keyframe at or before it); a file played to its end starts again."""
        with self._lock:
            self._seek_to = seconds
            self.position = seconds
        if self._thread is not None and not self._thread.is_alive():
            self._thread = None
            self.ended = False

    def _take_seek(self) -> float | None:
        with self._lock:
            target, self._seek_to = self._seek_to, None
            return target

    def play(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="conf-rtsp-file", daemon=True)
            self._thread.start()
        self._playing.set()

    def pause(self) -> None:
        self._playing.clear()

    def close(self) -> None:
        self._stop.set()
        self._playing.set()

    # -- the thread -----------------------------------------------------------------------------------

    def _deliver(self, index: int, packets: list[bytes], rtcp: bool = False) -> None:
        if self._stop.is_set():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: the server is stopping
            self._loop.call_soon_threadsafe(self._hand_over, index, packets, rtcp)

    def _hand_over(self, index: int, packets: list[bytes], rtcp: bool) -> None:
        if not self._stop.is_set():
            for packet in packets:
                self._send(index, packet, rtcp)

    def _run(self) -> None:
        try:
            self._stream()
        except Exception as exc:  # a damaged file ends its stream, never the server
            self.error = _reason(exc)
            log.warning("RTSP: %s stopped: %s", self.media.path.name, self.error)
        finally:
            self.ended = True
            if not self._stop.is_set():  # the end: a report and a BYE (a compound starts with a report)
                for track in self.tracks:
                    sender = self.senders[track.index]
                    report = sender.sender_report(time.time(), round(self.position * track.clock_rate))
                    self._deliver(track.index, [build_compound([report, Bye([sender.ssrc])])], rtcp=True)

    def _stream(self) -> None:
        container = av.open(str(self.media.path), "r")
        try:
            streams = [container.streams[t.index] for t in self.tracks]
            converters = {t.index: _Converter(t, container.streams[t.index]) for t in self.tracks}
            origin: float | None = None
            last_report = 0.0
            for packet in container.demux(*streams):
                if self._stop.is_set():
                    return
                target = self._take_seek()
                if target is not None:  # this packet is from before the seek: dropped
                    container.seek(round(target * av.time_base), backward=True, any_frame=False)
                    for converter in converters.values():
                        converter.reset()
                    origin = None
                    continue
                if packet.size == 0:
                    continue
                converter = converters[packet.stream.index]
                stamp = packet.dts if packet.dts is not None else packet.pts
                media_time = float(((stamp or 0) - converter.start) * converter.time_base)
                if not self._playing.is_set():
                    paused_at = time.monotonic()
                    self._playing.wait()
                    if origin is not None:
                        origin += time.monotonic() - paused_at
                    if self._stop.is_set():
                        return
                now = time.monotonic()
                if origin is None:
                    origin = now - media_time
                delay = origin + media_time - now
                if delay > 0 and self._stop.wait(delay):
                    return
                if not self._playing.is_set():
                    continue_time = time.monotonic()
                    self._playing.wait()
                    origin += time.monotonic() - continue_time
                self.position = media_time
                sender = self.senders[packet.stream.index]
                for payloads, ticks, marker in converter.convert(packet):
                    self._deliver(packet.stream.index, sender.packetize(payloads, ticks, marker=marker))
                if time.monotonic() - last_report > SENDER_REPORT_INTERVAL:
                    last_report = time.monotonic()
                    self._reports(converters)
        finally:
            container.close()

    def _reports(self, converters: dict[int, _Converter]) -> None:
        for track in self.tracks:
            sender = self.senders[track.index]
            ticks = round(self.position * track.clock_rate)
            report = sender.sender_report(time.time(), ticks)
            self._deliver(track.index, [build_compound([report])], rtcp=True)


def _new_ssrc() -> int:
    return secrets.randbelow((1 << 32) - 1) + 1
