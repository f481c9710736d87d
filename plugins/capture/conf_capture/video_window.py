"""A desktop window that shows pictures and reports input: frames in, events out (pygame, SDL2).

:class:`VideoWindow` is reusable: the ``window`` sink shows received video in it, and a remote-control
viewer can read the pointer and keys that happen over the picture from :meth:`VideoWindow.next_event`.

Every SDL call is made in the window's own thread (SDL on X11 works from a non-main thread when the
thread that initialised the video subsystem is the only one that uses it). :meth:`VideoWindow.show` only
stores the newest frame; the window thread converts and scales the newest one when it draws, so a slow
window drops pictures instead of queueing them, and the caller (a decoder thread) never waits for it.
The picture is scaled to the window keeping its aspect ratio (black bars around it); input positions are
reported as fractions of the picture (0..1), so that they map onto the sender's screen whatever the
window's size.

pygame is imported in the window thread, never at module level: importing this module needs no window
system and no pygame.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import av
from av.video.reformatter import VideoReformatter

log = logging.getLogger("conf.capture.window")

POLL_INTERVAL = 0.02  # seconds between looks at the window's events when no picture arrives
MAX_EVENTS = 256
SCREEN_MARGIN = 0.9  # a new window takes at most this share of the screen

EventType = Literal["pointer", "button", "wheel", "key", "resized", "closed", "focus_lost"]


@dataclass(frozen=True, slots=True)
class WindowEvent:
    """Something the user did in the window.

    ``x``/``y`` are the pointer's position as fractions of the picture (0..1; ``None`` when outside it or
    unknown). ``button`` is 1 (left), 2 (middle), 3 (right); ``pressed`` says down or up for buttons and
    keys; ``key`` is SDL's name of a key (``a``, ``return``, ``left shift``) and ``text`` what it typed;
    ``dx``/``dy`` are wheel steps; ``width``/``height`` the window's new size for ``resized``;
    ``focus_lost`` says keys and buttons still down will not be seen coming up here.
    """

    type: EventType
    x: float | None = None
    y: float | None = None
    button: int = 0
    pressed: bool = False
    key: str = ""
    text: str = ""
    dx: int = 0
    dy: int = 0
    width: int = 0
    height: int = 0


Rect = tuple[int, int, int, int]


def fit(picture: tuple[int, int], window: tuple[int, int]) -> Rect:
    """Where a ``picture`` (w, h) goes in a ``window`` (w, h): scaled to fit, aspect kept, centred.

    Width and height are even (what the scaler wants) and at least 2.
    """
    pw, ph = picture
    ww, wh = window
    scale = min(ww / pw, wh / ph)
    w = max(2, int(pw * scale) & ~1)
    h = max(2, int(ph * scale) & ~1)
    return (ww - w) // 2, (wh - h) // 2, w, h


def initial_size(picture: tuple[int, int], screen: tuple[int, int]) -> tuple[int, int]:
    """A new window's size: the picture's, shrunk (aspect kept) to fit in most of the screen."""
    pw, ph = picture
    sw, sh = screen
    if sw <= 0 or sh <= 0:
        return pw, ph
    scale = min(1.0, sw * SCREEN_MARGIN / pw, sh * SCREEN_MARGIN / ph)
    return max(2, int(pw * scale)), max(2, int(ph * scale))


def _inside(rect: Rect | None, pos: tuple[int, int]) -> tuple[float | None, float | None]:
    if rect is None:
        return None, None
    x, y, w, h = rect
    fx, fy = (pos[0] - x) / w, (pos[1] - y) / h
    if 0 <= fx <= 1 and 0 <= fy <= 1:
        return fx, fy
    return None, None


class VideoWindow:
    """One desktop window, run by its own thread from the first :meth:`show` until :meth:`close`.

    :attr:`error` holds why the window failed (then :attr:`finished` is true); :attr:`closed_by_user` says
    the user closed it. Events go to a bounded queue (the oldest dropped when full) read with
    :meth:`next_event`, and to ``on_event`` (called in the window thread) when given.
    """

    def __init__(
        self,
        title: str = "conf",
        *,
        size: tuple[int, int] | None = None,
        on_event: Callable[[WindowEvent], None] | None = None,
        max_events: int = MAX_EVENTS,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.title = title
        self.poll_interval = poll_interval
        """Seconds between looks at the window's input when no picture arrives (input latency's bound)."""
        self.size = size
        self.on_event = on_event
        self.frames_shown = 0
        self.error: str | None = None
        self.closed_by_user = False
        self._events: queue.Queue[WindowEvent] = queue.Queue(max_events)
        self._latest: av.VideoFrame | None = None
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._finished = threading.Event()

    @property
    def finished(self) -> bool:
        """Whether the window is gone (closed, closed by the user, or failed)."""
        return self._finished.is_set()

    def show(self, frame: av.VideoFrame, title: str | None = None) -> None:
        """Show ``frame`` next (from any thread; never waits). Opens the window on the first call."""
        with self._wake:
            self._latest = frame
            if title is not None:
                self.title = title
            self._wake.notify()
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._run, name="conf-window", daemon=True)
            self._thread.start()

    def next_event(self, timeout: float | None = None) -> WindowEvent | None:
        """The next input event, waiting up to ``timeout`` seconds (``None``: forever); ``None`` if none."""
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self, timeout: float = 2.0) -> None:
        """Close the window and wait (up to ``timeout`` s) for its thread; safe to call twice."""
        self._stop.set()
        with self._wake:
            self._wake.notify()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if thread is None:
            self._finished.set()

    # -- the window thread ------------------------------------------------------------------------------

    def _emit(self, event: WindowEvent) -> None:
        while True:
            try:
                self._events.put_nowait(event)
                break
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._events.get_nowait()
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a consumer's bug must not close the window
                log.exception("window event handler failed")

    def _run(self) -> None:
        try:
            os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame prints a banner otherwise
            import pygame

            pygame.display.init()
            try:
                _Drawing(self, pygame).loop()
            finally:
                pygame.display.quit()
        except Exception as exc:  # pygame.error and whatever SDL raised
            self.error = f"cannot open a window: {exc}"
            log.warning("%s", self.error)
        finally:
            self._finished.set()

    def _take(self) -> tuple[av.VideoFrame | None, str]:
        with self._wake:
            if self._latest is None and not self._stop.is_set():
                self._wake.wait(self.poll_interval)
            frame, self._latest = self._latest, None
            return frame, self.title


class _Drawing:
    """The window thread's state: the SDL surface, the last picture and where it is drawn."""

    def __init__(self, window: VideoWindow, pygame: Any) -> None:
        self.window = window
        self.pg = pygame
        self.surface: Any = None
        self.title = ""
        self.last: av.VideoFrame | None = None
        self.rect: Rect | None = None
        self.reformatter = VideoReformatter()

    def loop(self) -> None:
        window = self.window
        while not window._stop.is_set():
            redraw = self.events()
            if window.closed_by_user:
                return
            frame, title = window._take()
            if frame is not None:
                self.last = frame
                redraw = True
            if redraw and self.last is not None:
                self.draw(self.last, title)

    def events(self) -> bool:
        """Handle pending window events; whether the picture must be drawn again."""
        if self.surface is None:
            return False
        pg, emit = self.pg, self.window._emit
        redraw = False
        for event in pg.event.get():
            if event.type == pg.QUIT:
                self.window.closed_by_user = True
                emit(WindowEvent("closed"))
            elif event.type == pg.VIDEORESIZE:
                redraw = True
                emit(WindowEvent("resized", width=event.w, height=event.h))
            elif event.type in (pg.VIDEOEXPOSE, pg.WINDOWEXPOSED):
                redraw = True
            elif event.type == pg.WINDOWFOCUSLOST:
                emit(WindowEvent("focus_lost"))
            elif event.type == pg.MOUSEMOTION:
                x, y = _inside(self.rect, event.pos)
                emit(WindowEvent("pointer", x, y))
            elif event.type in (pg.MOUSEBUTTONDOWN, pg.MOUSEBUTTONUP) and event.button in (1, 2, 3):
                x, y = _inside(self.rect, event.pos)
                emit(
                    WindowEvent("button", x, y, button=event.button, pressed=event.type == pg.MOUSEBUTTONDOWN)
                )
            elif event.type == pg.MOUSEWHEEL:
                emit(WindowEvent("wheel", dx=int(event.x), dy=int(event.y)))
            elif event.type in (pg.KEYDOWN, pg.KEYUP):
                down = event.type == pg.KEYDOWN
                text = event.unicode if down and event.unicode.isprintable() else ""
                emit(WindowEvent("key", pressed=down, key=pg.key.name(event.key), text=text))
        return redraw

    def draw(self, frame: av.VideoFrame, title: str) -> None:
        pg = self.pg
        if self.surface is None:
            info = pg.display.Info()
            width, height = self.window.size or initial_size(
                (frame.width, frame.height), (info.current_w, info.current_h)
            )
            self.surface = pg.display.set_mode((width, height), pg.RESIZABLE)
            self.window._emit(WindowEvent("resized", width=width, height=height))  # its first size
        if title != self.title:
            pg.display.set_caption(title)
            self.title = title
        rect = fit((frame.width, frame.height), self.surface.get_size())
        x, y, w, h = rect
        rgb = self.reformatter.reformat(frame, w, h, "rgb24", interpolation="BILINEAR").to_ndarray()
        if not rgb.flags.c_contiguous:  # rows padded (most widths): pygame needs the pixels in one run
            rgb = rgb.copy()
        image = pg.image.frombuffer(rgb, (w, h), "RGB")
        if rect != self.rect:
            self.surface.fill((0, 0, 0))
            self.rect = rect
        self.surface.blit(image, (x, y))
        pg.display.flip()
        self.window.frames_shown += 1
