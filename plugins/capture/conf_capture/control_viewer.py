"""The ``control`` sink: the remote-control viewer, a window that shows a controlled desktop and takes input.

It is a :class:`~.video_window.VideoWindow` of its own: received screen pictures go in, and what the user
does over the picture comes out as ``control_input`` messages (docs/protocol.md), handed to the
``on_input`` callable given when the sink opens (called in the window's thread). Positions are fractions
of the picture (0..1), so they scale onto the controlled desktop whatever the window's size. Closing the
window calls ``on_close``: the controller lets go.

Opening checks for a window system and pygame, like the ``window`` sink, and raises one
:class:`~conf_cli.errors.ConfError` line when either is missing.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from typing import Any

import av

from conf_cli import ConfError, Frame, Sink, SinkFactory
from conf_cli.protocol.control import MAX_KEY_CHARS, MAX_SCROLL_STEPS, Message

from .options import opt_str
from .video_window import VideoWindow, WindowEvent
from .window import window_system_problem

OnInput = Callable[[Message], None]
INPUT_POLL = 0.004  # seconds: how soon the window sees the user's input when no picture arrives


def input_message(event: WindowEvent) -> Message | None:
    """The ``control_input`` message for a window event, or ``None`` for events that drive nothing."""
    where: Message = {}
    if event.x is not None and event.y is not None:
        where = {"x": round(min(max(event.x, 0.0), 1.0), 5), "y": round(min(max(event.y, 0.0), 1.0), 5)}
    if event.type == "pointer":
        return {"type": "control_input", "action": "move", **where} if where else None
    if event.type == "button" and event.button in (1, 2, 3):
        return {
            "type": "control_input",
            "action": "button",
            "button": event.button,
            "pressed": event.pressed,
            **where,
        }
    if event.type == "wheel" and (event.dx or event.dy):
        dx = max(-MAX_SCROLL_STEPS, min(MAX_SCROLL_STEPS, event.dx))
        dy = max(-MAX_SCROLL_STEPS, min(MAX_SCROLL_STEPS, event.dy))
        return {"type": "control_input", "action": "scroll", "dx": dx, "dy": dy}
    if event.type == "key" and event.key and len(event.key) <= MAX_KEY_CHARS and event.key.isprintable():
        return {"type": "control_input", "action": "key", "key": event.key, "pressed": event.pressed}
    return None


class ControlViewerSink(Sink):
    """Shows one track's pictures in a window of its own and reports input over them."""

    def __init__(self, title: str, on_input: OnInput, on_close: Callable[[], None]) -> None:
        self.on_input = on_input
        self.on_close = on_close
        self.held: dict[tuple[str, object], Message] = {}  # keys and buttons down, with their release
        self.frames = 0
        self.closed = False
        self.window = VideoWindow(title, on_event=self._event, poll_interval=INPUT_POLL)

    def _event(self, event: WindowEvent) -> None:
        message = input_message(event)
        if message is not None:
            held = (message["action"], message.get("key") or message.get("button"))
            if message.get("pressed") is True:
                release = {k: v for k, v in message.items() if k not in ("x", "y")}
                self.held[held] = {**release, "pressed": False}
            elif message.get("pressed") is False:
                self.held.pop(held, None)
            self.on_input(message)
        elif event.type == "focus_lost":  # their releases will go elsewhere: release them over there now
            releases, self.held = list(self.held.values()), {}
            for release in releases:
                self.on_input(release)
        elif event.type == "closed":
            self.on_close()

    def write(self, frame: Frame) -> None:
        """Show a picture (never waits); ConfError if the window failed."""
        if not isinstance(frame, av.VideoFrame) or self.closed:
            return
        if self.window.finished:
            if self.window.error is not None:
                raise ConfError(self.window.error)
            return  # closed by the user
        self.frames += 1
        self.window.show(frame)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.window.close()


class ControlViewerFactory(SinkFactory):
    """``control``: the remote-control viewer (pygame; needs a window system)."""

    name = "control"
    kind = "video"
    consumes = "frames"
    description = "a controlled desktop in a window that takes your pointer and keys (remote control)"

    def open(self, options: Mapping[str, Any]) -> ControlViewerSink:
        """Options: ``title``; ``on_input`` (called with each ``control_input`` message) and ``on_close``."""
        problem = window_system_problem()
        if problem is not None:
            raise ConfError(problem.replace("; use --view preview", "; remote control needs one"))
        if importlib.util.find_spec("pygame") is None:
            raise ConfError("remote control needs pygame for its viewer window (pip install pygame)")
        on_input = options.get("on_input") or (lambda message: None)
        on_close = options.get("on_close") or (lambda: None)
        return ControlViewerSink(
            opt_str(options, "title", "conf control") or "conf control", on_input, on_close
        )
