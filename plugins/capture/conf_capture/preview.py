"""The ``preview`` sink: a decoded picture as a small rich renderable, drawn with half blocks.

Each frame is scaled down with PyAV (to 48x24 pixels by default) and kept as RGB; the renderable draws
two pixel rows per text line with ``▀``: the foreground colour is the upper pixel, the background the
lower (colours rounded to 32 levels a channel, so that cell styles are shared and cached). Writing a
frame costs one small scale-and-convert; drawing happens only when the view renders, shrunk further
(nearest pixel) when the space it is drawn in is smaller than the picture.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from av.video.reformatter import VideoReformatter
from rich.color import Color
from rich.color_triplet import ColorTriplet
from rich.console import Console, ConsoleOptions
from rich.segment import Segment
from rich.style import Style

from conf_cli import ConfError, Frame, Sink, SinkFactory

from .options import opt_int

UPPER_HALF = "▀"
_LEVEL_MASK = 0xF8  # 32 levels per channel: invisible at this size, and colours repeat across frames
_MAX_STYLES = 1 << 16
_STYLES: dict[int, Segment] = {}  # (upper << 24 | lower) -> its cell, shared by every preview


def _colour(rgb: int) -> Color:
    return Color.from_triplet(ColorTriplet(rgb >> 16, (rgb >> 8) & 0xFF, rgb & 0xFF))


def _style(upper: int, lower: int) -> Style:
    return Style(color=_colour(upper), bgcolor=_colour(lower))


class HalfBlockImage:
    """A rich renderable of an RGB picture (``H x W x 3``, ``H`` even): ``H / 2`` lines of ``W`` cells."""

    def __init__(self, rgb: npt.NDArray[np.uint8]) -> None:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] % 2:
            raise ValueError(f"expected an RGB picture with an even height, not shape {rgb.shape}")
        self.rgb = rgb

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        """Text lines."""
        return int(self.rgb.shape[0] // 2)

    def lines(self) -> list[list[Segment]]:
        """The picture as lines of segments (one per cell)."""
        quantised = self.rgb.astype(np.uint32) & _LEVEL_MASK
        packed = (quantised[..., 0] << 16) | (quantised[..., 1] << 8) | quantised[..., 2]
        keys = ((packed[0::2].astype(np.uint64) << np.uint64(24)) | packed[1::2]).tolist()
        styles = _STYLES
        if len(styles) > _MAX_STYLES:
            styles.clear()
        lines = []
        for row in keys:
            line = []
            for key in row:
                segment = styles.get(key)
                if segment is None:
                    segment = styles[key] = Segment(UPPER_HALF, _style(key >> 24, key & 0xFFFFFF))
                line.append(segment)
            lines.append(line)
        return lines

    def fitted(self, columns: int, lines: int | None = None) -> HalfBlockImage:
        """This picture shrunk (nearest pixel, aspect kept) to at most ``columns`` x ``lines`` cells."""
        columns = max(1, columns)
        limit = self.height if lines is None else max(1, lines)
        scale = min(1.0, columns / self.width, limit / self.height)
        if scale >= 1.0:
            return self
        width = max(1, int(self.width * scale))
        height = max(1, int(self.height * scale))
        rows = (np.arange(2 * height) * self.rgb.shape[0]) // (2 * height)
        cols = (np.arange(width) * self.width) // width
        return HalfBlockImage(self.rgb[rows][:, cols])

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        """Drawn whole, or shrunk to fit the space given (a panel's width, a layout's height)."""
        image = self.fitted(options.max_width, options.height)
        for line in image.lines():
            yield from line
            yield Segment.line()


class PreviewSink(Sink):
    """Keeps the latest video frame, scaled down, for a terminal view to draw (:meth:`renderable`)."""

    def __init__(self, width: int = 48, height: int = 24) -> None:
        if width < 2 or height < 2 or height % 2:
            raise ConfError(f"preview size {width}x{height} must be at least 2x2 with an even height")
        self.width, self.height = width, height
        self.frames = 0
        self._reformatter = VideoReformatter()
        self._latest: npt.NDArray[np.uint8] | None = None
        self._lock = threading.Lock()

    def write(self, frame: Frame) -> None:
        """Scale a video frame down and keep it (audio frames are ignored)."""
        if not isinstance(frame, av.VideoFrame):
            return
        small = self._reformatter.reformat(frame, self.width, self.height, "rgb24", interpolation="AREA")
        rgb: npt.NDArray[np.uint8] = small.to_ndarray()  # type: ignore[assignment]
        with self._lock:
            self._latest = rgb
            self.frames += 1

    def renderable(self) -> HalfBlockImage | None:
        """The latest picture as a rich renderable, or ``None`` before the first frame."""
        with self._lock:
            latest = self._latest
        return None if latest is None else HalfBlockImage(latest)

    def close(self) -> None:
        """Forget the picture."""
        with self._lock:
            self._latest = None


class PreviewSinkFactory(SinkFactory):
    """``preview``: received video drawn small in the terminal with half-block characters."""

    name = "preview"
    kind = "video"
    consumes = "frames"
    description = "received video drawn in the terminal with half blocks (width, height in pixels)"

    def open(self, options: Mapping[str, Any]) -> PreviewSink:
        """Options: ``width`` (48) and ``height`` (24, even) of the scaled picture in pixels."""
        return PreviewSink(opt_int(options, "width", 48, 2), opt_int(options, "height", 24, 2))
