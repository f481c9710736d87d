"""The preview sink: a frame scaled down with PyAV and drawn with half blocks, cheaply."""

from __future__ import annotations

import time

import av
import numpy as np
import pytest
from conf_capture.pattern import PatternGenerator
from conf_capture.preview import UPPER_HALF, HalfBlockImage, PreviewSinkFactory
from rich.console import Console

from conf_cli.errors import ConfError


def test_upper_and_lower_pixels_are_foreground_and_background() -> None:
    picture = np.zeros((240, 320, 3), np.uint8)
    picture[:120] = (255, 0, 0)  # red above, blue below
    picture[120:] = (0, 0, 255)
    sink = PreviewSinkFactory().open({"width": "8", "height": "4"})
    assert sink.renderable() is None
    sink.write(av.VideoFrame.from_ndarray(picture, format="rgb24"))
    sink.write(av.AudioFrame(format="s16", layout="mono", samples=960))  # ignored
    image = sink.renderable()
    assert isinstance(image, HalfBlockImage) and (image.width, image.height) == (8, 2)
    top, bottom = image.lines()
    assert {s.text for s in top + bottom} == {UPPER_HALF}
    assert top[0].style is not None and bottom[0].style is not None
    red, blue = top[0].style.color, bottom[0].style.bgcolor
    assert red is not None and red.triplet is not None and red.triplet.red >= 240 and red.triplet.blue < 16
    assert blue is not None and blue.triplet is not None and blue.triplet.blue >= 240


def test_renders_in_a_console_in_a_couple_of_milliseconds() -> None:
    generator = PatternGenerator(1280, 720)
    sink = PreviewSinkFactory().open({})
    frames = [generator.render(i, 0.0) for i in range(30)]
    costs = []
    for frame in frames:
        start = time.perf_counter()
        sink.write(frame)
        image = sink.renderable()
        assert image is not None
        image.lines()
        costs.append(time.perf_counter() - start)
    assert sink.frames == 30
    print(f"preview: median {sorted(costs)[15] * 1000:.2f} ms per 720p frame")  # a figure, not an assertion
    console = Console(width=80, color_system="truecolor", record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(image)
    text = console.export_text()
    assert text.count("\n") == 12 and text.splitlines()[0] == UPPER_HALF * 48


def test_bad_size_is_refused() -> None:
    with pytest.raises(ConfError, match="even height"):
        PreviewSinkFactory().open({"height": "5"})


def test_a_picture_shrinks_to_the_space_it_is_drawn_in() -> None:
    picture = np.zeros((24, 48, 3), np.uint8)
    picture[:, :24] = (255, 255, 255)  # white left half
    image = HalfBlockImage(picture)
    assert image.fitted(100, 40) is image
    small = image.fitted(24, 20)
    assert (small.width, small.height) == (24, 6)
    assert small.rgb[:, :12].min() == 255 and small.rgb[:, 12:].max() == 0
    assert (image.fitted(48, 3).width, image.fitted(48, 3).height) == (12, 3)
    console = Console(width=20, color_system="truecolor", record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(image)
    lines = console.export_text().splitlines()
    assert len(lines) == 5 and {len(line) for line in lines} == {20}
