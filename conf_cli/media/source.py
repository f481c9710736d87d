"""The media interfaces: sources that capture frames, sinks that consume them, and the units in between.

A *source factory* is what a capture plugin registers (``conf_register_sources``): it names a kind of
source the user can type (``screen``, ``camera``, ``audio``, ``file``, ``pattern``, ``tone``), lists the
devices it can see, and opens a :class:`Source` from a mapping of options.

A :class:`Source` is blocking and meant to run in its own thread: :meth:`Source.read` returns the next
:class:`CapturedFrame`, paced in real time, with the wall-clock time (``time.time()`` seconds) at which
it was captured. :class:`ThreadedSource` runs a source in a thread and hands its frames to asyncio through
a small queue that drops the *oldest* frame when the consumer falls behind.

Sinks come in two shapes:

* :class:`Sink` consumes *decoded* frames (a speaker, a terminal preview, a window);
* :class:`EncodedSink` consumes *encoded* units (a recorder that writes H.264 and Opus to a file as they
  arrived, without re-encoding).

A :class:`SinkFactory` says which of the two its sinks are through :attr:`SinkFactory.consumes`.

An :class:`EncodedUnit` is one encoded access unit (H.264, Annex B, with its SPS/PPS in-band on
keyframes) or one Opus packet, with its RTP-clock timestamp. Encoders produce them
(:mod:`conf_cli.media.codecs`), packetisers and recorders consume them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Literal, Self

import av

MediaKind = Literal["audio", "video", "screen"]
"""What a source captures: sound, a camera-like picture (camera, file, pattern) or a screen."""

MEDIA_KINDS: tuple[MediaKind, ...] = ("audio", "video", "screen")

Frame = av.VideoFrame | av.AudioFrame


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One device a source factory can open: pass :attr:`id` as the ``device`` option."""

    id: str
    description: str = ""
    available: bool = True
    reason: str = ""
    """Why the device cannot be used now (empty when :attr:`available`)."""


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """A decoded frame and the wall-clock time (``time.time()`` seconds) at which it was captured.

    For audio, :attr:`capture_time` is the time of the frame's first sample. The frame's own
    ``pts``/``time_base`` are those of the producer (a file's timestamps, a sample counter) and are not
    meant for synchronisation across sources: use :attr:`capture_time`.
    """

    frame: Frame
    capture_time: float

    @property
    def is_audio(self) -> bool:
        """Whether the frame is an audio frame (a file source may yield both kinds)."""
        return isinstance(self.frame, av.AudioFrame)


@dataclass(frozen=True, slots=True)
class EncodedUnit:
    """One encoded unit: an H.264 access unit (Annex B bytes) or one Opus packet.

    ``pts`` counts ticks of ``clock_rate`` (90 000 for video, 48 000 for Opus), as RTP timestamps do
    (before the random RTP offset and the 32-bit wrap); ``duration`` is in the same ticks (0 if unknown).
    """

    codec: Literal["h264", "opus"]
    data: bytes
    pts: int
    clock_rate: int
    keyframe: bool
    capture_time: float
    duration: int = 0
    level: int | None = None
    """Audio only: the level of the unit's audio in -dBov (RFC 6464: 0 loudest, 127 silence)."""

    @property
    def is_audio(self) -> bool:
        """Whether this is an audio (Opus) unit."""
        return self.codec == "opus"


# --------------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------------


