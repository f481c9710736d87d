"""The recordings registry (sans-I/O): where a recording goes, when one may start, its states as its
recorder reports them, which are overdue, and what its ``recording_finished`` webhook says."""

from __future__ import annotations

import datetime

import pytest

from conf_cli.errors import RequestRefused
from conf_cli.server.recordings import Recordings, file_name

UTC = datetime.datetime(2026, 12, 6, 17, 5, 9, tzinfo=datetime.UTC)


def refused(code: str) -> pytest.RaisesExc[RequestRefused]:
    return pytest.raises(RequestRefused, check=lambda exc: exc.code == code)


def test_a_recording_is_named_by_its_meeting_and_the_utc_time_or_a_plain_chosen_name() -> None:
    assert file_name("k7m-q2xw-9fd", "mp4", UTC) == "k7m-q2xw-9fd-20261206T170509Z.mp4"
    assert file_name("k7m-q2xw-9fd", "hls", UTC) == "k7m-q2xw-9fd-20261206T170509Z"  # a folder
    assert file_name("m", "mp4", UTC, "board-call_2.mp4") == "board-call_2.mp4"
    assert file_name("m", "hls", UTC, "board.v2") == "board.v2"


@pytest.mark.parametrize(
    "chosen",
    [
        "../escape",
        "..",
        "a/../../etc/passwd",
        "/etc/passwd",
        "/tmp/x.mp4",
        "sub/dir.mp4",
        "back\\slash",
        ".hidden",
        "x..y",
        "",
        " name",
        "na me",
        "a\x00b",
        "é.mp4",
        "x" * 101,
        "%2e%2e",
    ],
)
def test_a_chosen_name_that_is_a_path_or_leaves_the_folder_is_refused(chosen: str) -> None:
    with refused("bad_request"):
        file_name("m", "mp4", UTC, chosen)
    with refused("bad_request"):
        Recordings().begin("m", 0.0, UTC, chosen=chosen)


def test_one_recording_per_meeting_and_a_bounded_number_at_once() -> None:
    recordings = Recordings(limit=2)
    recordings.begin("a", 0.0, UTC)
    with refused("already_recording"):
        recordings.begin("a", 1.0, UTC)
    recordings.begin("b", 1.0, UTC, fmt="hls", layout="speaker")
    with refused("recording_limit"):
        recordings.begin("c", 2.0, UTC)
    assert set(recordings.active) == {"a", "b"}
    recordings.finished("a", 0, 10, 3.0)
    recordings.begin("c", 3.0, UTC)  # room again
    with refused("bad_request"):
        recordings.begin("d", 3.0, UTC, fmt="avi")
    with refused("bad_request"):
        recordings.begin("d", 3.0, UTC, layout="mosaic")


def test_states_follow_what_the_recorder_says() -> None:
    recordings = Recordings()
    recording = recordings.begin("m", 10.0, UTC)
    assert recording.state == "starting"
    recordings.event("m", {"type": "track_stats"}, 11.0)
    assert recording.state == "starting"
    recordings.event("m", {"type": "joined", "name": "server admin (recorder)"}, 12.0)
    assert (recording.state, recording.joined) == ("recording", 12.0)
    recordings.event("m", {"type": "recording_written", "frames": 120, "fps": 30, "seconds": 4.0}, 16.5)
    assert recordings.stopping("m", "stopped").state == "stopping"
    fields = recordings.finished("m", 0, 12345, 17.0)
    # the recorder's own count of what it wrote, not the time it ran
    assert fields == {
        "file": "recordings/m-20261206T170509Z.mp4",
        "format": "mp4",
        "bytes": 12345,
        "duration_s": 4.0,
        "reason": "stopped",
    }
    assert recordings.active == {}
    with refused("not_recording"):
        recordings.stopping("m", "stopped")


@pytest.mark.parametrize(
    ("events", "code", "reason"),
    [
        ([{"type": "meeting_closed", "reason": "ended"}], 0, "meeting_ended"),
        ([{"type": "kicked", "by": "ada"}], 3, "kicked"),
        (
            [{"type": "error", "code": "forbidden", "message": "recording is forbidden"}],
            0,
            "recording_forbidden",
        ),
        ([], 0, "recorder_left"),
        ([], 1, "recorder_failed"),
        ([], -9, "recorder_killed"),
        ([], None, "recorder_killed"),
    ],
)
def test_why_a_recording_ended_comes_from_its_recorder(
    events: list[dict[str, object]], code: int | None, reason: str
) -> None:
    recordings = Recordings()
    recordings.begin("m", 0.0, UTC)
    recordings.event("m", {"type": "joined"}, 1.0)
    for event in events:
        recordings.event("m", event, 2.0)
    fields = recordings.finished("m", code, 0, 6.5)
    assert fields["reason"] == reason
    assert fields["duration_s"] == 5.5  # no recording_written: the time it was in the meeting
    if reason == "recording_forbidden":
        assert fields["error"] == "recording is forbidden"


def test_a_stop_keeps_the_first_reason() -> None:
    recordings = Recordings()
    recordings.begin("m", 0.0, UTC)
    recordings.event("m", {"type": "joined"}, 1.0)
    recordings.event("m", {"type": "meeting_closed"}, 2.0)
    recordings.stopping("m", "meeting_ended")
    recordings.stopping("m", "stopped")
    assert recordings.finished("m", 0, 0, 3.0)["reason"] == "meeting_ended"


def test_a_recorder_not_in_the_meeting_in_time_is_overdue() -> None:
    recordings = Recordings(start_timeout=30.0, admit_timeout=120.0)
    late = recordings.begin("late", 0.0, UTC)
    prompt = recordings.begin("prompt", 0.0, UTC)
    waits = recordings.begin("e2ee", 0.0, UTC)
    recordings.event("prompt", {"type": "joined"}, 5.0)
    recordings.event("e2ee", {"type": "waiting"}, 5.0)
    assert waits.state == "waiting"
    assert recordings.overdue(29.0) == []
    assert recordings.overdue(30.5) == [late]  # once: it is stopping now
    assert recordings.overdue(31.0) == []
    assert (late.state, late.reason) == ("stopping", "start_timeout")
    assert recordings.overdue(124.0) == []  # waiting for the host's /admit has its own, longer, bound
    assert recordings.overdue(125.5) == [waits] and waits.reason == "not_admitted"
    assert prompt.state == "recording"
    assert recordings.finished("late", -15, 0, 32.0) == {
        "file": "recordings/late-20261206T170509Z.mp4",
        "format": "mp4",
        "bytes": 0,
        "duration_s": 0.0,
        "reason": "start_timeout",
    }


def test_a_denied_recorder_was_not_admitted() -> None:
    recordings = Recordings()
    recordings.begin("m", 0.0, UTC)
    recordings.event("m", {"type": "waiting"}, 1.0)
    recordings.event("m", {"type": "denied", "by": "ada"}, 2.0)
    assert recordings.finished("m", 5, 0, 3.0)["reason"] == "not_admitted"
