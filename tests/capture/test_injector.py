"""The ``pynput`` injector and the remote-control viewer's input: key names, scaling, and replay on a real
(virtual) X screen read back with xdotool and an input probe; the viewer's window events as messages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conf_capture.control_viewer import ControlViewerFactory, ControlViewerSink, input_message
from conf_capture.injector import PynputInjector, PynputInjectorFactory, key_for, to_screen
from conf_capture.video_window import WindowEvent

from conf_cli.errors import ConfError
from conf_cli.protocol.control import decode_client_message, encode
from conf_cli.testing.devices import VirtualScreen
from conf_cli.testing.input import InputProbe, missing_input_tools, pointer, wait_for

# -- plain functions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("a", ("char", "a")),
        ("A", ("char", "A")),
        ("1", ("char", "1")),
        (",", ("char", ",")),
        ("[7]", ("char", "7")),
        ("[+]", ("char", "+")),
        ("left shift", ("special", "shift")),
        ("right ctrl", ("special", "ctrl_r")),
        ("left alt", ("special", "alt")),
        ("left meta", ("special", "cmd")),
        ("return", ("special", "enter")),
        ("Escape", ("special", "esc")),
        ("page down", ("special", "page_down")),
        ("f12", ("special", "f12")),
        ("space", ("special", "space")),
        ("AC Back", None),
        ("", None),
    ],
)
def test_sdl_key_names_map_to_pynput_keys(name, key):
    assert key_for(name) == key


@pytest.mark.parametrize(
    ("x", "y", "area", "at"),
    [
        (0.0, 0.0, (0, 0, 1280, 720), (0, 0)),
        (0.5, 0.5, (0, 0, 1280, 720), (640, 360)),
        (1.0, 1.0, (0, 0, 1280, 720), (1279, 719)),  # the last pixel, not one beyond
        (0.25, 0.5, (100, 50, 200, 100), (150, 100)),  # a shared region: offset and scaled
        (-1.0, 2.0, (100, 50, 200, 100), (100, 149)),  # clamped into the area
    ],
)
def test_fractions_scale_onto_the_shared_rectangle(x, y, area, at):
    assert to_screen(x, y, area) == at


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (WindowEvent("pointer", 0.25, 0.5), {"action": "move", "x": 0.25, "y": 0.5}),
        (WindowEvent("pointer", None, None), None),  # outside the picture
        (
            WindowEvent("button", 0.1, 0.2, button=1, pressed=True),
            {"action": "button", "button": 1, "pressed": True, "x": 0.1, "y": 0.2},
        ),
        (  # a release outside the picture still releases
            WindowEvent("button", None, None, button=3, pressed=False),
            {"action": "button", "button": 3, "pressed": False},
        ),
        (WindowEvent("wheel", dx=0, dy=-2), {"action": "scroll", "dx": 0, "dy": -2}),
        (WindowEvent("wheel", dx=0, dy=500), {"action": "scroll", "dx": 0, "dy": 100}),
        (WindowEvent("wheel"), None),
        (
            WindowEvent("key", pressed=True, key="left shift"),
            {"action": "key", "key": "left shift", "pressed": True},
        ),
        (WindowEvent("key", pressed=True, key=""), None),
        (WindowEvent("resized", width=10, height=10), None),
        (WindowEvent("closed"), None),
    ],
)
def test_viewer_events_become_valid_input_messages(event, message):
    got = input_message(event)
    if message is None:
        assert got is None
        return
    assert got == {"type": "control_input", **message}
    assert decode_client_message(encode(got)) == got  # the server takes it as it is


def test_keys_and_buttons_down_are_released_over_there_when_the_viewer_loses_focus():
    sent: list[dict] = []
    viewer = ControlViewerSink("test", sent.append, lambda: None)
    for event in (
        WindowEvent("key", pressed=True, key="left shift"),
        WindowEvent("key", pressed=True, key="a"),
        WindowEvent("key", pressed=False, key="a"),
        WindowEvent("button", 0.5, 0.5, button=1, pressed=True),
    ):
        viewer._event(event)
    del sent[:]
    viewer._event(WindowEvent("focus_lost"))
    assert sent == [
        {"type": "control_input", "action": "key", "key": "left shift", "pressed": False},
        {"type": "control_input", "action": "button", "button": 1, "pressed": False},
    ]
    viewer._event(WindowEvent("focus_lost"))
    assert len(sent) == 2  # nothing held any more


def test_the_viewer_says_in_one_line_where_no_window_system_exists(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(ConfError) as info:
        ControlViewerFactory().open({})
    assert str(info.value) == "no window system: DISPLAY is not set; remote control needs one"


def test_no_display_no_injection_in_one_line(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(ConfError) as info:
        PynputInjectorFactory().open({"area": (0, 0, 640, 480)})
    assert "\n" not in str(info.value) and "DISPLAY is not set" in str(info.value)


# -- on a virtual screen ------------------------------------------------------------------------------


@pytest.fixture
def probe(screen: VirtualScreen, tmp_path: Path) -> Iterator[InputProbe]:
    reason = missing_input_tools()
    if reason is not None:
        pytest.skip(f"cannot read input back: {reason}")
    started = InputProbe(screen, tmp_path / "probe.json", timeout=30.0)
    try:
        yield started
    finally:
        started.stop()


def test_moves_land_on_the_shared_rectangle(screen: VirtualScreen) -> None:
    injector = PynputInjectorFactory().open({})  # the whole first monitor: 640x480
    try:
        injector.inject({"action": "move", "x": 0.5, "y": 0.25})
        assert pointer(screen) == (320, 120)
        injector.area = (100, 50, 200, 100)
        injector.inject({"action": "move", "x": 0.5, "y": 0.5})
        assert pointer(screen) == (200, 100)
    finally:
        injector.close()


def test_keys_with_modifiers_text_clicks_and_wheel(screen: VirtualScreen, probe: InputProbe) -> None:
    injector = PynputInjector((0, 0, screen.width, screen.height))
    try:
        for name, pressed in [("left shift", True), ("h", True), ("h", False), ("left shift", False)]:
            injector.inject({"action": "key", "key": name, "pressed": pressed})
        for name in ("i", "space"):
            injector.inject({"action": "key", "key": name, "pressed": True})
            injector.inject({"action": "key", "key": name, "pressed": False})
        injector.inject({"action": "text", "text": "there"})
        wait_for(lambda: probe.state()["text"] == "Hi there", "typed text did not arrive", 30.0)
        where = {"x": 100 / screen.width, "y": 40 / screen.height}
        for pressed in (True, False, True, False):  # two quick clicks: a double click
            injector.inject({"action": "button", "button": 1, "pressed": pressed, **where})
        wait_for(lambda: probe.state()["double"] == 1, "the double click did not arrive", 30.0)
        assert probe.state()["clicks"] == 1  # Tk counts the second click as the double click
        injector.inject({"action": "scroll", "dx": 0, "dy": -3})
        wait_for(lambda: probe.state()["wheel"] == -3, "the wheel did not arrive", 30.0)
    finally:
        injector.close()


def test_closing_releases_what_is_held(screen: VirtualScreen, probe: InputProbe) -> None:
    injector = PynputInjector((0, 0, screen.width, screen.height))
    injector.inject({"action": "key", "key": "left shift", "pressed": True})
    injector.inject({"action": "key", "key": "a", "pressed": True})
    injector.inject({"action": "key", "key": "a", "pressed": False})
    injector.close()  # the controller went with Shift still down
    wait_for(lambda: probe.state()["text"] == "A", "the first key did not arrive", 30.0)
    again = PynputInjector((0, 0, screen.width, screen.height))
    try:
        again.inject({"action": "text", "text": "b"})
        wait_for(lambda: probe.state()["text"] == "Ab", "Shift stayed down after close", 30.0)
    finally:
        again.close()


def test_conf_devices_says_whether_the_desktop_can_be_driven(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    [desktop] = PynputInjectorFactory().list_devices()
    assert not desktop.available and desktop.reason == "no display: DISPLAY is not set"


def test_the_desktop_can_be_driven_on_a_screen(screen: VirtualScreen) -> None:
    [desktop] = PynputInjectorFactory().list_devices()
    assert desktop.available and desktop.description == "this desktop: 640x480 at 0,0"
