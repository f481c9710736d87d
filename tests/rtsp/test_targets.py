"""RTSP URLs conf serves, and the session state machine."""

from __future__ import annotations

import pytest
from conf_rtsp.session import StateError, next_state
from conf_rtsp.targets import FileTarget, PublishTarget, TrackTarget, parse_target
from hypothesis import given, settings
from hypothesis import strategies as st

from conf_cli.errors import ProtocolError


def test_urls() -> None:
    track = parse_target("rtsp://127.0.0.1:8554/k7m-q2xw-9fd/Ada%20L/video/trackID=0")
    assert track.target == TrackTarget("k7m-q2xw-9fd", "Ada L", "video")
    assert track.control == "trackID=0"
    assert track.base == "rtsp://127.0.0.1:8554/k7m-q2xw-9fd/Ada%20L/video"
    assert parse_target("rtsp://user:pw@h:1/files/clip.avi").target == FileTarget("clip.avi")
    assert parse_target("rtsp://user:pw@h:1/files/clip.avi").base == "rtsp://h:1/files/clip.avi"
    publish = parse_target("rtsp://h/k7m-q2xw-9fd/cam/streamid=1")
    assert publish.target == PublishTarget("k7m-q2xw-9fd", "cam") and publish.control == "streamid=1"


@pytest.mark.parametrize(
    "url",
    [
        "http://h/a/b",
        "rtsp:///a/b",
        "rtsp://h/",
        "rtsp://h/a/b/c/d/e",
        "rtsp://h/files/..",
        "rtsp://h/a/%00/video",
        "rtsp://h/" + "x" * 3000,
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(ProtocolError):
        parse_target(url)


def test_session_states() -> None:
    state = next_state("init", "SETUP")
    assert state == "ready"
    assert next_state(state, "PLAY") == "playing"
    assert next_state("playing", "PAUSE") == "ready"
    assert next_state("ready", "RECORD") == "recording"
    assert next_state("recording", "TEARDOWN") == "init"
    for state, method in (("init", "PLAY"), ("init", "RECORD"), ("playing", "RECORD"), ("playing", "SETUP")):
        with pytest.raises(StateError):
            next_state(state, method)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_any_path_resolves_or_raises_protocol_error(path: str) -> None:
    try:
        resolved = parse_target("rtsp://h:1/" + path)
    except ProtocolError:
        return
    if isinstance(resolved.target, FileTarget):
        assert "/" not in resolved.target.name and resolved.target.name not in (".", "..")
