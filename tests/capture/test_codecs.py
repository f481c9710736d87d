"""The PyAV codecs: low-latency H.264 with in-band parameter sets and forced IDRs; Opus in exact 20 ms."""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np
import pytest
from conf_capture.pattern import PatternGenerator, read_pattern_stamp
from hypothesis import given, settings
from hypothesis import strategies as st

from conf_cli.media.codecs import (
    OPUS_FRAME_SAMPLES,
    H264Decoder,
    H264Encoder,
    OpusDecoder,
    OpusEncoder,
    annexb_nal_types,
    encoder_threads,
)
from conf_cli.media.source import CapturedFrame

IDR, SPS, PPS, NON_IDR = 5, 7, 8, 1


def sps_of(annexb: bytes) -> bytes:
    start = annexb.find(b"\x00\x00\x01\x67")
    assert start >= 0, "no SPS"
    return annexb[start + 3 : start + 7]


def rgb_frames(count: int, size: tuple[int, int] = (640, 480)) -> list[av.VideoFrame]:
    rng = np.random.default_rng(3)
    width, height = size
    base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return [av.VideoFrame.from_ndarray(np.roll(base, 7 * i, axis=1), format="rgb24") for i in range(count)]


def test_keyframes_carry_parameter_sets_and_the_stream_is_constrained_baseline() -> None:
    encoder = H264Encoder(320, 240, fps=30, bitrate=500_000)
    units = [u for i, f in enumerate(rgb_frames(65)) for u in encoder.encode(f, 1000.0 + i / 30)]
    assert len(units) == 65  # one access unit per frame: no delay, no B-frames
    keyframes = [i for i, u in enumerate(units) if u.keyframe]
    assert keyframes == [0, 60]  # periodic, every two seconds at 30 fps
    for index in keyframes:
        assert annexb_nal_types(units[index].data)[:2] == [SPS, PPS]
        assert IDR in annexb_nal_types(units[index].data)
    assert set(annexb_nal_types(units[1].data)) == {NON_IDR}
    _nal, profile_idc, constraints, _level = sps_of(units[0].data)
    assert profile_idc == 66 and constraints & 0x40  # baseline with constraint_set1: constrained baseline
    assert all(u.codec == "h264" and u.clock_rate == 90_000 for u in units)


def test_timestamps_are_90khz_from_capture_times_and_carried_through() -> None:
    encoder = H264Encoder(320, 240, fps=30)
    times = [50.0, 50.033, 50.1, 50.1, 51.0]  # a late frame, a repeated time, a gap
    units = [
        u for t, f in zip(times, rgb_frames(5), strict=True) for u in encoder.encode(CapturedFrame(f, t))
    ]
    assert [u.pts for u in units] == [0, 2970, 9000, 9001, 90000]
    assert [u.capture_time for u in units] == times


def test_request_keyframe_forces_the_next_frame_to_be_an_idr() -> None:
    encoder = H264Encoder(320, 240)
    frames = rgb_frames(8)
    flags = []
    for i, frame in enumerate(frames):
        if i == 5:
            encoder.request_keyframe()
        flags += [u.keyframe for u in encoder.encode(frame, i / 30)]
    assert flags == [True, False, False, False, False, True, False, False]
    encoder.set_bitrate(300_000)  # a restarted encoder starts with a keyframe
    (unit,) = encoder.encode(frames[0], 1.0)
    assert unit.keyframe and annexb_nal_types(unit.data)[:2] == [SPS, PPS]
    assert unit.pts > 7 * 3000  # the clock carries on


@pytest.mark.parametrize(("width", "height", "bitrate"), [(1280, 720, 1_200_000), (640, 360, 400_000)])
def test_a_keyframe_is_at_most_about_a_third_of_a_second_of_the_bit_rate(
    width: int, height: int, bitrate: int
) -> None:
    # the simulcast layers of a panning pattern: with a one-second rate buffer their keyframes were half a
    # second of the bit rate (76 kB at 1.2 Mbit/s, 24 kB at 400 kbit/s), half a second to cross a link that
    # just carries the layer; the pictures stay readable
    encoder, decoder = H264Encoder(width, height, fps=15, bitrate=bitrate), H264Decoder()
    generator = PatternGenerator(width, height)
    keyframes, stamps = [], 0
    for i in range(45):
        if i in (15, 30):
            encoder.request_keyframe()
        for unit in encoder.encode(generator.render(i, 100.0 + i / 15), 100.0 + i / 15):
            if unit.keyframe:
                keyframes.append(len(unit.data))
            stamps += sum(read_pattern_stamp(frame) is not None for frame in decoder.decode(unit.data))
    assert len(keyframes) == 3
    assert max(keyframes) <= 0.35 * bitrate / 8, keyframes
    assert stamps == 45


