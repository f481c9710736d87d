"""PyAV codecs for real-time media: H.264 (libx264, low latency) and Opus (48 kHz mono, 20 ms).

Encoders take decoded frames (plain PyAV frames or :class:`~conf_cli.media.source.CapturedFrame`) of any
size and format, convert them as needed, and return :class:`~conf_cli.media.source.EncodedUnit` objects
ready for an RTP packetiser or a recorder. Decoders take the payload bytes back and never raise on
damaged input: they return an empty list. Encoding and decoding are blocking CPU work: run them in a
worker thread (``asyncio.to_thread``) when called from an event loop.
"""

from __future__ import annotations

import time
from collections import deque
from fractions import Fraction
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from av.audio.fifo import AudioFifo
from av.audio.resampler import AudioResampler
from av.video.frame import PictureType
from av.video.reformatter import VideoReformatter

from conf_cli.media import libopus
from conf_cli.media.audio_level import level_dbov
from conf_cli.media.source import CapturedFrame, EncodedUnit

VIDEO_CLOCK_RATE = 90_000
OPUS_SAMPLE_RATE = 48_000
OPUS_FRAME_SAMPLES = 960  # 20 ms at 48 kHz
_VIDEO_TIME_BASE = Fraction(1, VIDEO_CLOCK_RATE)
_OPUS_TIME_BASE = Fraction(1, OPUS_SAMPLE_RATE)
RATE_BUFFER_SECONDS = 0.5
"""The H.264 encoder's rate buffer (VBV), in seconds of its bit rate: keyframes come out at about a quarter
to a third of a second of the bit rate (half a second with a one-second buffer), so a keyframe crosses a
link that just carries its stream in that time (with a one-second buffer a 640x360 keyframe at 400 kbit/s
was 24 kB, half a second on a 400 kbit/s link: a freeze at every layer switch there). Keyframes come out a
little softer."""


def _unwrap(
    frame: av.VideoFrame | av.AudioFrame | CapturedFrame, capture_time: float | None
) -> tuple[av.VideoFrame | av.AudioFrame, float]:
    if isinstance(frame, CapturedFrame):
        return frame.frame, frame.capture_time if capture_time is None else capture_time
    return frame, time.time() if capture_time is None else capture_time


def annexb_nal_types(data: bytes) -> list[int]:
    """The NAL unit types in an Annex B byte string, in order (5 = IDR slice, 7 = SPS, 8 = PPS)."""
    types = []
    start = data.find(b"\x00\x00\x01")
    while start >= 0 and start + 3 < len(data):
        types.append(data[start + 3] & 0x1F)
        start = data.find(b"\x00\x00\x01", start + 3)
    return types


ONE_THREAD_PIXELS = 640 * 480
"""A picture of at most this many pixels is encoded on one thread (``threads=1``); larger ones on x264's
own choice (slices across the cores, for the lowest latency). Slice threads on a small picture cost more
CPU than they save time: a 640x360 simulcast layer took 0.94 ms of CPU a frame with them, 0.73 alone, and
320x180 0.37 against 0.22 (libwebrtc's encoders choose one thread at these sizes too)."""


def encoder_threads(width: int, height: int) -> int:
    """libx264's ``threads`` for a ``width`` x ``height`` picture: 1 for a small one, else 0 (automatic)."""
    return 1 if width * height <= ONE_THREAD_PIXELS else 0


