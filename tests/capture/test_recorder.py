"""The recorder: H.264 and Opus units muxed into Matroska as they are, checked with PyAV and ffprobe."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from conf_capture.pattern import PatternGenerator, read_pattern_stamp
from conf_capture.recorder import MatroskaRecorder, RecorderSinkFactory, opus_head

from conf_cli.errors import ConfError
from conf_cli.media.codecs import H264Encoder, OpusEncoder
from conf_cli.media.h264 import split_annexb
from conf_cli.media.source import CapturedFrame, EncodedUnit
from conf_cli.testing.media import ffprobe

RTP_OFFSET = (1 << 32) - 30_000  # the RTP clock wraps a third of a second into the recording


def on_the_wire(unit: EncodedUnit) -> EncodedUnit:
    """The unit as a receiver sees it: the timestamp with a random offset, 32-bit wrapped, no duration."""
    return EncodedUnit(
        unit.codec, unit.data, (unit.pts + RTP_OFFSET) % (1 << 32), unit.clock_rate, unit.keyframe, 0.0
    )


def length_prefixed_nals(data: bytes) -> list[bytes]:
    nals, offset = [], 0
    while offset < len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        nals.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return nals


def video_units(frames: int, fps: float = 15.0) -> list[EncodedUnit]:
    generator, encoder = PatternGenerator(320, 240), H264Encoder(320, 240, fps)
    units = []
    for index in range(frames):
        when = 1000.0 + index / fps
        units += encoder.encode(CapturedFrame(generator.render(index, when), when))
    return units


def test_h264_is_recorded_without_reencoding(tmp_path: Path) -> None:
    units = video_units(45)
    path = tmp_path / "video.mkv"
    recorder = RecorderSinkFactory().open({"path": str(path)})
    assert isinstance(recorder, MatroskaRecorder)
    with recorder:
        for unit in units[5:]:  # joins mid-stream: waits for the next keyframe (the 2 s GOP: frame 30)
            recorder.write(on_the_wire(unit))
    probe = ffprobe(path)
    assert (probe.codec, probe.width, probe.height) == ("h264", 320, 240)
    assert probe.frames == 15 and abs(probe.duration - 1.0) < 0.05
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
    with av.open(str(path)) as container:
        pictures = [read_pattern_stamp(frame) for frame in container.decode(video=0)]
    assert [s.counter for s in pictures if s is not None] == list(range(30, 45))
    # The very NAL units that came in (Matroska stores them length-prefixed instead of with start codes).
    assert [length_prefixed_nals(bytes(p)) for p in packets] == [split_annexb(u.data) for u in units[30:]]


def test_a_recording_starts_at_a_keyframe_and_an_empty_one_leaves_no_file(tmp_path: Path) -> None:
    units = video_units(3)
    path = tmp_path / "empty.mkv"
    with MatroskaRecorder(path) as recorder:
        for unit in units[1:]:
            recorder.write(unit)
    assert not path.exists() and recorder.units == 0


def test_opus_is_recorded_as_opus(tmp_path: Path) -> None:
    encoder = OpusEncoder()
    path = tmp_path / "audio.mkv"
    with MatroskaRecorder(path) as recorder:
        for index in range(100):  # two seconds of 440 Hz
            samples = np.arange(index * 960, (index + 1) * 960)
            wave = (np.sin(2 * np.pi * 440 * samples / 48_000) * 10_000).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(wave[None, :], format="s16", layout="mono")
            frame.sample_rate = 48_000
            for unit in encoder.encode(frame, 1000.0 + index / 50):
                recorder.write(on_the_wire(unit))
    probe = ffprobe(path)
    assert (probe.codec, probe.sample_rate) == ("opus", 48_000)
    assert abs(probe.frames - 100) <= 1 and abs(probe.duration - 2.0) < 0.05
    with av.open(str(path)) as container:
        decoded = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    spectrum = np.abs(np.fft.rfft(decoded[4800:].astype(np.float64)))
    assert abs(np.fft.rfftfreq(len(decoded) - 4800, 1 / 48_000)[int(np.argmax(spectrum))] - 440) < 2


def test_opus_head_layout() -> None:
    head = opus_head()
    assert head[:8] == b"OpusHead" and len(head) == 19 and head[8:10] == b"\x01\x01"


def test_bad_paths_fail_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfError, match="no such directory"):
        RecorderSinkFactory().open({"path": str(tmp_path / "nowhere" / "x.mkv")})
    with pytest.raises(ConfError, match="needs a path"):
        RecorderSinkFactory().open({})
