"""The ``screen`` source on a real (virtual) X screen: colours, regions, monitors, and no display at all."""

from __future__ import annotations

import itertools
import time

import av
import numpy as np
import pytest
from conf_capture.screen import ScreenSourceFactory

from conf_cli.errors import ConfError
from conf_cli.testing.devices import VirtualScreen, paint_screen


def video(frame: av.VideoFrame | av.AudioFrame) -> av.VideoFrame:
    assert isinstance(frame, av.VideoFrame)
    return frame


def centre_bgr(frame: av.VideoFrame | av.AudioFrame) -> tuple[int, int, int]:
    frame = video(frame)
    pixels = frame.to_ndarray(format="bgr24")
    height, width = pixels.shape[:2]
    b, g, r = pixels[height // 2, width // 2]
    return int(b), int(g), int(r)


def test_captures_the_colour_on_the_screen(screen: VirtualScreen) -> None:
    paint_screen(screen, "#ff0000")
    with ScreenSourceFactory().open({"fps": 30}) as source:
        first = source.read()
        assert first is not None
        assert (video(first.frame).width, video(first.frame).height) == (640, 480)
        assert first.frame.format.name == "bgra"
        assert abs(first.capture_time - time.time()) < 0.5
        assert centre_bgr(first.frame) == (0, 0, 255)
        paint_screen(screen, "#00ff00")
        second = source.read()
        assert second is not None and centre_bgr(second.frame) == (0, 255, 0)
        assert second.capture_time > first.capture_time


def test_is_paced_at_the_frame_rate(screen: VirtualScreen) -> None:
    with ScreenSourceFactory().open({"fps": 20}) as source:
        started = time.monotonic()
        times = [frame.capture_time for _ in range(11) if (frame := source.read()) is not None]
        elapsed = time.monotonic() - started
    assert len(times) == 11
    assert 0.4 <= elapsed < 1.0  # ten intervals of 50 ms after the first frame
    assert all(b > a for a, b in itertools.pairwise(times))


def test_region_grabs_only_that_rectangle(screen: VirtualScreen) -> None:
    paint_screen(screen, "#0000ff")
    with ScreenSourceFactory().open({"region": "100,50,201,120"}) as source:
        captured = source.read()
    assert captured is not None
    picture = video(captured.frame)
    assert (picture.width, picture.height) == (200, 120)  # trimmed to even
    pixels = picture.to_ndarray(format="bgr24")
    assert (pixels == np.array([255, 0, 0], dtype=np.uint8)).all()


def test_lists_monitors_with_their_sizes(screen: VirtualScreen) -> None:
    devices = ScreenSourceFactory().list_devices()
    assert [d.id for d in devices] == ["0", "1"]
    assert all(d.available for d in devices)
    assert "640x480" in devices[1].description


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"monitor": 5}, "no monitor 5: this desktop has 1"),
        ({"region": "600,400,100,100"}, "goes beyond the desktop"),
        ({"region": "1,2,3"}, "must be x,y,width,height"),
    ],
)
def test_bad_options_fail_in_one_line(
    screen: VirtualScreen, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfError, match=message) as caught:
        ScreenSourceFactory().open(options)
    assert "\n" not in str(caught.value)


def test_no_display_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(ConfError) as caught:
        ScreenSourceFactory().open({})
    assert str(caught.value) == (
        "no display: DISPLAY is not set; run under a desktop session or share 'pattern' instead"
    )
    [row] = ScreenSourceFactory().list_devices()
    assert not row.available and row.reason == "DISPLAY is not set"


def test_close_from_another_thread_ends_a_read(screen: VirtualScreen) -> None:
    import threading

    source = ScreenSourceFactory().open({"fps": 0.5})
    assert source.read() is not None  # the first frame is due at once; the next in two seconds
    threading.Timer(0.1, source.close).start()
    started = time.monotonic()
    assert source.read() is None
    assert time.monotonic() - started < 1.0
