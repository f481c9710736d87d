"""The ``file`` source: a media file's video and sound, decoded with PyAV and played at their own pace.

The first video stream and the first audio stream of the file are demuxed and decoded together; frames
come out in presentation order across both (a small reorder heap evens out the file's interleaving) and
each is released when it is due in real time. At the end the file starts again (``loop``, on by default),
its timestamps carrying on from where the last pass ended. A source that yields both kinds gives the
publisher two tracks: video and audio.
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from conf_cli import CapturedFrame, ConfError, Frame, MediaKind, Pacer, Source, SourceFactory
from conf_cli.urls import redact_url

from .options import opt_bool, opt_str

MAX_PENDING = 64  # decoded frames held to put both streams in order (about a second of each)


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc).strip() or type(exc).__name__


def open_media(path: str) -> av.container.InputContainer:
    """Open ``path`` for reading, or raise a one-line ConfError saying why it cannot be."""
    shown = redact_url(path)  # a URL given by mistake may carry a password
    if not Path(path).exists():
        raise ConfError(f"no such file: {shown}")
    if not os.access(path, os.R_OK) or Path(path).is_dir():
        raise ConfError(f"cannot read {shown}: permission denied or not a file")
    try:
        return av.open(path, "r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise ConfError(f"cannot read {shown}: {_reason(exc)}") from None


@dataclass(order=True)
class _Pending:
    media_time: float
    order: int
    frame: Frame = field(compare=False)


class FileSource(Source):
    """Decoded frames of a file's first video and first audio stream, in real time, looped."""

    def __init__(self, path: str, *, video: bool = True, audio: bool = True, loop: bool = True) -> None:
        self.path = path
        self.loop = loop
        container = open_media(path)
        self._video_index = container.streams.video[0].index if video and container.streams.video else None
        self._audio_index = container.streams.audio[0].index if audio and container.streams.audio else None
        if self._video_index is None and self._audio_index is None:
            container.close()
            wanted = " or ".join(k for k, on in (("video", video), ("audio", audio)) if on) or "stream"
            raise ConfError(f"cannot read {path}: it has no {wanted} stream to share")
        self.kind: MediaKind = "video" if self._video_index is not None else "audio"
        self.passes = 0  # times the file was started
        self.frames = 0
        self._container: av.container.InputContainer | None = None
        self._decoded: Iterator[Frame] | None = None
        self._pending: list[_Pending] = []
        self._order = itertools.count()
        self._offset = 0.0  # media time at which the current pass starts
        self._pass_start: float | None = None
        self._pass_end = 0.0
        self._pacer = Pacer()
        self._lock = threading.Lock()
        self._closed = False
        self._start_pass(container)

    # -- decoding ---------------------------------------------------------------------------------------

    def _start_pass(self, container: av.container.InputContainer) -> None:
        self.passes += 1
        self._container = container
        streams = [container.streams[i] for i in (self._video_index, self._audio_index) if i is not None]
        for stream in streams:
            if isinstance(stream, av.VideoStream):
                stream.thread_type = "AUTO"
        self._decoded = self._decode(container, streams)
        self._pass_start = None

    @staticmethod
    def _decode(container: av.container.InputContainer, streams: list[Any]) -> Iterator[Frame]:
        for packet in container.demux(*streams):
            for frame in packet.decode():  # the final empty packet of each stream flushes its decoder
                if isinstance(frame, av.VideoFrame | av.AudioFrame):
                    yield frame

    def _time_of(self, frame: Frame) -> tuple[float, float] | None:
        """The frame's start and end in seconds of file time, or ``None`` without a timestamp."""
        if frame.pts is None or frame.time_base is None:
            return None
        start = float(frame.pts * frame.time_base)
        if isinstance(frame, av.AudioFrame):
            return start, start + frame.samples / (frame.sample_rate or 48_000)
        assert self._container is not None and self._video_index is not None
        rate = self._container.streams[self._video_index].average_rate
        return start, start + (1 / float(rate) if rate else 1 / 30)

    def _fill(self) -> bool:
        """Decode until the earliest pending frame is known to be the next; ``False`` at the file's end."""
        assert self._decoded is not None
        needed = {
            kind
            for kind, index in ((av.VideoFrame, self._video_index), (av.AudioFrame, self._audio_index))
            if index is not None
        }
        while len(self._pending) < MAX_PENDING:
            if self._pending and needed <= {type(p.frame) for p in self._pending}:
                return True
            frame = next(self._decoded, None)
            if frame is None:
                return bool(self._pending)
            times = self._time_of(frame)
            if times is None:
                continue
            start, end = times
            if self._pass_start is None or start < self._pass_start:
                self._pass_start = start if self._pass_start is None else min(start, self._pass_start)
            self._pass_end = max(self._pass_end, end)
            media_time = self._offset + start - (self._pass_start or 0.0)
            heapq.heappush(self._pending, _Pending(media_time, next(self._order), frame))
        return True

    def _next_frame(self) -> _Pending | None:
        with self._lock:
            if self._closed:
                return None
            if not self._fill():
                if not self.loop or self.frames == 0:
                    return None
                assert self._container is not None
                self._container.close()
                self._offset += max(0.0, self._pass_end - (self._pass_start or 0.0))
                self._pass_end = 0.0
                try:
                    self._start_pass(av.open(self.path, "r"))
                except (av.FFmpegError, OSError, ValueError) as exc:
                    raise ConfError(f"cannot read {self.path}: {_reason(exc)}") from None
                if not self._fill():
                    return None
            return heapq.heappop(self._pending)

    # -- Source -----------------------------------------------------------------------------------------

    def read(self) -> CapturedFrame | None:
        """The next frame of either kind, when it is due; ``None`` once closed (or ended, without loop)."""
        pending = self._next_frame()
        if pending is None or not self._pacer.wait_until(pending.media_time):
            return None
        self.frames += 1
        return CapturedFrame(pending.frame, time.time())

    def close(self) -> None:
        """Stop reading and close the file (waits for a decode in progress, never for pacing)."""
        self._pacer.stop()
        with self._lock:
            self._closed = True
            self._pending.clear()
            self._decoded = None
            if self._container is not None:
                self._container.close()
                self._container = None


class FileSourceFactory(SourceFactory):
    """``file``: a video or sound file, played in real time and looped."""

    name = "file"
    kind = "video"
    description = "a media file's video and audio, at their own pace, looped (path; video, audio, loop)"

    def open(self, options: Mapping[str, Any]) -> FileSource:
        """Options: ``path`` (required); ``video``/``audio`` yes/no (both by default); ``loop`` (yes)."""
        path = opt_str(options, "path") or opt_str(options, "device")
        if path is None:
            raise ConfError("the file source needs a path: conf share file PATH ...")
        return FileSource(
            path,
            video=opt_bool(options, "video", True),
            audio=opt_bool(options, "audio", True),
            loop=opt_bool(options, "loop", True),
        )
