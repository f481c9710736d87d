"""`conf join --view window` shows received video in a desktop window on a real (virtual) X screen.

The pattern source stamps each picture with its frame counter; reading the stamp back from screenshots
of the window proves that the window shows the shared pictures, and that they move.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from conf_capture.pattern import read_pattern_stamp

from conf_cli.testing.devices import (
    VirtualScreen,
    grab_screen,
    missing_window_tools,
    start_screen,
    window_geometry,
)
from conf_cli.testing.processes import ClientPool, run_conf

SCREENSHOT = os.environ.get("CONF_WINDOW_SCREENSHOT")  # where to keep a screenshot, when set


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch) -> Iterator[VirtualScreen]:
    monkeypatch.setenv("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    pytest.importorskip("pygame")
    reason = missing_window_tools()
    if reason is not None:
        pytest.skip(f"no virtual screen: {reason}")
    virtual = start_screen(1280, 720)
    try:
        monkeypatch.setenv("DISPLAY", virtual.display)  # every conf process started in the test sees it
        yield virtual
    finally:
        virtual.stop()


def test_join_view_window_shows_the_shared_pattern_moving(screen: VirtualScreen, clients: ClientPool) -> None:
    _, meeting = clients.create("host")
    viewer = clients.joined(meeting, "viewer", "--view", "window")
    sharer = clients.share(meeting, "bob", "pattern", "--width", "640", "--height", "360", "--fps", "15")
    sharer.expect("publish_started")
    viewer.expect("track_stats", lambda e: int(e["frames"]) > 3, timeout=10)
    geometry = window_geometry(screen, "conf: bob's video")
    assert geometry is not None, 'no window called "conf: bob\'s video"'
    x, y, width, height = geometry
    assert (width, height) == (640, 360)  # the picture's own size: it fits on the screen

    stamps = []
    deadline = time.monotonic() + 10
    while len({s.counter for s in stamps}) < 3 and time.monotonic() < deadline:
        shot = grab_screen(screen)
        stamp = read_pattern_stamp(shot[y : y + height, x : x + width])
        if stamp is not None:
            stamps.append(stamp)
            delay = time.time() - stamp.capture_time
            print(f"window shows frame {stamp.counter}, captured {delay * 1000:.0f} ms before the grab")
        time.sleep(0.15)
    assert len({s.counter for s in stamps}) >= 3, f"the window did not show moving pattern frames: {stamps}"
    window = grab_screen(screen)[y : y + height, x : x + width, :3]
    assert window.std(axis=(0, 1)).min() > 20  # colourful, not a blank or flat window
    if SCREENSHOT:
        import mss.tools

        rgb = grab_screen(screen)[:, :, 2::-1].copy()
        mss.tools.to_png(rgb.tobytes(), (rgb.shape[1], rgb.shape[0]), output=SCREENSHOT)

    sharer.send("/leave")
    viewer.expect("track_ended")
    deadline = time.monotonic() + 5
    while window_geometry(screen, "conf: bob's video", timeout=0) is not None:
        assert time.monotonic() < deadline, "the window stayed open after the track ended"
        time.sleep(0.1)
    viewer.send("/leave")
    assert viewer.wait() == 0
    assert not [e for e in viewer.seen if e["type"] in ("error", "_text")]  # JSON only: no pygame banner


def test_view_window_without_a_window_system_fails_in_one_line(server_url: str) -> None:
    env_display = os.environ.pop("DISPLAY", None)
    env_wayland = os.environ.pop("WAYLAND_DISPLAY", None)
    try:
        result = run_conf("join", "abc-defg-hjk", "--server", server_url, "--json", "--view", "window")
    finally:
        if env_display is not None:
            os.environ["DISPLAY"] = env_display
        if env_wayland is not None:
            os.environ["WAYLAND_DISPLAY"] = env_wayland
    assert result.returncode == 1
    assert result.stderr == "conf: no window system: DISPLAY is not set; use --view preview\n"
    assert result.stdout == ""


def test_view_preview_needs_the_terminal(server_url: str) -> None:
    result = run_conf("join", "abc-defg-hjk", "--server", server_url, "--json", "--view", "preview")
    assert result.returncode == 1
    assert "--view preview draws in the interactive terminal" in result.stderr


def test_a_window_asks_for_the_simulcast_layer_that_fits_its_size_and_again_when_resized(
    screen: VirtualScreen, clients: ClientPool
) -> None:
    import subprocess

    _, meeting = clients.create("host")
    viewer = clients.joined(meeting, "viewer", "--view", "window")
    sharer = clients.share(meeting, "bob", "pattern", "--width", "1280", "--height", "720", "--fps", "15")
    published = sharer.expect("publish_started")
    assert len(published["layers"]) == 3

    def layer(wanted: int) -> None:
        viewer.expect(
            "track_stats",
            lambda e: e.get("kind") == "video" and e.get("layer") == wanted and int(e["fps"]) > 0,
            timeout=20,
        )

    # 1280x720 pictures on a 1280x720 screen: the window opens at 90 % (648 lines), so 360p fits it
    geometry = window_geometry(screen, "conf: bob's video")
    assert geometry is not None
    assert geometry[3] < 720
    layer(1)
    env = {**os.environ, **screen.env}

    def resize(width: int, height: int) -> None:
        info = subprocess.run(
            ["xwininfo", "-name", "conf: bob's video"], env=env, capture_output=True, text=True, timeout=10
        ).stdout
        assert "Window id:" in info, [e for e in viewer.seen if e["type"] == "error"]
        window_id = info.split("Window id:")[1].split()[0]
        subprocess.run(["xdotool", "windowsize", window_id, str(width), str(height)], env=env, timeout=10)
        geometry = window_geometry(screen, "conf: bob's video")
        assert geometry is not None and geometry[2:] == (width, height), geometry

    # made small, it asks for the smallest layer; made larger again, for the middle one again
    resize(400, 200)
    layer(0)
    resize(1000, 600)
    layer(1)
    assert not [e for e in viewer.seen if e["type"] == "error"]  # the window drew every size it was given
    viewer.send("/leave")
    assert viewer.wait() == 0
