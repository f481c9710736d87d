"""The ``pynput`` injector: a remote controller's pointer and keys, replayed on this desktop.

An :class:`Injector` takes ``control_input`` messages (docs/protocol.md) as the server relays them:
``move`` puts the pointer at ``x``/``y``, fractions (0..1) of the shared picture, scaled onto the
desktop rectangle that picture shows (``area``: the screen source's monitor or region); ``button``
presses or releases a mouse button (two clicks in quick succession are a double click to the desktop,
a press, moves and a release a drag); ``scroll`` turns the wheel; ``key`` presses or releases a key by
its name (SDL's names, as the viewer window reports them: ``a``, ``left shift``, ``return``), so that
modifiers held on the controller's side are held here too; ``text`` types a string.

Closing the injector releases every button and key it still holds, so a controller who leaves in the
middle of a drag or with Shift down leaves nothing stuck. pynput is imported when an injector opens,
never at module level: ``import pynput`` fails without a DISPLAY.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Mapping
from typing import Any

from conf_cli import ConfError, DeviceInfo

Area = tuple[int, int, int, int]  # left, top, width, height

# SDL key names (pygame.key.name) that are not the character they type, as pynput's Key names.
SPECIAL_KEYS: dict[str, str] = {
    "left shift": "shift",
    "right shift": "shift_r",
    "left ctrl": "ctrl",
    "right ctrl": "ctrl_r",
    "left alt": "alt",
    "right alt": "alt_r",
    "alt gr": "alt_gr",
    "left meta": "cmd",
    "right meta": "cmd_r",
    "left super": "cmd",
    "right super": "cmd_r",
    "return": "enter",
    "enter": "enter",
    "escape": "esc",
    "backspace": "backspace",
    "tab": "tab",
    "space": "space",
    "delete": "delete",
    "insert": "insert",
    "home": "home",
    "end": "end",
    "page up": "page_up",
    "page down": "page_down",
    "up": "up",
    "down": "down",
    "left": "left",
    "right": "right",
    "caps lock": "caps_lock",
    "numlock": "num_lock",
    "scroll lock": "scroll_lock",
    "print screen": "print_screen",
    "break": "pause",
    "menu": "menu",
    **{f"f{n}": f"f{n}" for n in range(1, 16)},
}
# Keypad keys as pygame names them ("[1]", "[+]"), and a few named characters.
NAMED_CHARACTERS: dict[str, str] = {"equals": "="}


def key_for(name: str) -> tuple[str, str] | None:
    """``("special", pynput Key name)`` or ``("char", character)`` for an SDL key name, or ``None``."""
    lowered = name.lower()
    if lowered in SPECIAL_KEYS:
        return "special", SPECIAL_KEYS[lowered]
    if lowered in NAMED_CHARACTERS:
        return "char", NAMED_CHARACTERS[lowered]
    if len(name) == 3 and name[0] == "[" and name[2] == "]":
        return "char", name[1]
    if len(name) == 1 and name.isprintable():
        return "char", name
    return None


def to_screen(x: float, y: float, area: Area) -> tuple[int, int]:
    """Where fractions ``x``, ``y`` of the shared picture fall on the desktop (a pixel inside ``area``)."""
    left, top, width, height = area
    fx, fy = min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)
    return left + min(width - 1, int(fx * width)), top + min(height - 1, int(fy * height))


class PynputInjector:
    """Replays input events on this desktop through pynput (XTEST on X11). Thread-safe."""

    def __init__(self, area: Area) -> None:
        if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
            raise ConfError("cannot inject input: no window system here (DISPLAY is not set)")
        try:
            from pynput import keyboard, mouse
        except Exception as exc:  # ImportError, or Xlib's display errors at import time
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfError(f"cannot inject input on this desktop: {first}") from None
        self.area = area
        self._keyboard_module = keyboard
        self._buttons = {1: mouse.Button.left, 2: mouse.Button.middle, 3: mouse.Button.right}
        self._mouse = mouse.Controller()
        self._keyboard = keyboard.Controller()
        self._held_buttons: set[Any] = set()
        self._held_keys: set[Any] = set()
        self._lock = threading.Lock()
        self.injected = 0
        self.ignored = 0

    def inject(self, event: Mapping[str, Any]) -> None:
        """Replay one ``control_input`` event (already validated by the server)."""
        with self._lock:
            action = event.get("action")
            if event.get("x") is not None and event.get("y") is not None:
                self._mouse.position = to_screen(float(event["x"]), float(event["y"]), self.area)
            if action == "button":
                self._button(int(event["button"]), bool(event["pressed"]))
            elif action == "scroll":
                self._mouse.scroll(int(event.get("dx") or 0), int(event.get("dy") or 0))
            elif action == "key":
                self._key(str(event["key"]), bool(event["pressed"]))
            elif action == "text":
                self._keyboard.type(str(event["text"]))
            self.injected += 1

    def _button(self, number: int, pressed: bool) -> None:
        button = self._buttons.get(number)
        if button is None:
            self.ignored += 1
            return
        if pressed:
            self._mouse.press(button)
            self._held_buttons.add(button)
        elif button in self._held_buttons:  # a release without its press (it began outside) is dropped
            self._mouse.release(button)
            self._held_buttons.discard(button)

    def _key(self, name: str, pressed: bool) -> None:
        found = key_for(name)
        if found is None:
            self.ignored += 1
            return
        kind, value = found
        keyboard = self._keyboard_module
        key = getattr(keyboard.Key, value, None) if kind == "special" else keyboard.KeyCode.from_char(value)
        if key is None:
            self.ignored += 1
            return
        if pressed:
            self._keyboard.press(key)
            self._held_keys.add(key)
        elif key in self._held_keys:
            self._keyboard.release(key)
            self._held_keys.discard(key)

    def close(self) -> None:
        """Release every button and key still held, and let go of the display; safe to call twice."""
        with self._lock:
            with contextlib.suppress(Exception):  # the display may have gone already
                for button in self._held_buttons:
                    self._mouse.release(button)
                for key in self._held_keys:
                    self._keyboard.release(key)
            self._held_buttons.clear()
            self._held_keys.clear()
            for controller in (self._mouse, self._keyboard):
                display = getattr(controller, "_display", None)  # pynput's X11 connection
                if display is not None:
                    with contextlib.suppress(Exception):
                        display.close()
                    del controller._display  # so that pynput does not close it again when collected


def _desktop_area() -> Area:
    """The first monitor's rectangle (mss), for an injector opened without an ``area``."""
    from .screen import _open_mss

    grabber = _open_mss()
    try:
        monitor = grabber.monitors[1]
    finally:
        grabber.close()
    return int(monitor["left"]), int(monitor["top"]), int(monitor["width"]), int(monitor["height"])


class PynputInjectorFactory:
    """``pynput``: input injection through pynput (X11's XTEST, macOS, Windows)."""

    name = "pynput"
    kind = "input"
    description = "replays a remote controller's pointer and keys on this desktop (pynput)"

    def list_devices(self) -> list[DeviceInfo]:
        """This desktop, and whether it can be driven now (for ``conf devices``)."""
        try:
            left, top, width, height = _desktop_area()
        except ConfError as exc:
            return [DeviceInfo("desktop", "this desktop", available=False, reason=str(exc).split(";")[0])]
        return [DeviceInfo("desktop", f"this desktop: {width}x{height} at {left},{top}")]

    def open(self, options: Mapping[str, Any]) -> PynputInjector:
        """Options: ``area``, the desktop rectangle (left, top, width, height) the shared picture shows;
        the first monitor without it. ConfError, in one line, where no desktop can be driven."""
        area = options.get("area")
        if area is None:
            area = _desktop_area()
        left, top, width, height = (int(v) for v in area)
        if width <= 0 or height <= 0:
            raise ConfError(f"bad area for input injection: {width}x{height}")
        return PynputInjector((left, top, width, height))
