"""Showing received video: which sinks each remote video track gets for ``--view preview|window|none``.

``preview`` draws the newest picture small in the interactive terminal (the ``preview`` sink, read by the
terminal view); ``window`` shows it in a desktop window (the ``window`` sink); ``none`` shows nothing.
The :class:`~conf_cli.client.media.manager.MediaManager` calls the opener made here for each remote track,
next to the speaker's (:func:`combine`).

The preview sink is opened at once, on the event loop (it only allocates a small buffer), and handed to
the terminal view. The window sink is a :class:`~conf_cli.client.media.playback.DeferredSink`: it opens on the
first picture, in the decoder's thread, and a window that fails is reported once as an ``error`` event
while the track goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from conf_cli.client.media.playback import DeferredSink, Notify, SinkOpener, error_reporter, find_sink_factory
from conf_cli.errors import ConfError
from conf_cli.media.source import Sink, SinkFactory
from conf_cli.protocol.control import Message

View = Literal["preview", "window", "none"]
VIEWS: tuple[View, ...] = ("preview", "window", "none")
PREVIEW_SINK = "preview"
WINDOW_SINK = "window"
PREVIEW_SIZE = (48, 24)
"""Pixels of the terminal preview: 48 columns by 12 lines of half blocks."""

OnPreview = Callable[[Message, Sink], None]


def is_video(track: Message) -> bool:
    """Whether a track description (``track_started``, ``share_started``) is a picture (video or screen)."""
    return str(track.get("kind", "")) in ("video", "screen") or str(track.get("codec", "")).upper() == "H264"


def resolve_view(view: str | None, machine: bool) -> View:
    """The view to use: as asked, else ``preview`` in the interactive terminal and ``none`` in machine mode.

    ``preview`` in machine mode is refused: there is no terminal view to draw it in.
    """
    if view is None:
        return "none" if machine else "preview"
    if view not in VIEWS:
        raise ConfError(f"unknown view {view!r}: use {', '.join(VIEWS)}")
    if view == "preview" and machine:
        raise ConfError("--view preview draws in the interactive terminal; with --json use --view window")
    return view


def combine(*openers: SinkOpener | None) -> SinkOpener | None:
    """One opener giving every sink the given openers give (``None`` when there are none)."""
    present = [opener for opener in openers if opener is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]

    def open_all(track: Message) -> list[Sink]:
        return [sink for opener in present for sink in opener(track)]

    return open_all


def preview_opener(
    sinks: Mapping[str, Any], on_preview: OnPreview, size: tuple[int, int] = PREVIEW_SIZE
) -> SinkOpener:
    """For each video track, a ``preview`` sink handed to ``on_preview(track, sink)``; nothing for audio.

    ConfError now if no plugin registered a ``preview`` sink.
    """
    factory = find_sink_factory(sinks, PREVIEW_SINK)
    options = {"width": size[0], "height": size[1]}

    def open_for(track: Message) -> list[Sink]:
        if not is_video(track):
            return []
        sink = factory.open(options)
        if not isinstance(sink, Sink):
            raise ConfError(f"sink {factory.name!r} does not take decoded frames")
        on_preview(track, sink)
        return [sink]

    return open_for


def window_title(track: Message) -> str:
    return f"conf: {track.get('name', 'someone')}'s {track.get('kind', 'video')}"


def window_opener(
    sinks: Mapping[str, Any], notify: Notify, on_resize: Callable[[int, int], None] | None = None
) -> SinkOpener:
    """For each video track, a ``window`` sink opened on its first picture; nothing for audio.
    ``on_resize`` is called (from any thread) with the window's size when it opens and is resized.

    Call it on the event loop; ConfError now if no plugin registered a ``window`` sink.
    """
    factory = find_sink_factory(sinks, WINDOW_SINK)
    report = error_reporter(notify, "view")

    def open_for(track: Message) -> list[Sink]:
        if not is_video(track):
            return []
        options: dict[str, Any] = {"title": window_title(track)}
        if on_resize is not None:
            options["on_resize"] = on_resize

        def open_sink() -> Sink:
            sink = factory.open(options)
            if not isinstance(sink, Sink):
                raise ConfError(f"sink {factory.name!r} does not take decoded frames")
            return sink

        return [DeferredSink(open_sink, report(f"cannot show {track.get('name', 'someone')}'s video"))]

    return open_for


def check_sink(factory: SinkFactory, options: Mapping[str, Any] | None = None) -> None:
    """Open and close a sink once (blocking), so that a missing window system fails before joining."""
    factory.open(options or {}).close()
