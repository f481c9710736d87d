"""Playing received audio: one speaker sink per remote audio track, opened off the event loop.

``conf join/create/share --play`` asks :func:`speaker_opener` for a function the
:class:`~conf_cli.client.media.manager.MediaManager` calls for each remote track. Audio tracks get a
:class:`DeferredSink` that opens the real sink (the ``speaker`` plugin, through sounddevice) on its first
frame, in the decoder's worker thread, so that the event loop never waits on a sound device; a device that
fails then is reported once as an ``error`` event and the track goes on without sound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from conf_cli.errors import ConfError
from conf_cli.media.source import Frame, Sink, SinkFactory
from conf_cli.protocol.control import Message

log = logging.getLogger(__name__)

SPEAKER = "speaker"

Notify = Callable[[Message], None]
SinkOpener = Callable[[Message], list[Sink]]


def find_sink_factory(sinks: Mapping[str, Any], name: str = SPEAKER) -> SinkFactory:
    """The sink factory registered as ``name``; ConfError if no plugin registered one."""
    factory = sinks.get(name)
    if factory is not None:
        return factory
    known = ", ".join(sorted(sinks)) or "none"
    raise ConfError(f"no sink plugin named {name!r} (loaded: {known}); see `conf plugins`")


class DeferredSink(Sink):
    """A sink opened on its first frame (in whatever thread writes it).

    A failure to open it, or a later ``write`` that raises, is reported once; the sink is then closed and
    every later frame is dropped, so a failing output never ends the track that feeds it.
    """

    def __init__(self, open_sink: Callable[[], Sink], on_error: Callable[[str], None]) -> None:
        self._open = open_sink
        self._on_error = on_error
        self._sink: Sink | None = None
        self._failed = False
        self._closed = False
        self._lock = threading.Lock()

    def write(self, frame: Frame) -> None:
        with self._lock:
            if self._closed or self._failed:
                return
            if self._sink is None:
                try:
                    self._sink = self._open()
                except Exception as exc:  # ConfError or whatever the device layer raised
                    self._failed = True
                    self._on_error(str(exc))
                    return
            sink = self._sink
        try:
            sink.write(frame)
        except Exception as exc:  # a failing output ends itself, never the track it listens to
            with self._lock:
                failed, self._failed = self._failed, True
                self._sink = None
            with contextlib.suppress(Exception):
                sink.close()
            if not failed:
                self._on_error(str(exc))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sink, self._sink = self._sink, None
        if sink is not None:
            sink.close()


def error_reporter(notify: Notify, re: str) -> Callable[[str], Callable[[str], None]]:
    """``report(what)(message)`` sends ``{"type": "error", "re": re, "message": "WHAT: MESSAGE"}`` to
    ``notify`` on this event loop, from any thread. Call it on the loop."""
    loop = asyncio.get_running_loop()

    def report(what: str) -> Callable[[str], None]:
        def on_error(message: str) -> None:
            log.warning("%s: %s", what, message)
            event: Message = {"type": "error", "code": "media", "re": re, "message": f"{what}: {message}"}
            with contextlib.suppress(RuntimeError):  # the loop is closing: the meeting is over anyway
                loop.call_soon_threadsafe(notify, event)

        return on_error

    return report


def speaker_opener(factory: SinkFactory, options: Mapping[str, Any], notify: Notify) -> SinkOpener:
    """For each remote track: a deferred speaker sink for audio, nothing for video.

    Call it on the event loop: errors from the worker thread go back to ``notify`` on that loop.
    """
    report = error_reporter(notify, "play")
    settings = dict(options)

    def open_for(track: Message) -> list[Sink]:
        if str(track.get("kind", "")) != "audio" and str(track.get("codec", "")).lower() != "opus":
            return []

        def open_sink() -> Sink:
            sink = factory.open(settings)
            if not isinstance(sink, Sink):
                raise ConfError(f"sink {factory.name!r} does not play decoded frames")
            return sink

        return [DeferredSink(open_sink, report(f"cannot play {track.get('name', 'someone')}'s audio"))]

    return open_for


def check_speaker(factory: SinkFactory, options: Mapping[str, Any]) -> None:
    """Open and close the speaker once (blocking), so a wrong device fails before joining, in one line."""
    sink = factory.open(options)
    sink.close()
