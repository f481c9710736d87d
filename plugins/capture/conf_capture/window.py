"""The ``window`` sink: received video in a desktop window (pygame, SDL2), where a window system is present.

One :class:`~.video_window.VideoWindow` per process (SDL drives one main window): every ``window`` sink
feeds it, and it shows the pictures of the most recently opened sink that is still open, so the newest
video track is on screen and the one before comes back when it ends. The window opens on the first
picture and closes when the last sink closes. A window the user closes stays closed for the tracks that
were showing; a new track opens a new one.

Opening a sink checks for a window system (``DISPLAY`` or ``WAYLAND_DISPLAY``, and that a local X server
answers) and for pygame, and raises one :class:`~conf_cli.errors.ConfError` line when either is missing.
A window that fails later makes :meth:`WindowSink.write` raise; conf reports that once and goes on.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any

import av

from conf_cli import ConfError, Frame, Sink, SinkFactory

from .options import opt_str
from .video_window import VideoWindow, WindowEvent

NO_WINDOW_SYSTEM = "no window system: DISPLAY is not set; use --view preview"
_LOCAL_DISPLAY = re.compile(r"^(?:unix)?:(\d+)(?:\.\d+)?$")


def window_system_problem(env: Mapping[str, str] | None = None) -> str | None:
    """Why no window can be opened here (one line), or ``None`` when a window system seems present.

    A local X display (``:N``) must accept a connection on its socket; a remote one or Wayland is trusted.
    """
    environ = os.environ if env is None else env
    display = environ.get("DISPLAY", "")
    if not display:
        return None if environ.get("WAYLAND_DISPLAY") else NO_WINDOW_SYSTEM
    match = _LOCAL_DISPLAY.match(display)
    if match is None:
        return None
    path = f"/tmp/.X11-unix/X{match.group(1)}"
    for address in (path, "\0" + path):  # the file, then Linux's abstract socket of the same name
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            probe.connect(address)
            return None
    return f"no window system: no X server answers on DISPLAY={display}; use --view preview"


class WindowSink(Sink):
    """Feeds the process's window with one track's pictures (audio frames are ignored)."""

    def __init__(self, owner: WindowSinkFactory, title: str) -> None:
        self.owner = owner
        self.title = title
        self.frames = 0
        self.dismissed = False
        """The user closed the window while this sink was open: its pictures are not shown again."""
        self.closed = False

    def write(self, frame: Frame) -> None:
        """Hand a picture to the window (never waits); ConfError if the window failed."""
        if not isinstance(frame, av.VideoFrame) or self.closed:
            return
        self.frames += 1
        self.owner._show(self, frame)

    def close(self) -> None:
        """Stop feeding the window; the last open sink's close closes it."""
        if not self.closed:
            self.closed = True
            self.owner._release(self)


class WindowSinkFactory(SinkFactory):
    """``window``: received video shown in a desktop window (needs pygame and a window system)."""

    name = "window"
    kind = "video"
    consumes = "frames"
    description = "received video in a desktop window (pygame; needs DISPLAY or WAYLAND_DISPLAY)"

    def __init__(self) -> None:
        self.window: VideoWindow | None = None
        self._sinks: list[WindowSink] = []
        self._lock = threading.Lock()
        self._on_resize: Callable[[int, int], None] | None = None

    def open(self, options: Mapping[str, Any]) -> WindowSink:
        """Options: ``title`` of the window while this sink's pictures are shown; ``on_resize``, called
        (from the window's thread) with the window's width and height when it opens and whenever it is
        resized (so that the layer that fits its size can be asked for)."""
        problem = window_system_problem()
        if problem is not None:
            raise ConfError(problem)
        if importlib.util.find_spec("pygame") is None:
            raise ConfError("the window viewer needs pygame (pip install pygame); or use --view preview")
        sink = WindowSink(self, opt_str(options, "title", "conf") or "conf")
        on_resize = options.get("on_resize")
        with self._lock:
            if callable(on_resize):
                self._on_resize = on_resize
            self._sinks.append(sink)
        return sink

    def _show(self, sink: WindowSink, frame: av.VideoFrame) -> None:
        with self._lock:
            if sink.dismissed or not self._sinks or self._sinks[-1] is not sink:
                return
            window = self.window
            if window is not None and window.finished:
                if window.error is not None:
                    raise ConfError(window.error)
                for each in self._sinks:  # the user closed it: keep it closed for these tracks
                    each.dismissed = True
                self.window = None
                return
            if window is None:
                window = self.window = VideoWindow(sink.title, on_event=self._event)
        window.show(frame, sink.title)

    def _event(self, event: WindowEvent) -> None:
        on_resize = self._on_resize
        if event.type == "resized" and on_resize is not None:
            on_resize(event.width, event.height)

    def _release(self, sink: WindowSink) -> None:
        with self._lock:
            with contextlib.suppress(ValueError):
                self._sinks.remove(sink)
            window = None
            if not self._sinks:
                window, self.window = self.window, None
        if window is not None:
            window.close()
