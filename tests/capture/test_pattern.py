"""The pattern source: its stamp survives real H.264 compression; it moves; it is paced and stamped."""

from __future__ import annotations

import itertools
import time

import av
import numpy as np
import pytest
from conf_capture.pattern import (
    STAMP_COLUMNS,
    PatternGenerator,
    PatternSource,
    PatternSourceFactory,
    PatternStamp,
    cell_size,
    read_pattern_stamp,
)

from conf_cli.errors import ConfError
from conf_cli.media.codecs import H264Decoder, H264Encoder


@pytest.mark.parametrize(("size", "bitrate"), [((1280, 720), 1_500_000), ((640, 360), 400_000)])
def test_stamp_survives_h264_encode_and_decode(size: tuple[int, int], bitrate: int) -> None:
    width, height = size
    generator = PatternGenerator(width, height)
    encoder, decoder = H264Encoder(width, height, fps=30, bitrate=bitrate), H264Decoder()
    start = round(time.time() * 1000) / 1000
    read: list[PatternStamp | None] = []
    sent: list[PatternStamp] = []
    for counter in range(45):
        capture_time = round((start + counter / 30) * 1000) / 1000
        sent.append(PatternStamp(counter, capture_time))
        for unit in encoder.encode(generator.render(counter, capture_time), capture_time):
            for picture in decoder.decode(unit.data):
                assert (picture.width, picture.height) == size
                read.append(read_pattern_stamp(picture))
    assert read == sent  # every counter and every millisecond exact


def test_stamp_reads_from_numpy_pictures_in_any_channel_order() -> None:
    frame = PatternGenerator().render(123_456_789, 1_700_000_000.042)
    expected = PatternStamp(123_456_789, 1_700_000_000.042)
    rgb = frame.to_ndarray(format="rgb24")
    assert read_pattern_stamp(rgb) == expected
    assert read_pattern_stamp(frame.to_ndarray(format="bgra")) == expected
    assert read_pattern_stamp(frame.to_ndarray(format="gray")) == expected
    assert read_pattern_stamp(frame.reformat(format="rgb24")) == expected  # a non-YUV frame


def test_no_stamp_reads_as_none() -> None:
    assert read_pattern_stamp(np.zeros((720, 1280), np.uint8)) is None
    noise = np.random.default_rng(1).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    assert read_pattern_stamp(noise) is None
    assert read_pattern_stamp(np.zeros((40, 40), np.uint8)) is None  # too small to hold one


def test_a_damaged_stamp_fails_its_check() -> None:
    gray = PatternGenerator().render(7, 1_700_000_000.5).to_ndarray(format="gray").copy()
    cell = cell_size(gray.shape[1])
    column = 2 + 40  # a data cell of the counter row
    x, y = cell * (1 + column), cell
    gray[y : y + cell, x : x + cell] = 255 - gray[y : y + cell, x : x + cell]
    assert read_pattern_stamp(gray) is None


def test_the_picture_moves_outside_the_stamp() -> None:
    generator = PatternGenerator(640, 360)
    first = generator.render(0, 0.0).to_ndarray(format="gray").astype(np.int16)
    second = generator.render(1, 0.0).to_ndarray(format="gray").astype(np.int16)
    below_stamp = slice(cell_size(640) * 5, None)
    changed = np.abs(first[below_stamp] - second[below_stamp]) > 8
    assert changed.mean() > 0.2  # the background pans and the box moves
    assert STAMP_COLUMNS * cell_size(640) < 640


def test_source_is_paced_and_stamps_its_capture_time() -> None:
    with PatternSourceFactory().open({"size": "640x360", "fps": "50"}) as source:
        start = time.monotonic()
        frames = [source.read() for _ in range(11)]
        elapsed = time.monotonic() - start
    assert 0.17 <= elapsed <= 0.5  # 10 intervals of 20 ms
    captured = [f for f in frames if f is not None]
    assert len(captured) == 11
    for counter, item in enumerate(captured):
        assert isinstance(item.frame, av.VideoFrame)
        assert (item.frame.width, item.frame.height) == (640, 360)
        assert read_pattern_stamp(item.frame) == PatternStamp(counter, item.capture_time)
    assert all(0.005 < b.capture_time - a.capture_time < 0.06 for a, b in itertools.pairwise(captured))
    assert abs(captured[-1].capture_time - time.time()) < 1.0
    assert source.read() is None  # closed


def test_default_size_and_bad_options() -> None:
    source = PatternSourceFactory().open({})
    assert isinstance(source, PatternSource)
    assert (source.generator.width, source.generator.height, source.fps) == (1280, 720, 30.0)
    source.close()
    with pytest.raises(ConfError, match="at least 320x120"):
        PatternSourceFactory().open({"size": "64x64"})
    with pytest.raises(ConfError, match="1280x720"):
        PatternSourceFactory().open({"size": "big"})
    with pytest.raises(ConfError, match="fps"):
        PatternSourceFactory().open({"fps": "0"})