class H264Encoder:
    """libx264 tuned for conferencing: ultrafast, zerolatency, no B-frames, constrained baseline.

    Every keyframe is an IDR preceded by SPS and PPS (so a receiver can join at any keyframe), one comes
    every ``keyframe_interval`` seconds, and :meth:`request_keyframe` forces the next frame to be one.
    Output timestamps are 90 kHz ticks since the first frame, taken from the frames' capture times. Its rate
    buffer is :data:`RATE_BUFFER_SECONDS` of the bit rate (what bounds a keyframe's size).
    """

    def __init__(
        self,
        width: int,
        height: int,
        fps: float = 30,
        bitrate: int = 2_000_000,
        keyframe_interval: float = 2.0,
    ) -> None:
        if width < 16 or height < 16:
            raise ValueError(f"video size {width}x{height} is too small (16x16 at least)")
        self.width = width - width % 2
        self.height = height - height % 2
        self.fps = fps
        self.keyframe_interval = keyframe_interval
        self._bitrate = bitrate
        self._reformatter = VideoReformatter()
        self._force_keyframe = False
        self._origin: float | None = None
        self._last_pts = -1
        self._capture_times: dict[int, float] = {}
        self._codec = self._open_codec()

    def _open_codec(self) -> av.VideoCodecContext:
        codec = av.CodecContext.create("libx264", "w")
        assert isinstance(codec, av.VideoCodecContext)
        codec.width = self.width
        codec.height = self.height
        codec.pix_fmt = "yuv420p"
        codec.time_base = _VIDEO_TIME_BASE
        codec.framerate = Fraction(self.fps).limit_denominator(1001)
        codec.bit_rate = self._bitrate
        keyint = max(1, round(self.fps * self.keyframe_interval))
        codec.gop_size = keyint
        codec.max_b_frames = 0
        kbps = max(1, self._bitrate // 1000)
        buffer = max(1, round(kbps * RATE_BUFFER_SECONDS))
        codec.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": "baseline",
            "forced-idr": "1",
            "x264-params": (
                f"repeat-headers=1:annexb=1:bframes=0:keyint={keyint}:min-keyint={keyint}:scenecut=0"
                f":vbv-maxrate={kbps}:vbv-bufsize={buffer}:threads={encoder_threads(self.width, self.height)}"
            ),
        }
        codec.open()
        return codec

    @property
    def bitrate(self) -> int:
        """The target bit rate in bit/s."""
        return self._bitrate

    def set_bitrate(self, bitrate: int) -> None:
        """Change the target bit rate; the encoder restarts, so the next frame is a keyframe."""
        if bitrate == self._bitrate:
            return
        self._bitrate = bitrate
        self._codec = self._open_codec()

    def request_keyframe(self) -> None:
        """Make the next encoded frame an IDR keyframe (with SPS/PPS), e.g. when a receiver joins."""
        self._force_keyframe = True

    def encode(
        self, frame: av.VideoFrame | CapturedFrame, capture_time: float | None = None
    ) -> list[EncodedUnit]:
        """Encode one frame; return the access units it completes (one, with zerolatency).

        ``capture_time`` defaults to the :class:`CapturedFrame`'s, else to now. A frame that already has
        the configured size and ``yuv420p`` format is encoded as is (its ``pts`` is overwritten).
        """
        picture, when = _unwrap(frame, capture_time)
        if not isinstance(picture, av.VideoFrame):
            raise TypeError("H264Encoder.encode needs a video frame")
        if self._origin is None:
            self._origin = when
        pts = max(round((when - self._origin) * VIDEO_CLOCK_RATE), self._last_pts + 1)
        self._last_pts = pts
        yuv = self._reformatter.reformat(picture, self.width, self.height, "yuv420p")
        yuv.pts = pts
        yuv.time_base = _VIDEO_TIME_BASE
        if self._force_keyframe:
            yuv.pict_type = PictureType.I
            self._force_keyframe = False
        else:
            yuv.pict_type = PictureType.NONE
        self._capture_times[pts] = when
        return self._units(self._codec.encode(yuv))

    def flush(self) -> list[EncodedUnit]:
        """Drain the encoder at the end of a stream (nothing is held back with zerolatency)."""
        return self._units(self._codec.encode(None))

    def _units(self, packets: list[av.Packet]) -> list[EncodedUnit]:
        units = []
        for packet in packets:
            pts = packet.pts if packet.pts is not None else self._last_pts
            when = self._capture_times.pop(pts, time.time())
            units.append(
                EncodedUnit("h264", bytes(packet), pts, VIDEO_CLOCK_RATE, bool(packet.is_keyframe), when)
            )
        if len(self._capture_times) > 64:  # frames the encoder dropped: forget them
            for stale in sorted(self._capture_times)[:-16]:
                del self._capture_times[stale]
        return units


class H264Decoder:
    """Decode H.264 access units (Annex B) to frames, without frame-threading delay.

    Damaged or partial input yields ``[]`` (or concealed frames); :meth:`decode` never raises.
    """

    def __init__(self) -> None:
        self._codec = av.CodecContext.create("h264", "r")
        self._codec.thread_type = "SLICE"
        self.errors = 0

    def decode(self, annexb: bytes) -> list[av.VideoFrame]:
        """Decode one access unit; return the frames it completes (usually one)."""
        frames = _decode_quietly(self, annexb)
        return [f for f in frames if isinstance(f, av.VideoFrame)]


