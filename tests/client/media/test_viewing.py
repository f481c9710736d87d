"""Which sinks received tracks get for --view, and a failing output that never ends its track."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import av
import pytest

from conf_cli.client.media.playback import DeferredSink
from conf_cli.client.media.viewing import combine, is_video, preview_opener, resolve_view, window_opener
from conf_cli.errors import ConfError
from conf_cli.media.source import Frame, Sink, SinkFactory
from conf_cli.protocol.control import Message

VIDEO: Message = {"name": "bob", "kind": "screen", "ssrc": 2, "codec": "H264"}
AUDIO: Message = {"name": "ada", "kind": "audio", "ssrc": 3, "codec": "opus"}


class Collect(Sink):
    def __init__(self, fail: bool = False) -> None:
        self.frames: list[Frame] = []
        self.fail = fail
        self.closed = 0

    def write(self, frame: Frame) -> None:
        if self.fail:
            raise ConfError("the window went away")
        self.frames.append(frame)

    def close(self) -> None:
        self.closed += 1


class Factory(SinkFactory):
    name: ClassVar[str] = "window"
    kind: ClassVar[Literal["audio", "video", "any"]] = "video"
    description: ClassVar[str] = "test"
    consumes: ClassVar[Literal["frames", "encoded"]] = "frames"

    def __init__(self, fail: bool = False) -> None:
        self.opened: list[tuple[dict[str, Any], Collect]] = []
        self.fail = fail

    def open(self, options: Mapping[str, Any]) -> Collect:
        sink = Collect(self.fail)
        self.opened.append((dict(options), sink))
        return sink


def frame() -> av.VideoFrame:
    return av.VideoFrame(16, 16, "yuv420p")


def test_the_default_view_is_the_preview_in_a_terminal_and_none_in_machine_mode() -> None:
    assert resolve_view(None, machine=False) == "preview"
    assert resolve_view(None, machine=True) == "none"
    assert resolve_view("window", machine=True) == "window"
    with pytest.raises(ConfError, match="--view preview draws in the interactive terminal"):
        resolve_view("preview", machine=True)
    with pytest.raises(ConfError, match="unknown view 'tv'"):
        resolve_view("tv", machine=False)


def test_video_and_screen_are_pictures() -> None:
    assert is_video(VIDEO) and is_video({"kind": "video"}) and is_video({"codec": "h264"})
    assert not is_video(AUDIO)


def test_combine_gives_every_opener_s_sinks() -> None:
    a, b = Collect(), Collect()
    assert combine(None, None) is None
    only = preview_opener({"preview": Factory()}, lambda track, sink: None)
    assert combine(None, only) is only
    both = combine(lambda track: [a], None, lambda track: [b])
    assert both is not None and both(VIDEO) == [a, b]


def test_previews_are_opened_for_video_and_handed_over() -> None:
    factory = Factory()
    handed: list[tuple[Message, Sink]] = []
    opener = preview_opener({"preview": factory}, lambda track, sink: handed.append((track, sink)))
    assert opener(AUDIO) == []
    [sink] = opener(VIDEO)
    assert handed == [(VIDEO, sink)] and factory.opened[0][0] == {"width": 48, "height": 24}
    with pytest.raises(ConfError, match="no sink plugin named 'preview'"):
        preview_opener({}, lambda track, sink: None)


async def test_a_window_opens_on_the_first_picture_and_a_failure_is_reported_once() -> None:
    events: list[Message] = []
    factory = Factory(fail=True)
    opener = window_opener({"window": factory}, events.append)
    assert opener(AUDIO) == []
    [sink] = opener(VIDEO)
    assert factory.opened == []  # nothing opened before a picture arrives
    await asyncio.to_thread(sink.write, frame())
    await asyncio.to_thread(sink.write, frame())
    await asyncio.sleep(0)
    assert factory.opened[0][0] == {"title": "conf: bob's screen"}
    assert factory.opened[0][1].closed == 1
    assert events == [
        {
            "type": "error",
            "code": "media",
            "re": "view",
            "message": "cannot show bob's video: the window went away",
        }
    ]
    sink.close()


def test_a_deferred_sink_passes_frames_and_closes_what_it_opened() -> None:
    inner = Collect()
    errors: list[str] = []
    sink = DeferredSink(lambda: inner, errors.append)
    sink.write(frame())
    sink.close()
    sink.write(frame())
    assert len(inner.frames) == 1 and inner.closed == 1 and errors == []
