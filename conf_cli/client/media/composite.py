"""A composite of a meeting: every shared picture in its own tile on one canvas, every voice in one mix.

:class:`Composite` hands out a sink for each received track (:meth:`Composite.sinks_for`): a video sink
keeps only the latest decoded picture of its track, an audio sink queues decoded samples. The recording
loop (:mod:`conf_cli.client.media.recording`) asks, at a steady frame rate, for the next canvas
(:meth:`Composite.picture`) and the audio of the same span (:meth:`Composite.audio`): a tile whose source
stalls shows its last picture again, a track that ends takes its tile away, a new one adds a tile.

Tiles are laid out by :func:`layout` (``grid``: equal cells; ``speaker``: the active speaker's picture
large, the others in a strip below) and each picture is scaled into its cell keeping its shape. A tile
carries its owner's name at the bottom-left; the active speaker's tile has a coloured frame. The active
speaker is the participant whose decoded audio was loudest over the last moments
(:class:`SpeakerTracker`), above a floor of silence.

Everything works in ``yuv420p`` straight into numpy planes (no colour conversion but the scaling
libswscale does), so that four 720p tiles at 30 frames a second fit in one core with the encoder.
"""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from conf_cli.media.layout import LAYOUTS
from conf_cli.media.source import Frame, Sink
from conf_cli.protocol.control import Message

SAMPLE_RATE = 48_000
MAX_AUDIO_BACKLOG = SAMPLE_RATE  # samples queued per track at most (one second); older ones are dropped
AUDIO_PREROLL = SAMPLE_RATE * 60 // 1000  # silence put ahead of a track's first samples, against jitter
SPEAKER_FLOOR = 0.01  # RMS below this is silence
SPEAKER_HOLD = 1.0  # seconds a speaker stays marked after another got louder
SPEAKER_SMOOTHING = 0.3  # weight of the newest level in the smoothed level
BORDER = 4  # pixels of the speaker's frame
LABEL_HEIGHT = 22
BACKGROUND = (16, 128, 128)  # Y, U, V: black
SPEAKER_COLOUR = (170, 40, 160)  # Y, U, V: a bright green