class _ClosedOnExit(ABC):
    """Usable in ``with``: :meth:`close` runs on the way out."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Source(_ClosedOnExit):
    """An open capture source. Blocking: call :meth:`read` from a worker thread.

    :meth:`close` may be called from any thread while :meth:`read` blocks in another: it makes that
    read (and every later one) return ``None`` promptly, and releases the device.
    """

    kind: MediaKind

    @abstractmethod
    def read(self) -> CapturedFrame | None:
        """Return the next frame, waiting until it is due; ``None`` once the source is closed or ended."""

    @abstractmethod
    def close(self) -> None:
        """Stop capturing and release the device; safe to call twice and from another thread."""


class SourceFactory(ABC):
    """What a capture plugin registers: one kind of source the user names on the command line."""

    name: ClassVar[str]
    """The word the user types: ``screen``, ``camera``, ``audio``, ``file``, ``pattern``, ``tone`` ..."""
    kind: ClassVar[MediaKind]
    description: ClassVar[str]

    def list_devices(self) -> list[DeviceInfo]:
        """The devices this factory can open now (may be empty: a synthetic source has none)."""
        return []

    @abstractmethod
    def open(self, options: Mapping[str, Any]) -> Source:
        """Open a source; raise :class:`~conf_cli.errors.ConfError` (one clear line) if it cannot."""


class Pacer:
    """Real-time pacing for a blocking source, interruptible from another thread.

    :meth:`wait` sleeps until the next tick of a fixed interval; :meth:`wait_until` sleeps until a media
    time (seconds since the first call). Both return ``False`` as soon as :meth:`stop` is called. When the
    caller falls more than ``max_lag`` behind, the schedule restarts from now rather than bursting.
    """

    def __init__(self, interval: float = 0.0, max_lag: float = 0.2) -> None:
        self.interval = interval
        self.max_lag = max_lag
        self._stop = threading.Event()
        self._next: float | None = None
        self._origin: float | None = None

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def stop(self) -> None:
        """Wake up any waiter and make every later wait return ``False``."""
        self._stop.set()

    def wait(self) -> bool:
        """Sleep until the next tick of :attr:`interval`; ``False`` if stopped."""
        now = time.monotonic()
        if self._next is None or now - self._next > self.max_lag:
            self._next = now
        delay = self._next - now
        self._next += self.interval
        return self._sleep(delay)

    def wait_until(self, media_time: float) -> bool:
        """Sleep until ``media_time`` seconds after the first call; ``False`` if stopped."""
        now = time.monotonic()
        if self._origin is None or now - (self._origin + media_time) > self.max_lag:
            self._origin = now - media_time
        return self._sleep(self._origin + media_time - now)

    def _sleep(self, delay: float) -> bool:
        if delay > 0:
            return not self._stop.wait(delay)
        return not self._stop.is_set()


# --------------------------------------------------------------------------------------------------
# Sinks
# --------------------------------------------------------------------------------------------------


class Sink(_ClosedOnExit):
    """Consumes decoded frames (speaker, terminal preview, window). ``write`` must not block for long."""

    @abstractmethod
    def write(self, frame: Frame) -> None:
        """Consume one decoded frame."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release the output; safe to call twice."""


class EncodedSink(_ClosedOnExit):
    """Consumes encoded units as they came off the wire (a recorder), without decoding them."""

    @abstractmethod
    def write(self, unit: EncodedUnit) -> None:
        """Consume one encoded unit (H.264 access unit or Opus packet)."""

    @abstractmethod
    def close(self) -> None:
        """Finish the output (e.g. write the file trailer); safe to call twice."""


class SinkFactory(ABC):
    """What a plugin registers for an output: ``speaker``, ``preview``, ``recorder`` ..."""

    name: ClassVar[str]
    kind: ClassVar[Literal["audio", "video", "any"]]
    description: ClassVar[str]
    consumes: ClassVar[Literal["frames", "encoded"]]
    """``frames``: :meth:`open` returns a :class:`Sink`; ``encoded``: an :class:`EncodedSink`."""

    def list_devices(self) -> list[DeviceInfo]:
        """The output devices this factory can open now (may be empty)."""
        return []

    @abstractmethod
    def open(self, options: Mapping[str, Any]) -> Sink | EncodedSink:
        """Open the sink; raise :class:`~conf_cli.errors.ConfError` (one clear line) if it cannot."""


# --------------------------------------------------------------------------------------------------
# A source in a thread, feeding asyncio
# --------------------------------------------------------------------------------------------------

_END = object()


class ThreadedSource:
    """Run a :class:`Source` in a thread and iterate its frames with ``async for``.

    The thread feeds a bounded queue; when it is full the *oldest* frame is dropped (counted in
    :attr:`dropped`), so a slow consumer always gets the freshest frames. Iteration ends when the source
    ends or :meth:`stop` is called; an exception raised by ``read`` is re-raised in the consumer.
    Start it from a running event loop (``async with ThreadedSource(src) as frames: ...``).
    """

    def __init__(self, source: Source, maxsize: int = 4, name: str = "conf-source") -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.source = source
        self.maxsize = maxsize
        self.dropped = 0
        self._name = name
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._finished = False

    def start(self) -> None:
        """Start the reading thread (needs a running event loop)."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        item: object = _END
        try:
            while not self._stopping.is_set():
                frame = self.source.read()
                if frame is None:
                    break
                self._deliver(frame)
        except BaseException as exc:
            item = exc
        self._deliver(item)

    def _deliver(self, item: object) -> None:
        loop = self._loop
        assert loop is not None
        with contextlib.suppress(RuntimeError):  # the loop was closed: nobody is listening any more
            loop.call_soon_threadsafe(self._put, item)

    def _put(self, item: object) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(item)

    def __aiter__(self) -> ThreadedSource:
        return self

    async def __anext__(self) -> CapturedFrame:
        if self._finished:
            raise StopAsyncIteration
        self.start()
        item = await self._queue.get()
        if isinstance(item, CapturedFrame):
            return item
        self._finished = True
        if isinstance(item, BaseException):
            raise item
        raise StopAsyncIteration

    async def stop(self, timeout: float = 2.0) -> None:
        """Stop reading, close the source and wait (up to ``timeout`` s) for the thread to end."""
        self._stopping.set()
        self.source.close()
        thread = self._thread
        if thread is not None and thread.is_alive():
            await asyncio.to_thread(thread.join, timeout)
        self._finished = True

    async def __aenter__(self) -> ThreadedSource:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
