"""The ``pattern`` source: synthetic moving video stamped with a frame counter and its capture time.

The stamp is three rows of large black/white cells near the top-left corner, readable back from the
decoded picture after lossy compression (:func:`read_pattern_stamp`). Each row is a ``1 0`` sync pair,
64 data bits (most significant first) and a ``0 1`` sync pair:

* row 0: the frame counter;
* row 1: the capture time in milliseconds since the epoch;
* row 2: CRC-32 of both (8 bytes each, big-endian) followed by its bitwise complement.

Cells are ``width // 80`` pixels square (16 at 1280 wide). The rest of the picture pans and has a
bouncing box, so an encoder sees real motion. Frames are built in ``yuv420p`` straight from a
pre-rendered background: one copy and a few small writes per frame.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from conf_cli import CapturedFrame, ConfError, Pacer, Source, SourceFactory

from .options import opt_float, opt_size

STAMP_COLUMNS = 68  # 2 sync + 64 data + 2 sync
STAMP_ROWS = 3
_WHITE, _BLACK = 235, 16
_SYNC_START, _SYNC_END = (1, 0), (0, 1)


@dataclass(frozen=True, slots=True)
class PatternStamp:
    """What a pattern frame carries: its counter and its capture time (seconds, millisecond precision)."""

    counter: int
    capture_time: float


def cell_size(width: int) -> int:
    """The side of a stamp cell in pixels for a picture ``width`` pixels wide."""
    return max(4, width // 80)


def _bits(value: int) -> list[int]:
    return [(value >> (63 - i)) & 1 for i in range(64)]


def _check_word(counter: int, millis: int) -> int:
    crc = zlib.crc32(counter.to_bytes(8, "big") + millis.to_bytes(8, "big"))
    return (crc << 32) | (crc ^ 0xFFFFFFFF)


def stamp_bits(counter: int, millis: int) -> npt.NDArray[np.uint8]:
    """The stamp's cells (rows x columns of 0/1) for a counter and a time in milliseconds."""
    rows = [
        [*_SYNC_START, *_bits(word), *_SYNC_END] for word in (counter, millis, _check_word(counter, millis))
    ]
    return np.array(rows, dtype=np.uint8)