Plane = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    width: int
    height: int


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def layout(count: int, width: int, height: int, kind: str = "grid", speaker: int | None = None) -> list[Rect]:
    """The cells of ``count`` tiles on a ``width`` x ``height`` canvas (even coordinates and sizes).

    ``grid``: as many columns as the square root of ``count`` rounded up, rows as needed, equal cells.
    ``speaker``: tile ``speaker`` (the first if None) fills the top three quarters, the others share the
    bottom quarter in a row."""
    if count <= 0:
        return []
    if kind == "speaker" and count > 1:
        main = speaker if speaker is not None and 0 <= speaker < count else 0
        top = _even(height * 3 / 4)
        strip = _even(width / (count - 1))
        cells: list[Rect] = []
        others = iter(range(count - 1))
        for index in range(count):
            if index == main:
                cells.append(Rect(0, 0, width, top))
            else:
                position = next(others)
                cells.append(Rect(position * strip, top, strip, _even(height - top)))
        return cells
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    cell_w, cell_h = _even(width / columns), _even(height / rows)
    return [Rect((i % columns) * cell_w, (i // columns) * cell_h, cell_w, cell_h) for i in range(count)]


def fit(frame_width: int, frame_height: int, cell: Rect) -> Rect:
    """Where a ``frame_width`` x ``frame_height`` picture goes in ``cell``: as large as fits, its shape
    kept, centred."""
    scale = min(cell.width / max(1, frame_width), cell.height / max(1, frame_height))
    width, height = min(cell.width, _even(frame_width * scale)), min(cell.height, _even(frame_height * scale))
    return Rect(
        cell.x + (cell.width - width) // 2 // 2 * 2,
        cell.y + (cell.height - height) // 2 // 2 * 2,
        width,
        height,
    )


class LabelFont:
    """Renders a name once into a small luma mask (pygame's default font), cached by text."""

    def __init__(self, size: int = 18) -> None:
        self.size = size
        self._cache: dict[str, Plane] = {}
        self._font: Any = None
        self._lock = threading.Lock()

    def mask(self, text: str) -> Plane:
        with self._lock:
            cached = self._cache.get(text)
            if cached is not None:
                return cached
            if self._font is None:
                os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # not on stdout (machine mode)
                import pygame.font

                pygame.font.init()
                self._font = pygame.font.Font(None, self.size + 6)
            import pygame.surfarray

            surface = self._font.render(text, True, (255, 255, 255), (0, 0, 0))
            mask = np.ascontiguousarray(pygame.surfarray.array3d(surface)[:, :, 0].T).astype(np.uint8)
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[text] = mask
            return mask


class TileSink(Sink):
    """The video sink of one track: keeps its latest decoded picture for the next canvas."""

    def __init__(self, composite: Composite, name: str, ssrc: int) -> None:
        self.composite, self.name, self.ssrc = composite, name, ssrc
        self.latest: av.VideoFrame | None = None
        self.pictures = 0

    def write(self, frame: Frame) -> None:
        if isinstance(frame, av.VideoFrame):
            self.latest = frame
            self.pictures += 1

    def close(self) -> None:
        self.composite.remove(self)


class AudioInput(Sink):
    """The audio sink of one track: decoded samples queue here (bounded) until the mix takes them."""

    def __init__(self, composite: Composite, name: str, ssrc: int) -> None:
        self.composite, self.name, self.ssrc = composite, name, ssrc
        self._lock = threading.Lock()
        self._chunks: deque[npt.NDArray[np.float32]] = deque()
        self._queued = 0
        self._started = False

    def write(self, frame: Frame) -> None:
        if not isinstance(frame, av.AudioFrame) or frame.sample_rate != SAMPLE_RATE:
            return
        samples = frame.to_ndarray()
        if samples.dtype == np.int16:
            mono = samples.reshape(-1).astype(np.float32) / 32768.0
        else:
            mono = np.asarray(samples, dtype=np.float32)
            mono = mono[0] if mono.ndim == 2 and frame.format.is_planar else mono.reshape(-1)
        with self._lock:
            if not self._started:
                self._started = True
                self._chunks.append(np.zeros(AUDIO_PREROLL, dtype=np.float32))
                self._queued += AUDIO_PREROLL
            self._chunks.append(mono)
            self._queued += len(mono)
            while self._queued > MAX_AUDIO_BACKLOG and self._chunks:  # the mix fell behind: drop the oldest
                self._queued -= len(self._chunks.popleft())

    def take(self, count: int) -> npt.NDArray[np.float32]:
        """The next ``count`` samples, silence where none arrived in time."""
        out = np.zeros(count, dtype=np.float32)
        filled = 0
        with self._lock:
            while filled < count and self._chunks:
                chunk = self._chunks[0]
                used = min(count - filled, len(chunk))
                out[filled : filled + used] = chunk[:used]
                filled += used
                if used == len(chunk):
                    self._chunks.popleft()
                else:
                    self._chunks[0] = chunk[used:]
            self._queued -= filled
        return out

    def close(self) -> None:
        self.composite.remove(self)


class SpeakerTracker:
    """Who speaks: the name with the loudest smoothed level above :data:`SPEAKER_FLOOR`, kept for
    :data:`SPEAKER_HOLD` seconds after someone else got louder (so that the mark does not flicker)."""

    def __init__(self) -> None:
        self.levels: dict[str, float] = {}
        self.speaker: str | None = None
        self._since = 0.0

    def update(self, levels: dict[str, float], now: float) -> str | None:
        """Feed the RMS level of each name over the latest span (seconds ``now``); the speaker."""
        for name in list(self.levels):
            if name not in levels:
                del self.levels[name]
        for name, level in levels.items():
            old = self.levels.get(name, 0.0)
            self.levels[name] = old + (level - old) * SPEAKER_SMOOTHING
        loudest = max(self.levels, key=lambda n: self.levels[n], default=None)
        if loudest is None or self.levels[loudest] < SPEAKER_FLOOR:
            if self.speaker is not None and (
                self.speaker not in self.levels or now - self._since >= SPEAKER_HOLD
            ):
                self.speaker = None
            return self.speaker
        if loudest != self.speaker:
            current = self.speaker
            if current is None or current not in self.levels or now - self._since >= SPEAKER_HOLD:
                self.speaker = loudest
                self._since = now
        else:
            self._since = now
        return self.speaker


class Composite:
    """The tiles and voices of a meeting, and the canvas and mix made of them."""

    def __init__(self, width: int = 1280, height: int = 720, kind: str = "grid") -> None:
        if width % 2 or height % 2 or width < 160 or height < 120:
            raise ValueError(f"a composite of {width}x{height}: the size must be even and at least 160x120")
        if kind not in LAYOUTS:
            raise ValueError(f"layout {kind!r}: {' or '.join(LAYOUTS)}")
        self.width, self.height, self.kind = width, height, kind
        self.tiles: list[TileSink] = []
        self.voices: list[AudioInput] = []
        self.speakers = SpeakerTracker()
        self.speaker: str | None = None
        self.held = False
        """We are leaving: tracks that close now keep their last picture until the recording stops."""
        self.font = LabelFont()
        self._lock = threading.Lock()
        self._buffer = np.empty((height * 3 // 2, width), dtype=np.uint8)
        flat = self._buffer.reshape(-1)
        self._y = self._buffer[:height]
        quarter = (width // 2) * (height // 2)
        self._u = flat[width * height : width * height + quarter].reshape(height // 2, width // 2)
        self._v = flat[width * height + quarter :].reshape(height // 2, width // 2)
        self._scaled: dict[int, tuple[av.VideoFrame, Rect, Plane]] = {}
        """ssrc -> the picture last scaled for its tile, where it went, and the result (a reused frame)."""

    # -- tracks -------------------------------------------------------------------------------------------

    def sinks_for(self, info: Message) -> list[Sink]:
        """The sink a received track's decoded frames go to (an opener for the media manager)."""
        name, kind, ssrc = str(info.get("name", "")), str(info.get("kind", "")), int(info.get("ssrc", 0))
        with self._lock:
            if kind == "audio" or str(info.get("codec", "")).lower() == "opus":
                voice = AudioInput(self, name, ssrc)
                self.voices = [*self.voices, voice]
                return [voice]
            tile = TileSink(self, name, ssrc)
            self.tiles = [*self.tiles, tile]
            return [tile]

    def hold(self) -> None:
        """Keep every tile as it is from now on (the recording's last frames show the meeting, not the
        empty canvas of tracks closing as we leave)."""
        self.held = True

    def remove(self, sink: Sink) -> None:
        if self.held:
            return
        with self._lock:
            self.tiles = [t for t in self.tiles if t is not sink]
            self.voices = [v for v in self.voices if v is not sink]
            if isinstance(sink, TileSink):
                self._scaled.pop(sink.ssrc, None)

    # -- audio ----------------------------------------------------------------------------------------------

    def audio(self, count: int, now: float) -> npt.NDArray[np.float32]:
        """The mix of the next ``count`` samples of every voice (clipped to [-1, 1]); updates the speaker."""
        mix = np.zeros(count, dtype=np.float32)
        levels: dict[str, float] = {}
        for voice in self.voices:
            samples = voice.take(count)
            mix += samples
            level = float(np.sqrt(np.mean(samples * samples))) if count else 0.0
            levels[voice.name] = max(levels.get(voice.name, 0.0), level)
        self.speaker = self.speakers.update(levels, now)
        np.clip(mix, -1.0, 1.0, out=mix)
        return mix

    # -- video ----------------------------------------------------------------------------------------------

    def picture(self) -> av.VideoFrame:
        """The canvas now: each tile's latest picture in its cell, names, the speaker framed."""
        y, u, v = self._y, self._u, self._v
        y.fill(BACKGROUND[0])
        u.fill(BACKGROUND[1])
        v.fill(BACKGROUND[2])
        tiles = [t for t in self.tiles if t.latest is not None]
        names = [t.name for t in tiles]
        speaker_index = names.index(self.speaker) if self.speaker in names else None
        for index, (tile, cell) in enumerate(
            zip(tiles, layout(len(tiles), self.width, self.height, self.kind, speaker_index), strict=True)
        ):
            frame = tile.latest
            assert frame is not None
            place = fit(frame.width, frame.height, cell)
            self._paste(tile.ssrc, frame, place)
            if index == speaker_index:
                self._frame_in(place, SPEAKER_COLOUR)
            self._label(tile.name, place)
        return av.VideoFrame.from_ndarray(self._buffer, format="yuv420p")

    def _paste(self, ssrc: int, frame: av.VideoFrame, place: Rect) -> None:
        cached = self._scaled.get(ssrc)
        if cached is not None and cached[0] is frame and cached[1] == place:
            picture = cached[2]
        else:
            if (frame.width, frame.height) == (place.width, place.height) and frame.format.name == "yuv420p":
                scaled = frame
            else:
                scaled = frame.reformat(width=place.width, height=place.height, format="yuv420p")
            picture = np.asarray(scaled.to_ndarray(), dtype=np.uint8)
            self._scaled[ssrc] = (frame, place, picture)
        h, w = place.height, place.width
        quarter = (h // 2) * (w // 2)
        flat = picture.reshape(-1)
        self._y[place.y : place.y + h, place.x : place.x + w] = picture[:h]
        y2, x2 = place.y // 2, place.x // 2
        self._u[y2 : y2 + h // 2, x2 : x2 + w // 2] = flat[w * h : w * h + quarter].reshape(h // 2, w // 2)
        self._v[y2 : y2 + h // 2, x2 : x2 + w // 2] = flat[w * h + quarter :].reshape(h // 2, w // 2)

    def _frame_in(self, place: Rect, colour: tuple[int, int, int]) -> None:
        """A border of :data:`BORDER` pixels just inside ``place``."""
        x0, y0, x1, y1 = place.x, place.y, place.x + place.width, place.y + place.height
        b = BORDER
        for plane, value, s in ((self._y, colour[0], 1), (self._u, colour[1], 2), (self._v, colour[2], 2)):
            plane[y0 // s : (y0 + b) // s, x0 // s : x1 // s] = value
            plane[(y1 - b) // s : y1 // s, x0 // s : x1 // s] = value
            plane[y0 // s : y1 // s, x0 // s : (x0 + b) // s] = value
            plane[y0 // s : y1 // s, (x1 - b) // s : x1 // s] = value

    def _label(self, name: str, place: Rect) -> None:
        """``name`` in white on a dark box at the bottom-left of ``place`` (clipped to it)."""
        mask = self.font.mask(name)
        height = min(mask.shape[0], place.height - 2 * BORDER, LABEL_HEIGHT)
        width = min(mask.shape[1], place.width - 4 * BORDER)
        if height <= 0 or width <= 0:
            return
        x = place.x + 2 * BORDER
        y = place.y + place.height - 2 * BORDER - height
        region = self._y[y : y + height, x : x + width]
        region[:] = (24 + mask[:height, :width].astype(np.uint16) * 211 // 255).astype(np.uint8)
        self._u[y // 2 : (y + height) // 2, x // 2 : (x + width) // 2] = 128
        self._v[y // 2 : (y + height) // 2, x // 2 : (x + width) // 2] = 128


Opener = Callable[[Message], list[Sink]]
