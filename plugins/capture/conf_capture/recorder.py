"""The ``recorder`` sink: received H.264 and Opus written to Matroska (``.mkv``) as they came, not re-encoded.

A recording holds one track. Units carry RTP-clock timestamps (90 kHz video, 48 kHz Opus) with a random
origin and a 32-bit wrap; the recorder unwraps them and starts the file at zero. Video starts at the first
keyframe, whose SPS and PPS become the track's codec private data (FFmpeg's Matroska muxer turns the
Annex B units into the length-prefixed form Matroska stores); the picture size comes from decoding that
keyframe once. Opus gets the ``OpusHead`` (RFC 7845) Matroska requires.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from conf_cli import ConfError, EncodedSink, EncodedUnit, SinkFactory
from conf_cli.media.codecs import H264Decoder
from conf_cli.media.h264 import split_annexb

from .options import opt_str

OPUS_PRE_SKIP = 312  # libopus's look-ahead at 48 kHz
_WRAP = 1 << 32


def opus_head(channels: int = 1, sample_rate: int = 48_000, pre_skip: int = OPUS_PRE_SKIP) -> bytes:
    """The ``OpusHead`` identification header (RFC 7845 5.1), mapping family 0."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, sample_rate, 0, 0)


def parameter_sets(annexb: bytes) -> bytes:
    """The SPS and PPS NAL units of an access unit, as Annex B."""
    start = b"\x00\x00\x00\x01"
    return b"".join(start + nal for nal in split_annexb(annexb) if nal and nal[0] & 0x1F in (7, 8))


class MatroskaRecorder(EncodedSink):
    """Writes one track of encoded units to ``path`` (Matroska); :meth:`close` writes the trailer."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.units = 0
        self._container: av.container.OutputContainer | None = None
        self._stream: Any = None
        self._time_base = Fraction(1, 90_000)
        self._origin: int | None = None
        self._last_raw = 0
        self._last_pts = -1
        self._last_step = 0
        self._closed = False

    def _open(self, unit: EncodedUnit) -> bool:
        """Create the file and its one stream for the first usable unit; ``False`` to skip this unit."""
        if unit.codec == "h264":
            if not unit.keyframe:
                return False  # a recording starts at a keyframe so that every player can decode it
            pictures = H264Decoder().decode(unit.data)
            if not pictures:
                return False
        try:
            container = av.open(str(self.path), "w", format="matroska")
        except (av.FFmpegError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise ConfError(f"cannot record to {self.path}: {reason}") from None
        self._time_base = Fraction(1, unit.clock_rate)
        stream: Any
        if unit.codec == "h264":
            stream = container.add_stream("h264")
            stream.width, stream.height = pictures[0].width, pictures[0].height
            stream.codec_context.pix_fmt = "yuv420p"
            stream.codec_context.extradata = parameter_sets(unit.data)
        else:
            stream = container.add_stream("opus", rate=48_000)
            stream.codec_context.layout = "mono"
            stream.codec_context.extradata = opus_head()
        stream.time_base = self._time_base
        self._container, self._stream = container, stream
        return True

    def _pts(self, raw: int) -> int:
        """Unwrap a 32-bit RTP-clock timestamp into ticks since the first unit, never going backwards."""
        if self._origin is None:
            self._origin, self._last_raw = raw, raw
            unwrapped = raw
        else:
            delta = (raw - self._last_raw) % _WRAP
            if delta >= _WRAP // 2:
                delta -= _WRAP
            unwrapped = self._last_raw + delta
            self._last_raw = unwrapped
        return max(unwrapped - self._origin, self._last_pts + 1)

    def write(self, unit: EncodedUnit) -> None:
        """Add one unit (units before the first keyframe of a video track are skipped)."""
        if self._closed:
            return
        if self._container is None and not self._open(unit):
            return
        pts = self._pts(unit.pts)
        if self._last_pts >= 0:
            self._last_step = pts - self._last_pts
        self._last_pts = pts
        packet = av.Packet(unit.data)
        packet.pts = packet.dts = pts
        packet.time_base = self._time_base
        packet.stream = self._stream
        if unit.duration:
            packet.duration = unit.duration
        elif self._last_step:
            packet.duration = self._last_step
        packet.is_keyframe = unit.keyframe
        assert self._container is not None
        self._container.mux(packet)
        self.units += 1

    def close(self) -> None:
        """Write the trailer and close the file; an empty recording leaves no file."""
        if self._closed:
            return
        self._closed = True
        if self._container is not None:
            self._container.close()
            self._container = None


class RecorderSinkFactory(SinkFactory):
    """``recorder``: H.264 and Opus tracks written to Matroska files without re-encoding."""

    name = "recorder"
    kind = "any"
    consumes = "encoded"
    description = "records a received track to a .mkv file as it arrived, without re-encoding (path)"

    def open(self, options: Mapping[str, Any]) -> MatroskaRecorder:
        """Options: ``path`` of the ``.mkv`` file to write (its folder must exist)."""
        path = opt_str(options, "path")
        if path is None:
            raise ConfError("the recorder needs a path to write to")
        if not Path(path).parent.is_dir():
            raise ConfError(f"cannot record to {path}: no such directory {Path(path).parent}")
        return MatroskaRecorder(path)