def test_any_input_size_and_format_is_scaled_to_the_configured_one() -> None:
    encoder, decoder = H264Encoder(320, 240), H264Decoder()
    inputs = [
        av.VideoFrame.from_ndarray(np.full((480, 640, 4), 200, np.uint8), format="bgra"),
        av.VideoFrame.from_ndarray(np.full((100, 1000, 3), 50, np.uint8), format="rgb24"),
        PatternGenerator(320, 240).render(0, 0.0),  # already the right size and format
    ]
    decoded = [
        p for i, f in enumerate(inputs) for u in encoder.encode(f, i / 30) for p in decoder.decode(u.data)
    ]
    assert [(p.width, p.height) for p in decoded] == [(320, 240)] * 3
    levels = [int(p.to_ndarray(format="gray").mean()) for p in decoded[:2]]
    assert abs(levels[0] - 200) < 12 and abs(levels[1] - 50) < 12
    with pytest.raises(TypeError):
        encoder.encode(av.AudioFrame(format="s16", layout="mono", samples=960))  # type: ignore[arg-type]


def test_decoder_joins_at_a_keyframe_and_shrugs_off_garbage() -> None:
    encoder, decoder = H264Encoder(640, 360), H264Decoder()
    generator = PatternGenerator(640, 360)
    units = [u for i in range(10) for u in encoder.encode(generator.render(i, 100 + i / 30), 100 + i / 30)]
    assert decoder.decode(units[3].data) == []  # a P-frame before any keyframe: nothing to show
    assert decoder.decode(b"\x00\x00\x00\x01\x65" + bytes(50)) == []
    assert decoder.decode(units[0].data[: len(units[0].data) // 3]) is not None  # truncated: no exception
    fresh = H264Decoder()
    stamps = [read_pattern_stamp(p) for u in units for p in fresh.decode(u.data)]
    assert [s.counter for s in stamps if s is not None] == list(range(10))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_decoders_never_raise_on_arbitrary_bytes(data: bytes) -> None:
    assert isinstance(H264Decoder().decode(data), list)
    assert isinstance(H264Decoder().decode(b"\x00\x00\x00\x01" + data), list)
    assert isinstance(OpusDecoder().decode(data), list)


def test_opus_buffers_any_input_into_exact_20ms_packets() -> None:
    encoder, decoder = OpusEncoder(bitrate=24_000), OpusDecoder()
    units = []
    for i in range(100):  # one second of stereo float audio at 44.1 kHz in 10 ms pieces
        frame = av.AudioFrame.from_ndarray(np.zeros((2, 441), np.float32), format="fltp", layout="stereo")
        frame.sample_rate = 44_100
        frame.pts, frame.time_base = i * 441, Fraction(1, 44_100)
        units += encoder.encode(frame, 500.0 + i / 100)
    assert 48 <= len(units) <= 50  # the resampler keeps back a few samples
    assert [u.pts for u in units] == [i * OPUS_FRAME_SAMPLES for i in range(len(units))]
    assert all(u.codec == "opus" and u.clock_rate == 48_000 and u.duration == 960 for u in units)
    for i, unit in enumerate(units):
        assert abs(unit.capture_time - (500.0 + i * 0.02)) < 0.002
    decoded = [f for u in units for f in decoder.decode(u.data)]
    assert all(f.samples == 960 and f.sample_rate == 48_000 and f.layout.name == "mono" for f in decoded)
    assert len(decoded) == len(units)


def test_opus_bitrate_follows_the_setting() -> None:
    def size_of_a_second(encoder: OpusEncoder) -> int:
        rng = np.random.default_rng(5)
        total = 0
        for _ in range(50):
            noise = rng.integers(-8000, 8000, (1, 960), dtype=np.int16)
            frame = av.AudioFrame.from_ndarray(noise, format="s16", layout="mono")
            frame.sample_rate = 48_000
            total += sum(len(u.data) for u in encoder.encode(frame, 0.0))
        return total * 8

    low, high = OpusEncoder(bitrate=16_000), OpusEncoder(bitrate=64_000)
    assert size_of_a_second(low) < size_of_a_second(high)
    low.set_bitrate(64_000)
    assert low.bitrate == 64_000 and size_of_a_second(low) > 40_000


def test_a_small_picture_is_encoded_on_one_thread_a_large_one_in_slices() -> None:
    """x264's slice threads each code a slice of the picture: a small picture (a simulcast layer of 640x360
    or less) comes out as one slice a picture, coded on one thread, where slices would cost more CPU than
    they save time; a 720p one is left to x264, which slices it across the machine's cores."""
    generator = PatternGenerator(1280, 720)
    slices: dict[tuple[int, int], set[int]] = {}
    for size in ((640, 360), (320, 180), (1280, 720)):
        encoder = H264Encoder(*size, fps=30, bitrate=1_000_000)
        for i in range(4):
            picture = generator.render(i, 1000.0 + i / 30).reformat(*size, "yuv420p")
            for unit in encoder.encode(picture, 1000.0 + i / 30):
                count = sum(t in (IDR, NON_IDR) for t in annexb_nal_types(unit.data))
                slices.setdefault(size, set()).add(count)
    assert encoder_threads(640, 360) == encoder_threads(320, 180) == 1
    assert slices[(640, 360)] == slices[(320, 180)] == {1}
    assert encoder_threads(1280, 720) == 0
    if (os.cpu_count() or 1) > 1:  # x264's own choice: a slice per thread on a machine with cores to share
        assert min(slices[(1280, 720)]) > 1, slices
