"""The ``window`` sink and its reusable window: pictures in, scaled to fit; pointer and keys out.

The geometry and the window-system check are plain functions; the window itself is tested on a real
(virtual) X screen, read back with a screenshot, and driven with xdotool.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import av
import numpy as np
import pytest
from conf_capture.video_window import VideoWindow, WindowEvent, fit, initial_size
from conf_capture.window import NO_WINDOW_SYSTEM, WindowSinkFactory, window_system_problem

from conf_cli.errors import ConfError
from conf_cli.testing.devices import (
    VirtualScreen,
    grab_screen,
    missing_window_tools,
    window_geometry,
)


def solid(rgb: tuple[int, int, int], width: int = 320, height: int = 180) -> av.VideoFrame:
    picture = np.empty((height, width, 3), np.uint8)
    picture[:] = rgb
    return av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")


def wait_for(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def colour_at(screen: VirtualScreen, x: int, y: int) -> tuple[int, int, int]:
    b, g, r, _ = grab_screen(screen)[y, x]
    return int(r), int(g), int(b)


def near(colour: tuple[int, int, int], expected: tuple[int, int, int], tolerance: int = 24) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected, strict=True))


# -- geometry and the window-system check ---------------------------------------------------------------


def test_a_picture_fits_the_window_with_its_aspect_kept() -> None:
    assert fit((1280, 720), (1280, 720)) == (0, 0, 1280, 720)
    assert fit((1280, 720), (640, 480)) == (0, 60, 640, 360)  # bars above and below
    assert fit((640, 480), (1280, 480)) == (320, 0, 640, 480)  # bars left and right
    assert fit((1920, 1080), (5, 3)) == (0, 0, 4, 2)  # even sizes, never below 2


def test_a_new_window_takes_the_picture_size_within_the_screen() -> None:
    assert initial_size((640, 360), (1280, 720)) == (640, 360)
    assert initial_size((1920, 1080), (1280, 720)) == (1152, 648)
    assert initial_size((640, 360), (0, 0)) == (640, 360)


def test_the_window_system_check() -> None:
    assert window_system_problem({}) == NO_WINDOW_SYSTEM
    assert window_system_problem({"DISPLAY": ""}) == NO_WINDOW_SYSTEM
    assert window_system_problem({"WAYLAND_DISPLAY": "wayland-0"}) is None
    assert window_system_problem({"DISPLAY": "remote.example:0"}) is None  # not probed
    problem = window_system_problem({"DISPLAY": ":4999"})
    assert problem == "no window system: no X server answers on DISPLAY=:4999; use --view preview"


def test_opening_without_a_window_system_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(ConfError) as error:
        WindowSinkFactory().open({})
    assert str(error.value) == NO_WINDOW_SYSTEM


# -- a real window ----------------------------------------------------------------------------------------


@pytest.fixture
def window_screen(screen: VirtualScreen, monkeypatch: pytest.MonkeyPatch) -> VirtualScreen:
    monkeypatch.setenv("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    pytest.importorskip("pygame")
    reason = missing_window_tools()
    if reason is not None:
        pytest.skip(reason)
    return screen


def test_a_window_shows_the_newest_picture_scaled_and_reports_input(window_screen: VirtualScreen) -> None:
    events: list[WindowEvent] = []
    window = VideoWindow("conf test window", size=(400, 300), on_event=events.append)
    try:
        window.show(solid((255, 0, 0)))
        geometry = window_geometry(window_screen, "conf test window")
        assert geometry is not None
        x, y, width, height = geometry
        assert (width, height) == (400, 300)
        wait_for(lambda: near(colour_at(window_screen, x + 200, y + 150), (255, 0, 0)))
        # 320x180 in 400x300: scaled to 400x224 (even), with black bars of 38 lines above and below
        assert near(colour_at(window_screen, x + 200, y + 20), (0, 0, 0))
        assert near(colour_at(window_screen, x + 5, y + 45), (255, 0, 0))
        window.show(solid((0, 0, 255)), title="conf test window")
        wait_for(lambda: near(colour_at(window_screen, x + 200, y + 150), (0, 0, 255)))

        env = {"DISPLAY": window_screen.display}
        subprocess.run(["xdotool", "mousemove", str(x + 300), str(y + 150)], env=env, check=True, timeout=10)
        subprocess.run(["xdotool", "click", "1"], env=env, check=True, timeout=10)
        subprocess.run(["xdotool", "mousemove", str(x + 200), str(y + 10)], env=env, check=True, timeout=10)
        wait_for(lambda: any(e.type == "button" and not e.pressed for e in events))
        wait_for(lambda: any(e.type == "pointer" and e.x is None for e in events))  # over the black bar
        press_at = next(i for i, e in enumerate(events) if e.type == "button")
        pointer = next(e for e in reversed(events[:press_at]) if e.type == "pointer")  # where it clicked
        assert pointer.x is not None and pointer.y is not None
        assert abs(pointer.x - 0.75) < 0.01 and abs(pointer.y - 0.5) < 0.02
        press = next(e for e in events if e.type == "button" and e.pressed)
        assert press.button == 1 and press.x is not None and abs(press.x - 0.75) < 0.01
        assert window.next_event(timeout=1) is not None  # the same events, from the bounded queue
        assert window.frames_shown >= 2 and window.error is None
    finally:
        window.close()
    assert window.finished
    assert window_geometry(window_screen, "conf test window", timeout=0.5) is None


def test_the_window_sink_shows_the_newest_track_and_closes_with_the_last(
    window_screen: VirtualScreen,
) -> None:
    factory = WindowSinkFactory()
    first = factory.open({"title": "conf: ada's video"})
    second = factory.open({"title": "conf: bob's screen"})
    first.write(solid((255, 0, 0)))  # not on show: bob's track is newer
    second.write(av.AudioFrame(format="s16", layout="mono", samples=960))  # ignored
    assert factory.window is None
    second.write(solid((0, 255, 0)))
    geometry = window_geometry(window_screen, "conf: bob's screen")
    assert geometry is not None
    x, y, width, height = geometry
    centre = (x + width // 2, y + height // 2)
    wait_for(lambda: near(colour_at(window_screen, *centre), (0, 255, 0)))
    window = factory.window
    assert window is not None
    second.close()
    first.write(solid((255, 0, 0)))  # bob's ended: ada's is shown in the same window
    wait_for(lambda: near(colour_at(window_screen, *centre), (255, 0, 0)))
    assert factory.window is window and window_geometry(window_screen, "conf: ada's video") is not None
    first.close()
    first.close()
    assert window.finished and factory.window is None


def test_the_window_sink_tells_its_size_when_it_opens_and_when_it_is_resized(
    window_screen: VirtualScreen,
) -> None:
    sizes: list[tuple[int, int]] = []
    factory = WindowSinkFactory()
    sink = factory.open({"title": "conf: resized", "on_resize": lambda w, h: sizes.append((w, h))})
    try:
        sink.write(solid((255, 0, 0)))
        wait_for(lambda: bool(sizes))
        assert sizes[0] == (320, 180)  # a 320x180 picture opens a window of its size
        assert window_geometry(window_screen, "conf: resized") is not None  # titled by now
        env = {"DISPLAY": window_screen.display}
        info = subprocess.run(
            ["xwininfo", "-name", "conf: resized"], env=env, capture_output=True, text=True, timeout=10
        ).stdout
        window_id = info.split("Window id:")[1].split()[0]
        subprocess.run(["xdotool", "windowsize", window_id, "640", "360"], env=env, check=True, timeout=10)
        wait_for(lambda: sizes[-1] == (640, 360))  # heard even with no new picture (the window polls)
    finally:
        sink.close()
