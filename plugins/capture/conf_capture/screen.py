"""The ``screen`` source: a monitor or a region of the desktop, grabbed with mss at a steady rate.

Options:

* ``monitor``: the monitor number as mss counts them (1 is the first; 0 is every monitor together);
  ``device`` is read the same way, so ``conf share screen --device 2`` shares the second monitor;
* ``region``: ``x,y,width,height`` in desktop pixels (instead of a whole monitor);
* ``fps``: frames per second (default 15).

Each grab is BGRA; it is copied once, straight into a new ``bgra`` :class:`av.VideoFrame` plane, which is
more than ten times faster than building the frame from a numpy array per frame. Widths whose rows need
padding in the frame go through one reused numpy buffer. Odd sizes are trimmed to even (H.264 needs it).
mss, numpy and the X libraries are imported only when a source opens, so this module imports anywhere.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping
from fractions import Fraction
from typing import Any, cast

import av

from conf_cli import CapturedFrame, ConfError, DeviceInfo, Pacer, Source, SourceFactory

from .options import opt_float, opt_int, opt_region

DEFAULT_FPS = 15.0
_TIME_BASE = Fraction(1, 90_000)


def _display_problem() -> str | None:
    """Why no screen can be grabbed here (on X11 without a DISPLAY), or ``None``."""
    if (
        sys.platform.startswith("linux")
        and not os.environ.get("DISPLAY")
        and not os.environ.get("WAYLAND_DISPLAY")
    ):
        return "DISPLAY is not set"
    return None


def _no_display(reason: str) -> ConfError:
    return ConfError(f"no display: {reason}; run under a desktop session or share 'pattern' instead")


def _open_mss() -> Any:
    """An mss grabber (``mss.MSS`` in 10.x, ``mss.mss`` before); ConfError if there is no screen."""
    reason = _display_problem()
    if reason is not None:
        raise _no_display(reason)
    try:
        import mss
    except ImportError:
        raise ConfError("screen capture needs the mss package: pip install mss") from None
    maker = getattr(mss, "MSS", None) or mss.mss
    try:
        return maker()
    except Exception as exc:  # mss raises ScreenShotError; Xlib problems surface as others
        raise _no_display(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


class ScreenSource(Source):
    """Grabs one rectangle of the desktop at ``fps`` frames per second."""

    kind = "screen"

    def __init__(self, grabber: Any, area: dict[str, int], fps: float = DEFAULT_FPS) -> None:
        self._grabber = grabber
        self.area = area
        self.width = area["width"]
        self.height = area["height"]
        self.fps = fps
        self.frames = 0
        self._pacer = Pacer(1 / fps)
        self._lock = threading.Lock()
        self._closed = False
        self._padded: Any = None  # a reused buffer for widths whose frame rows are padded

    def read(self) -> CapturedFrame | None:
        """The next picture, at the configured rate; ``None`` once closed."""
        if not self._pacer.wait():
            return None
        with self._lock:
            if self._closed:
                return None
            capture_time = time.time()
            try:
                shot = self._grabber.grab(self.area)
            except Exception as exc:
                raise ConfError(f"screen capture failed: {exc}") from None
        frame = self._to_frame(shot.raw, shot.width, shot.height)
        frame.pts = round(self.frames * 90_000 / self.fps)
        frame.time_base = _TIME_BASE
        self.frames += 1
        return CapturedFrame(frame, capture_time)

    def _to_frame(self, raw: bytearray, width: int, height: int) -> av.VideoFrame:
        frame = av.VideoFrame(self.width, self.height, "bgra")
        plane = frame.planes[0]
        if width == self.width and height == self.height and plane.line_size == width * 4:
            plane.update(cast(bytes, raw))  # any buffer will do: no copy
            return frame
        import numpy as np

        if self._padded is None or self._padded.shape != (self.height, plane.line_size):
            self._padded = np.zeros((self.height, plane.line_size), dtype=np.uint8)
        pixels = np.frombuffer(raw, dtype=np.uint8).reshape(height, width * 4)
        self._padded[:, : self.width * 4] = pixels[: self.height, : self.width * 4]
        plane.update(self._padded)
        return frame

    def close(self) -> None:
        """Stop grabbing and release the X connection; a pending read returns ``None``."""
        self._pacer.stop()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            close = getattr(self._grabber, "close", None)
            if close is not None:
                close()


def _monitor_area(monitors: list[dict[str, int]], number: int) -> dict[str, int]:
    if not 0 <= number < len(monitors):
        count = len(monitors) - 1
        raise ConfError(f"no monitor {number}: this desktop has {count} (1 to {count}; 0 is all of them)")
    return dict(monitors[number])


def _even(area: dict[str, int]) -> dict[str, int]:
    area = {key: int(area[key]) for key in ("left", "top", "width", "height")}
    area["width"] -= area["width"] % 2
    area["height"] -= area["height"] % 2
    return area


class ScreenSourceFactory(SourceFactory):
    """``screen``: a monitor or a region of the desktop (mss)."""

    name = "screen"
    kind = "screen"
    description = "the desktop: a monitor (monitor=N) or a region (region=x,y,w,h), fps (default 15)"

    def list_devices(self) -> list[DeviceInfo]:
        """Every monitor with its size, or one unavailable row saying why there is none."""
        try:
            grabber = _open_mss()
        except ConfError as exc:
            reason = str(exc).removeprefix("no display: ").split(";")[0]
            return [DeviceInfo("1", "screen", available=False, reason=reason)]
        try:
            monitors = list(grabber.monitors)
        finally:
            grabber.close()
        devices = []
        for number, monitor in enumerate(monitors):
            size = f"{monitor['width']}x{monitor['height']} at {monitor['left']},{monitor['top']}"
            label = "all monitors" if number == 0 else f"monitor {number}"
            devices.append(DeviceInfo(str(number), f"{label}: {size}"))
        return devices

    def open(self, options: Mapping[str, Any]) -> ScreenSource:
        """Options: ``monitor`` (or ``device``, default 1), ``region`` (``x,y,w,h``), ``fps`` (default 15)."""
        fps = opt_float(options, "fps", DEFAULT_FPS)
        region = opt_region(options)
        key = "monitor" if options.get("monitor") not in (None, "") else "device"
        number = opt_int(options, key, 1, minimum=0)
        grabber = _open_mss()
        try:
            monitors = list(grabber.monitors)
            if region is not None:
                x, y, w, h = region
                desktop = monitors[0]
                right, bottom = desktop["left"] + desktop["width"], desktop["top"] + desktop["height"]
                if x + w > right or y + h > bottom:
                    raise ConfError(
                        f"region {x},{y},{w},{h} goes beyond the desktop "
                        f"({desktop['width']}x{desktop['height']} at {desktop['left']},{desktop['top']})"
                    )
                area = {"left": x, "top": y, "width": w, "height": h}
            else:
                area = _monitor_area(monitors, number)
            area = _even(area)
            grabber.grab(area)  # fails now, in one line, rather than in the capture thread
        except ConfError:
            grabber.close()
            raise
        except Exception as exc:
            grabber.close()
            raise ConfError(f"cannot grab the screen: {exc}") from None
        return ScreenSource(grabber, area, fps)