class OpusEncoder:
    """Opus at 48 kHz mono in 20 ms packets, from audio frames of any rate, layout and length.

    Input is resampled to 48 kHz mono and buffered until a whole 960-sample frame is ready, so a call may
    return zero, one or several units. Unit timestamps count samples (48 kHz) from the first one, and each
    unit's capture time is that of its first sample; each unit's ``level`` is its audio's level in -dBov
    (RFC 6464), measured before encoding. libopus (:mod:`conf_cli.media.libopus`) encodes with in-band FEC
    (``fec``, sized for ``packet_loss`` percent) and, with ``dtx``, discontinuous transmission: a frame of
    silence gives no unit at all (the next unit's timestamp jumps), except the short packet libopus sends
    every 400 ms to keep the receiver's comfort noise going.
    """

    def __init__(
        self,
        bitrate: int = 32_000,
        application: str = "voip",
        *,
        fec: bool = True,
        dtx: bool = False,
        packet_loss: int = 10,
    ) -> None:
        self._bitrate = bitrate
        self.application = application
        self.fec = fec
        self.dtx = dtx
        self.packet_loss = packet_loss
        self.silent_frames = 0
        """Frames not sent because DTX found them silent."""
        self._resampler = AudioResampler(format="s16", layout="mono", rate=OPUS_SAMPLE_RATE)
        self._fifo = AudioFifo()
        self._samples_in = 0  # samples written into the FIFO so far
        self._samples_out = 0  # samples taken out of the FIFO so far
        self._chunks: deque[tuple[int, float]] = deque(maxlen=256)  # (first sample, capture time)
        self._codec = self._open_codec()

    def _open_codec(self) -> libopus.Encoder:
        return libopus.Encoder(
            self._bitrate, self.application, fec=self.fec, dtx=self.dtx, packet_loss=self.packet_loss
        )

    @property
    def bitrate(self) -> int:
        """The target bit rate in bit/s."""
        return self._bitrate

    def set_bitrate(self, bitrate: int) -> None:
        """Change the target bit rate from the next 20 ms frame on."""
        if bitrate != self._bitrate:
            self._bitrate = bitrate
            self._codec.set_bitrate(bitrate)

    def encode(
        self, frame: av.AudioFrame | CapturedFrame, capture_time: float | None = None
    ) -> list[EncodedUnit]:
        """Buffer one audio frame; return the Opus packets for every complete 20 ms of audio."""
        audio, when = _unwrap(frame, capture_time)
        if not isinstance(audio, av.AudioFrame):
            raise TypeError("OpusEncoder.encode needs an audio frame")
        audio.pts = None
        self._chunks.append((self._samples_in, when))
        for resampled in self._resampler.resample(audio):
            resampled.pts = None
            self._samples_in += resampled.samples
            self._fifo.write(resampled)
        units: list[EncodedUnit] = []
        while self._fifo.samples >= OPUS_FRAME_SAMPLES:
            chunk = self._fifo.read(OPUS_FRAME_SAMPLES)
            assert chunk is not None
            start = self._samples_out
            self._samples_out += OPUS_FRAME_SAMPLES
            pcm: npt.NDArray[np.int16] = chunk.to_ndarray().reshape(-1).astype(np.int16, copy=False)
            data = self._codec.encode(pcm)
            if self.dtx and len(data) <= libopus.DTX_PACKET_BYTES:
                self.silent_frames += 1
                continue
            units.append(
                EncodedUnit(
                    "opus",
                    data,
                    start,
                    OPUS_SAMPLE_RATE,
                    True,
                    self._time_of(start),
                    OPUS_FRAME_SAMPLES,
                    level_dbov(pcm),
                )
            )
        return units

    def _time_of(self, sample: int) -> float:
        first, when = self._chunks[0]
        for chunk_first, chunk_time in self._chunks:
            if chunk_first > sample:
                break
            first, when = chunk_first, chunk_time
        while len(self._chunks) > 1 and self._chunks[1][0] <= sample:
            self._chunks.popleft()
        return when + (sample - first) / OPUS_SAMPLE_RATE


class OpusDecoder:
    """Decode Opus packets to 48 kHz mono frames with libopus; damaged packets yield ``[]`` and never raise.

    :meth:`decode_fec` rebuilds a lost frame from the in-band FEC data of the packet after it, and
    :meth:`conceal` fills a lost frame nothing can rebuild with Opus packet loss concealment.
    """

    def __init__(self) -> None:
        self._codec = libopus.Decoder()
        self.errors = 0
        self._samples = 0

    def _frame(self, pcm: npt.NDArray[np.int16]) -> list[av.AudioFrame]:
        if pcm.size == 0:
            return []
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = OPUS_SAMPLE_RATE
        frame.pts = self._samples
        frame.time_base = _OPUS_TIME_BASE
        self._samples += pcm.size
        return [frame]

    def decode(self, packet: bytes) -> list[av.AudioFrame]:
        """Decode one Opus packet (usually 20 ms: 960 samples)."""
        if not packet:
            return []
        try:
            return self._frame(self._codec.decode(packet))
        except libopus.OpusError:
            self.errors += 1
            return []

    def decode_fec(self, packet: bytes, samples: int = OPUS_FRAME_SAMPLES) -> list[av.AudioFrame]:
        """The frame before ``packet`` (``samples`` long), rebuilt from ``packet``'s in-band FEC data (or
        concealed by libopus if it has none)."""
        try:
            return self._frame(self._codec.decode(packet, fec=True, samples=samples))
        except libopus.OpusError:
            self.errors += 1
            return []

    def conceal(self, samples: int = OPUS_FRAME_SAMPLES) -> list[av.AudioFrame]:
        """``samples`` of packet loss concealment for a lost frame."""
        try:
            return self._frame(self._codec.conceal(samples))
        except libopus.OpusError:
            self.errors += 1
            return []


def _decode_quietly(decoder: H264Decoder, data: bytes) -> list[Any]:
    """Decode one packet with the decoder's codec; damaged input only counts in ``errors``, never raises."""
    if not data:
        return []
    try:
        return list(decoder._codec.decode(av.Packet(data)))
    except (av.FFmpegError, ValueError, MemoryError):
        decoder.errors += 1
        return []