class PatternGenerator:
    """Renders pattern frames of one size; :meth:`render` costs one frame copy and a few small writes."""

    def __init__(self, width: int = 1280, height: int = 720) -> None:
        if width < 320 or height < 120 or width % 2 or height % 2:
            raise ConfError(f"pattern size {width}x{height} must be even and at least 320x120")
        self.width, self.height = width, height
        self.cell = cell_size(width)
        w2, h2 = width // 2, height // 2
        # A background twice as wide as the picture: each frame is a window into it, so the picture pans.
        xs = np.arange(2 * width)
        ys = np.arange(height)[:, None]
        bars = ((xs // (width // 4)) % 4) * 40
        stripes = ((xs[None, :] + ys) // 24 % 2) * 30
        self._bg_y = (40 + bars[None, :] + stripes + ys * 60 // height).astype(np.uint8)
        cx = np.arange(2 * w2)
        cy = np.arange(h2)[:, None]
        self._bg_u = (128 + 60 * np.sin(cx / w2 * 2 * np.pi) + 0 * cy).astype(np.uint8)
        self._bg_v = (128 + 60 * np.cos(cx / w2 * 3 * np.pi) + (cy * 40 // h2) - 20).astype(np.uint8)
        self._buffer = np.empty((height * 3 // 2, width), dtype=np.uint8)
        flat = self._buffer.reshape(-1)
        self._y = self._buffer[:height]
        self._u = flat[width * height : width * height + w2 * h2].reshape(h2, w2)
        self._v = flat[width * height + w2 * h2 :].reshape(h2, w2)
        self.box = max(32, height // 6) // 2 * 2
        half = self.cell // 2
        self._margin = (
            self.cell - half,
            self.cell * (1 + STAMP_ROWS) + half,
            self.cell - half,
            self.cell * (1 + STAMP_COLUMNS) + half,
        )

    def render(self, counter: int, capture_time: float) -> av.VideoFrame:
        """A ``yuv420p`` frame for ``counter`` stamped with ``capture_time`` (rounded to the millisecond)."""
        width, height, cell, box = self.width, self.height, self.cell, self.box
        shift = (counter * 8) % width
        self._y[:] = self._bg_y[:, shift : shift + width]
        self._u[:] = self._bg_u[:, shift // 2 : shift // 2 + width // 2]
        self._v[:] = self._bg_v[:, shift // 2 : shift // 2 + width // 2]
        # A box bouncing between the stamp and the bottom edge.
        span_x, span_y = width - box, height - box - 6 * cell
        bx = abs((counter * 12) % (2 * span_x) - span_x) // 2 * 2
        by = 6 * cell + abs((counter * 7) % (2 * span_y) - span_y) // 2 * 2
        self._y[by : by + box, bx : bx + box] = 200
        self._y[by + box // 4 : by + 3 * box // 4, bx + box // 4 : bx + 3 * box // 4] = 60
        self._u[by // 2 : (by + box) // 2, bx // 2 : (bx + box) // 2] = 90
        self._v[by // 2 : (by + box) // 2, bx // 2 : (bx + box) // 2] = 200
        # The stamp, on a neutral grey margin of half a cell.
        y0, y1, x0, x1 = self._margin
        self._y[y0:y1, x0:x1] = 128
        self._u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = 128
        self._v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = 128
        cells = np.where(stamp_bits(counter, round(capture_time * 1000)), _WHITE, _BLACK).astype(np.uint8)
        self._y[cell : cell * (1 + STAMP_ROWS), cell : cell * (1 + STAMP_COLUMNS)] = cells.repeat(
            cell, 0
        ).repeat(cell, 1)
        return av.VideoFrame.from_ndarray(self._buffer, format="yuv420p")


def _luma(image: npt.NDArray[Any] | av.VideoFrame) -> npt.NDArray[Any]:
    if isinstance(image, av.VideoFrame):
        if image.format.name in ("yuv420p", "yuvj420p", "yuv422p", "yuv444p", "gray"):
            plane = image.planes[0]
            rows = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(plane.height, plane.line_size)
            return rows[:, : plane.width]
        return image.to_ndarray(format="gray")
    array = np.asarray(image)
    if array.ndim == 3:
        return array[:, :, :3].mean(axis=2)
    if array.ndim == 2:
        return array
    raise ValueError(f"expected a 2-D grey or 3-D colour picture, not shape {array.shape}")


def read_pattern_stamp(image: npt.NDArray[Any] | av.VideoFrame) -> PatternStamp | None:
    """Read the counter and capture time back from a pattern picture, or ``None`` if there is no stamp.

    ``image`` is an :class:`av.VideoFrame` or a numpy picture (grey ``HxW``, or ``HxWx3``/``HxWx4``
    colour, any channel order). Each cell is judged by the mean of its inner half against a threshold
    halfway between the sync cells, so compression noise and blur at the cell edges do not matter.
    """
    luma = _luma(image)
    height, width = luma.shape
    cell = cell_size(width)
    top = left = cell
    if width < left + STAMP_COLUMNS * cell or height < top + STAMP_ROWS * cell:
        return None
    area = np.asarray(
        luma[top : top + STAMP_ROWS * cell, left : left + STAMP_COLUMNS * cell], dtype=np.float32
    )
    blocks = area.reshape(STAMP_ROWS, cell, STAMP_COLUMNS, cell)
    q = cell // 4
    means = blocks[:, q : cell - q, :, q : cell - q].mean(axis=(1, 3))
    white = means[:, [0, -1]].mean()
    black = means[:, [1, -2]].mean()
    if white - black < 60:
        return None
    bits = (means > (white + black) / 2).astype(np.uint8)
    if (bits[:, :2] != _SYNC_START).any() or (bits[:, -2:] != _SYNC_END).any():
        return None
    words = [int("".join(map(str, row[2:-2])), 2) for row in bits]
    counter, millis, check = words
    if check != _check_word(counter, millis):
        return None
    return PatternStamp(counter, millis / 1000)


class PatternSource(Source):
    """Pattern frames at a steady rate, each stamped with its counter and capture time."""

    kind = "video"

    def __init__(self, width: int = 1280, height: int = 720, fps: float = 30) -> None:
        self.generator = PatternGenerator(width, height)
        self.fps = fps
        self.counter = 0
        self._pacer = Pacer(1 / fps)
        self._time_base = Fraction(1, 90_000)

    def read(self) -> CapturedFrame | None:
        """The next frame, at the configured rate; its capture time is rounded to the millisecond."""
        if not self._pacer.wait():
            return None
        capture_time = round(time.time() * 1000) / 1000
        frame = self.generator.render(self.counter, capture_time)
        frame.pts = round(self.counter * 90_000 / self.fps)
        frame.time_base = self._time_base
        self.counter += 1
        return CapturedFrame(frame, capture_time)

    def close(self) -> None:
        """Stop: a pending or later read returns ``None``."""
        self._pacer.stop()


class PatternSourceFactory(SourceFactory):
    """``pattern``: a synthetic moving test picture with a machine-readable counter and timestamp."""

    name = "pattern"
    kind = "video"
    description = "moving test picture stamped with frame counter and capture time (size, fps)"

    def open(self, options: Mapping[str, Any]) -> PatternSource:
        """Options: ``size`` or ``width``/``height`` (default 1280x720), ``fps`` (default 30)."""
        width, height = opt_size(options, (1280, 720))
        return PatternSource(width, height, opt_float(options, "fps", 30.0))
